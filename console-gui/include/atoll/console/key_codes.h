// Keyboard and pointer translation for the viewer: Qt's key events to Linux
// input key codes (what org.atoll.Display1's SendKey takes), window positions
// to the absolute tablet's 0..32767 range.
#pragma once

#include <cstdint>

namespace atl::console {

// A Linux KEY_* code for Qt's key (Qt::Key) on a US layout, or 0. Used when
// the platform gives no evdev scan code (offscreen, some Wayland setups).
uint32_t linux_key_code_for_qt_key(int qt_key);

// The Linux key code of a key event: the platform's scan code where it is an
// X/Wayland keycode (evdev + 8), else the Qt key through the table. 0: none.
uint32_t linux_key_code(int qt_key, uint32_t native_scan_code, bool native_is_xkb_keycode);

// Position `value` (in surface pixels, may lie outside) across `size` pixels
// to 0..32767, the way atoll-display scales VNC pointers.
uint32_t tablet_axis(int value, int size);

}  // namespace atl::console
