// X11 keysyms (what VNC clients send, RFC 6143 7.5.4) to Linux input event
// codes (KEY_* in <linux/input-event-codes.h>, what virtio-input reports).
//
// A keysym names the symbol, not the key, so the table assumes the US layout
// the guest is most likely to use: "exclam" is the key that carries '!' (KEY_1),
// and the client has already sent the Shift that makes it '!'. Lower and upper
// case letters, a symbol and its shifted partner map to the same key. Unicode
// keysyms (0x01000000 + code point) for printable ASCII are treated as their
// Latin-1 equivalents.
#pragma once

#include <cstdint>

namespace atl::display {

// The Linux key code for `keysym`, or 0 (KEY_RESERVED) when the table has none.
uint16_t linux_key_from_keysym(uint32_t keysym);

}  // namespace atl::display
