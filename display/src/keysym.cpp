#include <atoll/display/keysym.h>

#include <linux/input-event-codes.h>
#include <rfb/keysym.h>

#include <algorithm>
#include <array>
#include <utility>

namespace atl::display {

namespace {

struct Entry {
    uint32_t keysym;
    uint16_t code;
};

// XFree86 vendor keysyms (X11/XF86keysym.h); not in rfb/keysym.h.
constexpr uint32_t kXF86AudioLowerVolume = 0x1008FF11;
constexpr uint32_t kXF86AudioMute = 0x1008FF12;
constexpr uint32_t kXF86AudioRaiseVolume = 0x1008FF13;
constexpr uint32_t kXF86AudioPlay = 0x1008FF14;
constexpr uint32_t kXF86AudioStop = 0x1008FF15;
constexpr uint32_t kXF86AudioPrev = 0x1008FF16;
constexpr uint32_t kXF86AudioNext = 0x1008FF17;
constexpr uint32_t kXF86HomePage = 0x1008FF18;
constexpr uint32_t kXF86Mail = 0x1008FF19;
constexpr uint32_t kXF86Search = 0x1008FF1B;
constexpr uint32_t kXF86Calculator = 0x1008FF1D;
constexpr uint32_t kXF86Back = 0x1008FF26;
constexpr uint32_t kXF86Forward = 0x1008FF27;
constexpr uint32_t kXF86Refresh = 0x1008FF29;
constexpr uint32_t kXF86PowerOff = 0x1008FF2A;
constexpr uint32_t kXF86WakeUp = 0x1008FF2B;
constexpr uint32_t kXF86Eject = 0x1008FF2C;
constexpr uint32_t kXF86Sleep = 0x1008FF2F;
constexpr uint32_t kXF86AudioPause = 0x1008FF31;

// Unsorted here for reading; sorted once at first use.
constexpr Entry kTable[] = {
    // Letters, both cases.
    {XK_a, KEY_A}, {XK_b, KEY_B}, {XK_c, KEY_C}, {XK_d, KEY_D}, {XK_e, KEY_E}, {XK_f, KEY_F},
    {XK_g, KEY_G}, {XK_h, KEY_H}, {XK_i, KEY_I}, {XK_j, KEY_J}, {XK_k, KEY_K}, {XK_l, KEY_L},
    {XK_m, KEY_M}, {XK_n, KEY_N}, {XK_o, KEY_O}, {XK_p, KEY_P}, {XK_q, KEY_Q}, {XK_r, KEY_R},
    {XK_s, KEY_S}, {XK_t, KEY_T}, {XK_u, KEY_U}, {XK_v, KEY_V}, {XK_w, KEY_W}, {XK_x, KEY_X},
    {XK_y, KEY_Y}, {XK_z, KEY_Z},
    {XK_A, KEY_A}, {XK_B, KEY_B}, {XK_C, KEY_C}, {XK_D, KEY_D}, {XK_E, KEY_E}, {XK_F, KEY_F},
    {XK_G, KEY_G}, {XK_H, KEY_H}, {XK_I, KEY_I}, {XK_J, KEY_J}, {XK_K, KEY_K}, {XK_L, KEY_L},
    {XK_M, KEY_M}, {XK_N, KEY_N}, {XK_O, KEY_O}, {XK_P, KEY_P}, {XK_Q, KEY_Q}, {XK_R, KEY_R},
    {XK_S, KEY_S}, {XK_T, KEY_T}, {XK_U, KEY_U}, {XK_V, KEY_V}, {XK_W, KEY_W}, {XK_X, KEY_X},
    {XK_Y, KEY_Y}, {XK_Z, KEY_Z},

    // Digit row and its shifted symbols (US layout).
    {XK_1, KEY_1}, {XK_2, KEY_2}, {XK_3, KEY_3}, {XK_4, KEY_4}, {XK_5, KEY_5},
    {XK_6, KEY_6}, {XK_7, KEY_7}, {XK_8, KEY_8}, {XK_9, KEY_9}, {XK_0, KEY_0},
    {XK_exclam, KEY_1}, {XK_at, KEY_2}, {XK_numbersign, KEY_3}, {XK_dollar, KEY_4},
    {XK_percent, KEY_5}, {XK_asciicircum, KEY_6}, {XK_ampersand, KEY_7}, {XK_asterisk, KEY_8},
    {XK_parenleft, KEY_9}, {XK_parenright, KEY_0},

    // Punctuation keys and their shifted symbols.
    {XK_minus, KEY_MINUS}, {XK_underscore, KEY_MINUS},
    {XK_equal, KEY_EQUAL}, {XK_plus, KEY_EQUAL},
    {XK_bracketleft, KEY_LEFTBRACE}, {XK_braceleft, KEY_LEFTBRACE},
    {XK_bracketright, KEY_RIGHTBRACE}, {XK_braceright, KEY_RIGHTBRACE},
    {XK_backslash, KEY_BACKSLASH}, {XK_bar, KEY_BACKSLASH},
    {XK_semicolon, KEY_SEMICOLON}, {XK_colon, KEY_SEMICOLON},
    {XK_apostrophe, KEY_APOSTROPHE}, {XK_quotedbl, KEY_APOSTROPHE},
    {XK_grave, KEY_GRAVE}, {XK_asciitilde, KEY_GRAVE},
    {XK_comma, KEY_COMMA}, {XK_less, KEY_COMMA},
    {XK_period, KEY_DOT}, {XK_greater, KEY_DOT},
    {XK_slash, KEY_SLASH}, {XK_question, KEY_SLASH},
    {XK_space, KEY_SPACE},

    // Editing and control keys.
    {XK_BackSpace, KEY_BACKSPACE}, {XK_Tab, KEY_TAB}, {XK_ISO_Left_Tab, KEY_TAB},
    {XK_Return, KEY_ENTER}, {XK_Linefeed, KEY_ENTER}, {XK_Escape, KEY_ESC},
    {XK_Delete, KEY_DELETE}, {XK_Insert, KEY_INSERT},
    {XK_Home, KEY_HOME}, {XK_End, KEY_END}, {XK_Page_Up, KEY_PAGEUP}, {XK_Page_Down, KEY_PAGEDOWN},
    {XK_Left, KEY_LEFT}, {XK_Up, KEY_UP}, {XK_Right, KEY_RIGHT}, {XK_Down, KEY_DOWN},
    {XK_Print, KEY_SYSRQ}, {XK_Sys_Req, KEY_SYSRQ}, {XK_Pause, KEY_PAUSE}, {XK_Break, KEY_PAUSE},
    {XK_Scroll_Lock, KEY_SCROLLLOCK}, {XK_Num_Lock, KEY_NUMLOCK}, {XK_Caps_Lock, KEY_CAPSLOCK},
    {XK_Menu, KEY_COMPOSE}, {XK_Help, KEY_HELP}, {XK_Cancel, KEY_CANCEL}, {XK_Undo, KEY_UNDO},
    {XK_Redo, KEY_REDO}, {XK_Find, KEY_FIND},

    // Modifiers. AltGr arrives as ISO_Level3_Shift or Mode_switch.
    {XK_Shift_L, KEY_LEFTSHIFT}, {XK_Shift_R, KEY_RIGHTSHIFT},
    {XK_Control_L, KEY_LEFTCTRL}, {XK_Control_R, KEY_RIGHTCTRL},
    {XK_Alt_L, KEY_LEFTALT}, {XK_Alt_R, KEY_RIGHTALT},
    {XK_ISO_Level3_Shift, KEY_RIGHTALT}, {XK_Mode_switch, KEY_RIGHTALT},
    {XK_Meta_L, KEY_LEFTMETA}, {XK_Meta_R, KEY_RIGHTMETA},
    {XK_Super_L, KEY_LEFTMETA}, {XK_Super_R, KEY_RIGHTMETA},
    {XK_Hyper_L, KEY_LEFTMETA}, {XK_Hyper_R, KEY_RIGHTMETA},

    // Function keys.
    {XK_F1, KEY_F1}, {XK_F2, KEY_F2}, {XK_F3, KEY_F3}, {XK_F4, KEY_F4}, {XK_F5, KEY_F5},
    {XK_F6, KEY_F6}, {XK_F7, KEY_F7}, {XK_F8, KEY_F8}, {XK_F9, KEY_F9}, {XK_F10, KEY_F10},
    {XK_F11, KEY_F11}, {XK_F12, KEY_F12}, {XK_F13, KEY_F13}, {XK_F14, KEY_F14},
    {XK_F15, KEY_F15}, {XK_F16, KEY_F16}, {XK_F17, KEY_F17}, {XK_F18, KEY_F18},
    {XK_F19, KEY_F19}, {XK_F20, KEY_F20}, {XK_F21, KEY_F21}, {XK_F22, KEY_F22},
    {XK_F23, KEY_F23}, {XK_F24, KEY_F24},

    // Keypad, with Num Lock on (digits) and off (navigation).
    {XK_KP_0, KEY_KP0}, {XK_KP_1, KEY_KP1}, {XK_KP_2, KEY_KP2}, {XK_KP_3, KEY_KP3},
    {XK_KP_4, KEY_KP4}, {XK_KP_5, KEY_KP5}, {XK_KP_6, KEY_KP6}, {XK_KP_7, KEY_KP7},
    {XK_KP_8, KEY_KP8}, {XK_KP_9, KEY_KP9},
    {XK_KP_Insert, KEY_KP0}, {XK_KP_End, KEY_KP1}, {XK_KP_Down, KEY_KP2}, {XK_KP_Page_Down, KEY_KP3},
    {XK_KP_Left, KEY_KP4}, {XK_KP_Begin, KEY_KP5}, {XK_KP_Right, KEY_KP6}, {XK_KP_Home, KEY_KP7},
    {XK_KP_Up, KEY_KP8}, {XK_KP_Page_Up, KEY_KP9},
    {XK_KP_Decimal, KEY_KPDOT}, {XK_KP_Delete, KEY_KPDOT}, {XK_KP_Separator, KEY_KPCOMMA},
    {XK_KP_Add, KEY_KPPLUS}, {XK_KP_Subtract, KEY_KPMINUS}, {XK_KP_Multiply, KEY_KPASTERISK},
    {XK_KP_Divide, KEY_KPSLASH}, {XK_KP_Enter, KEY_KPENTER}, {XK_KP_Equal, KEY_KPEQUAL},
    {XK_KP_Space, KEY_SPACE}, {XK_KP_Tab, KEY_TAB},
    {XK_KP_F1, KEY_F1}, {XK_KP_F2, KEY_F2}, {XK_KP_F3, KEY_F3}, {XK_KP_F4, KEY_F4},

    // Media and system keys.
    {kXF86AudioLowerVolume, KEY_VOLUMEDOWN}, {kXF86AudioMute, KEY_MUTE},
    {kXF86AudioRaiseVolume, KEY_VOLUMEUP}, {kXF86AudioPlay, KEY_PLAYPAUSE},
    {kXF86AudioPause, KEY_PAUSECD}, {kXF86AudioStop, KEY_STOPCD},
    {kXF86AudioPrev, KEY_PREVIOUSSONG}, {kXF86AudioNext, KEY_NEXTSONG},
    {kXF86HomePage, KEY_HOMEPAGE}, {kXF86Mail, KEY_MAIL}, {kXF86Search, KEY_SEARCH},
    {kXF86Calculator, KEY_CALC}, {kXF86Back, KEY_BACK}, {kXF86Forward, KEY_FORWARD},
    {kXF86Refresh, KEY_REFRESH}, {kXF86PowerOff, KEY_POWER}, {kXF86WakeUp, KEY_WAKEUP},
    {kXF86Eject, KEY_EJECTCD}, {kXF86Sleep, KEY_SLEEP},
};

constexpr size_t kTableSize = sizeof kTable / sizeof kTable[0];

const std::array<Entry, kTableSize>& sorted_table() {
    static const std::array<Entry, kTableSize> table = [] {
        std::array<Entry, kTableSize> sorted{};
        std::copy(std::begin(kTable), std::end(kTable), sorted.begin());
        std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.keysym < b.keysym; });
        return sorted;
    }();
    return table;
}

// X11 "Unicode keysyms" (keysymdef.h): 0x01000000 + code point. Printable
// ASCII has Latin-1 keysyms of the same value.
constexpr uint32_t kUnicodeKeysymBase = 0x01000000;

}  // namespace

uint16_t linux_key_from_keysym(uint32_t keysym) {
    if (keysym >= kUnicodeKeysymBase + 0x20 && keysym <= kUnicodeKeysymBase + 0x7e) keysym -= kUnicodeKeysymBase;
    const auto& table = sorted_table();
    const auto found = std::lower_bound(table.begin(), table.end(), keysym,
                                        [](const Entry& entry, uint32_t value) { return entry.keysym < value; });
    if (found == table.end() || found->keysym != keysym) return KEY_RESERVED;
    return found->code;
}

}  // namespace atl::display
