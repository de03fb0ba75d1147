#include <atoll/display/keysym.h>

#include <gtest/gtest.h>
#include <linux/input-event-codes.h>
#include <rfb/keysym.h>

namespace atl::display {
namespace {

TEST(KeysymTest, LettersOfBothCasesAreTheSameKey) {
    EXPECT_EQ(linux_key_from_keysym(XK_a), KEY_A);
    EXPECT_EQ(linux_key_from_keysym(XK_A), KEY_A);
    EXPECT_EQ(linux_key_from_keysym(XK_q), KEY_Q);
    EXPECT_EQ(linux_key_from_keysym(XK_Z), KEY_Z);
    EXPECT_EQ(linux_key_from_keysym(XK_m), KEY_M);
}

TEST(KeysymTest, EveryLetterHasItsOwnKey) {
    const uint16_t expected[] = {KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I,
                                 KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R,
                                 KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z};
    for (int i = 0; i < 26; ++i) {
        EXPECT_EQ(linux_key_from_keysym(XK_a + i), expected[i]) << char('a' + i);
        EXPECT_EQ(linux_key_from_keysym(XK_A + i), expected[i]) << char('A' + i);
    }
}

TEST(KeysymTest, DigitsAndTheirShiftedSymbolsUseTheDigitRow) {
    EXPECT_EQ(linux_key_from_keysym(XK_1), KEY_1);
    EXPECT_EQ(linux_key_from_keysym(XK_9), KEY_9);
    EXPECT_EQ(linux_key_from_keysym(XK_0), KEY_0);
    EXPECT_EQ(linux_key_from_keysym(XK_exclam), KEY_1);
    EXPECT_EQ(linux_key_from_keysym(XK_at), KEY_2);
    EXPECT_EQ(linux_key_from_keysym(XK_numbersign), KEY_3);
    EXPECT_EQ(linux_key_from_keysym(XK_dollar), KEY_4);
    EXPECT_EQ(linux_key_from_keysym(XK_percent), KEY_5);
    EXPECT_EQ(linux_key_from_keysym(XK_asciicircum), KEY_6);
    EXPECT_EQ(linux_key_from_keysym(XK_ampersand), KEY_7);
    EXPECT_EQ(linux_key_from_keysym(XK_asterisk), KEY_8);
    EXPECT_EQ(linux_key_from_keysym(XK_parenleft), KEY_9);
    EXPECT_EQ(linux_key_from_keysym(XK_parenright), KEY_0);
}

TEST(KeysymTest, PunctuationFollowsTheUsLayout) {
    EXPECT_EQ(linux_key_from_keysym(XK_minus), KEY_MINUS);
    EXPECT_EQ(linux_key_from_keysym(XK_underscore), KEY_MINUS);
    EXPECT_EQ(linux_key_from_keysym(XK_equal), KEY_EQUAL);
    EXPECT_EQ(linux_key_from_keysym(XK_plus), KEY_EQUAL);
    EXPECT_EQ(linux_key_from_keysym(XK_bracketleft), KEY_LEFTBRACE);
    EXPECT_EQ(linux_key_from_keysym(XK_braceright), KEY_RIGHTBRACE);
    EXPECT_EQ(linux_key_from_keysym(XK_semicolon), KEY_SEMICOLON);
    EXPECT_EQ(linux_key_from_keysym(XK_colon), KEY_SEMICOLON);
    EXPECT_EQ(linux_key_from_keysym(XK_apostrophe), KEY_APOSTROPHE);
    EXPECT_EQ(linux_key_from_keysym(XK_quotedbl), KEY_APOSTROPHE);
    EXPECT_EQ(linux_key_from_keysym(XK_grave), KEY_GRAVE);
    EXPECT_EQ(linux_key_from_keysym(XK_asciitilde), KEY_GRAVE);
    EXPECT_EQ(linux_key_from_keysym(XK_backslash), KEY_BACKSLASH);
    EXPECT_EQ(linux_key_from_keysym(XK_bar), KEY_BACKSLASH);
    EXPECT_EQ(linux_key_from_keysym(XK_comma), KEY_COMMA);
    EXPECT_EQ(linux_key_from_keysym(XK_less), KEY_COMMA);
    EXPECT_EQ(linux_key_from_keysym(XK_period), KEY_DOT);
    EXPECT_EQ(linux_key_from_keysym(XK_greater), KEY_DOT);
    EXPECT_EQ(linux_key_from_keysym(XK_slash), KEY_SLASH);
    EXPECT_EQ(linux_key_from_keysym(XK_question), KEY_SLASH);
    EXPECT_EQ(linux_key_from_keysym(XK_space), KEY_SPACE);
}

TEST(KeysymTest, EditingAndNavigationKeys) {
    EXPECT_EQ(linux_key_from_keysym(XK_Return), KEY_ENTER);
    EXPECT_EQ(linux_key_from_keysym(XK_BackSpace), KEY_BACKSPACE);
    EXPECT_EQ(linux_key_from_keysym(XK_Tab), KEY_TAB);
    EXPECT_EQ(linux_key_from_keysym(XK_ISO_Left_Tab), KEY_TAB);  // Shift+Tab
    EXPECT_EQ(linux_key_from_keysym(XK_Escape), KEY_ESC);
    EXPECT_EQ(linux_key_from_keysym(XK_Delete), KEY_DELETE);
    EXPECT_EQ(linux_key_from_keysym(XK_Insert), KEY_INSERT);
    EXPECT_EQ(linux_key_from_keysym(XK_Home), KEY_HOME);
    EXPECT_EQ(linux_key_from_keysym(XK_End), KEY_END);
    EXPECT_EQ(linux_key_from_keysym(XK_Page_Up), KEY_PAGEUP);
    EXPECT_EQ(linux_key_from_keysym(XK_Page_Down), KEY_PAGEDOWN);
    EXPECT_EQ(linux_key_from_keysym(XK_Left), KEY_LEFT);
    EXPECT_EQ(linux_key_from_keysym(XK_Up), KEY_UP);
    EXPECT_EQ(linux_key_from_keysym(XK_Right), KEY_RIGHT);
    EXPECT_EQ(linux_key_from_keysym(XK_Down), KEY_DOWN);
    EXPECT_EQ(linux_key_from_keysym(XK_Print), KEY_SYSRQ);
    EXPECT_EQ(linux_key_from_keysym(XK_Pause), KEY_PAUSE);
    EXPECT_EQ(linux_key_from_keysym(XK_Scroll_Lock), KEY_SCROLLLOCK);
    EXPECT_EQ(linux_key_from_keysym(XK_Caps_Lock), KEY_CAPSLOCK);
    EXPECT_EQ(linux_key_from_keysym(XK_Num_Lock), KEY_NUMLOCK);
    EXPECT_EQ(linux_key_from_keysym(XK_Menu), KEY_COMPOSE);
}

TEST(KeysymTest, ModifiersKeepTheirSide) {
    EXPECT_EQ(linux_key_from_keysym(XK_Shift_L), KEY_LEFTSHIFT);
    EXPECT_EQ(linux_key_from_keysym(XK_Shift_R), KEY_RIGHTSHIFT);
    EXPECT_EQ(linux_key_from_keysym(XK_Control_L), KEY_LEFTCTRL);
    EXPECT_EQ(linux_key_from_keysym(XK_Control_R), KEY_RIGHTCTRL);
    EXPECT_EQ(linux_key_from_keysym(XK_Alt_L), KEY_LEFTALT);
    EXPECT_EQ(linux_key_from_keysym(XK_Alt_R), KEY_RIGHTALT);
    EXPECT_EQ(linux_key_from_keysym(XK_ISO_Level3_Shift), KEY_RIGHTALT);  // AltGr
    EXPECT_EQ(linux_key_from_keysym(XK_Super_L), KEY_LEFTMETA);
    EXPECT_EQ(linux_key_from_keysym(XK_Super_R), KEY_RIGHTMETA);
    EXPECT_EQ(linux_key_from_keysym(XK_Meta_L), KEY_LEFTMETA);
}

TEST(KeysymTest, FunctionKeysUpToF24) {
    EXPECT_EQ(linux_key_from_keysym(XK_F1), KEY_F1);
    EXPECT_EQ(linux_key_from_keysym(XK_F10), KEY_F10);
    EXPECT_EQ(linux_key_from_keysym(XK_F11), KEY_F11);  // not contiguous with F10 in Linux
    EXPECT_EQ(linux_key_from_keysym(XK_F12), KEY_F12);
    EXPECT_EQ(linux_key_from_keysym(XK_F13), KEY_F13);
    EXPECT_EQ(linux_key_from_keysym(XK_F24), KEY_F24);
}

TEST(KeysymTest, KeypadWithNumLockOnAndOff) {
    EXPECT_EQ(linux_key_from_keysym(XK_KP_0), KEY_KP0);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_5), KEY_KP5);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_9), KEY_KP9);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Insert), KEY_KP0);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Begin), KEY_KP5);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Page_Up), KEY_KP9);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Enter), KEY_KPENTER);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Add), KEY_KPPLUS);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Subtract), KEY_KPMINUS);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Multiply), KEY_KPASTERISK);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Divide), KEY_KPSLASH);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Decimal), KEY_KPDOT);
    EXPECT_EQ(linux_key_from_keysym(XK_KP_Delete), KEY_KPDOT);
}

TEST(KeysymTest, MediaKeys) {
    EXPECT_EQ(linux_key_from_keysym(0x1008FF11), KEY_VOLUMEDOWN);
    EXPECT_EQ(linux_key_from_keysym(0x1008FF12), KEY_MUTE);
    EXPECT_EQ(linux_key_from_keysym(0x1008FF13), KEY_VOLUMEUP);
    EXPECT_EQ(linux_key_from_keysym(0x1008FF2A), KEY_POWER);
}

TEST(KeysymTest, UnicodeKeysymsForAsciiAreTheirLatin1Keysyms) {
    EXPECT_EQ(linux_key_from_keysym(0x01000000 + 'a'), KEY_A);
    EXPECT_EQ(linux_key_from_keysym(0x01000000 + '!'), KEY_1);
    EXPECT_EQ(linux_key_from_keysym(0x01000000 + '~'), KEY_GRAVE);
}

TEST(KeysymTest, UnknownKeysymsHaveNoKey) {
    EXPECT_EQ(linux_key_from_keysym(0), 0);
    EXPECT_EQ(linux_key_from_keysym(XK_eacute), 0);
    EXPECT_EQ(linux_key_from_keysym(0x010020AC), 0);  // Unicode euro sign
    EXPECT_EQ(linux_key_from_keysym(0xffffffff), 0);
}

}  // namespace
}  // namespace atl::display
