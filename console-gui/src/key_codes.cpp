#include <atoll/console/key_codes.h>

#include <Qt>

#include <algorithm>
#include <linux/input-event-codes.h>

namespace atl::console {

uint32_t linux_key_code_for_qt_key(int qt_key) {
    if (qt_key >= Qt::Key_A && qt_key <= Qt::Key_Z) {
        static constexpr uint32_t kLetters[] = {KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I,
                                                KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R,
                                                KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z};
        return kLetters[qt_key - Qt::Key_A];
    }
    if (qt_key >= Qt::Key_1 && qt_key <= Qt::Key_9) return KEY_1 + static_cast<uint32_t>(qt_key - Qt::Key_1);
    if (qt_key >= Qt::Key_F1 && qt_key <= Qt::Key_F10) return KEY_F1 + static_cast<uint32_t>(qt_key - Qt::Key_F1);
    switch (qt_key) {
    case Qt::Key_0: return KEY_0;
    case Qt::Key_F11: return KEY_F11;
    case Qt::Key_F12: return KEY_F12;
    case Qt::Key_Escape: return KEY_ESC;
    case Qt::Key_Tab: case Qt::Key_Backtab: return KEY_TAB;
    case Qt::Key_Backspace: return KEY_BACKSPACE;
    case Qt::Key_Return: return KEY_ENTER;
    case Qt::Key_Enter: return KEY_KPENTER;
    case Qt::Key_Insert: return KEY_INSERT;
    case Qt::Key_Delete: return KEY_DELETE;
    case Qt::Key_Pause: return KEY_PAUSE;
    case Qt::Key_Print: case Qt::Key_SysReq: return KEY_SYSRQ;
    case Qt::Key_Home: return KEY_HOME;
    case Qt::Key_End: return KEY_END;
    case Qt::Key_Left: return KEY_LEFT;
    case Qt::Key_Up: return KEY_UP;
    case Qt::Key_Right: return KEY_RIGHT;
    case Qt::Key_Down: return KEY_DOWN;
    case Qt::Key_PageUp: return KEY_PAGEUP;
    case Qt::Key_PageDown: return KEY_PAGEDOWN;
    case Qt::Key_Shift: return KEY_LEFTSHIFT;
    case Qt::Key_Control: return KEY_LEFTCTRL;
    case Qt::Key_Meta: case Qt::Key_Super_L: return KEY_LEFTMETA;
    case Qt::Key_Super_R: return KEY_RIGHTMETA;
    case Qt::Key_Alt: return KEY_LEFTALT;
    case Qt::Key_AltGr: return KEY_RIGHTALT;
    case Qt::Key_CapsLock: return KEY_CAPSLOCK;
    case Qt::Key_NumLock: return KEY_NUMLOCK;
    case Qt::Key_ScrollLock: return KEY_SCROLLLOCK;
    case Qt::Key_Menu: return KEY_COMPOSE;
    case Qt::Key_Space: return KEY_SPACE;
    // Shifted symbols map to the key that carries them (US layout).
    case Qt::Key_Exclam: return KEY_1;
    case Qt::Key_At: return KEY_2;
    case Qt::Key_NumberSign: return KEY_3;
    case Qt::Key_Dollar: return KEY_4;
    case Qt::Key_Percent: return KEY_5;
    case Qt::Key_AsciiCircum: return KEY_6;
    case Qt::Key_Ampersand: return KEY_7;
    case Qt::Key_Asterisk: return KEY_8;
    case Qt::Key_ParenLeft: return KEY_9;
    case Qt::Key_ParenRight: return KEY_0;
    case Qt::Key_Minus: case Qt::Key_Underscore: return KEY_MINUS;
    case Qt::Key_Equal: case Qt::Key_Plus: return KEY_EQUAL;
    case Qt::Key_BracketLeft: case Qt::Key_BraceLeft: return KEY_LEFTBRACE;
    case Qt::Key_BracketRight: case Qt::Key_BraceRight: return KEY_RIGHTBRACE;
    case Qt::Key_Backslash: case Qt::Key_Bar: return KEY_BACKSLASH;
    case Qt::Key_Semicolon: case Qt::Key_Colon: return KEY_SEMICOLON;
    case Qt::Key_Apostrophe: case Qt::Key_QuoteDbl: return KEY_APOSTROPHE;
    case Qt::Key_QuoteLeft: case Qt::Key_AsciiTilde: return KEY_GRAVE;
    case Qt::Key_Comma: case Qt::Key_Less: return KEY_COMMA;
    case Qt::Key_Period: case Qt::Key_Greater: return KEY_DOT;
    case Qt::Key_Slash: case Qt::Key_Question: return KEY_SLASH;
    case Qt::Key_VolumeUp: return KEY_VOLUMEUP;
    case Qt::Key_VolumeDown: return KEY_VOLUMEDOWN;
    case Qt::Key_VolumeMute: return KEY_MUTE;
    default: return 0;
    }
}

uint32_t linux_key_code(int qt_key, uint32_t native_scan_code, bool native_is_xkb_keycode) {
    // X11 and Wayland keycodes are evdev codes plus 8 (xkeyboard-config's evdev rules).
    if (native_is_xkb_keycode && native_scan_code > 8 && native_scan_code - 8 <= KEY_MAX)
        return native_scan_code - 8;
    return linux_key_code_for_qt_key(qt_key);
}

uint32_t tablet_axis(int value, int size) {
    if (size <= 1) return 0;
    const int clamped = std::clamp(value, 0, size - 1);
    return static_cast<uint32_t>(static_cast<uint64_t>(clamped) * 32767 / static_cast<uint64_t>(size - 1));
}

}  // namespace atl::console
