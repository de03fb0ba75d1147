#include "base64.h"

#include <array>

namespace atl::display {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_values() {
    std::array<int8_t, 256> values{};
    for (auto& value : values) value = -1;
    for (int i = 0; i < 64; ++i) values[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
    return values;
}

constexpr std::array<int8_t, 256> kValues = make_values();

}  // namespace

std::optional<std::vector<uint8_t>> decode_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::vector<uint8_t> bytes;
    bytes.reserve(text.size() / 4 * 3);
    for (size_t at = 0; at < text.size(); at += 4) {
        const bool last = at + 4 == text.size();
        int values[4];
        int padding = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = text[at + i];
            if (c == '=') {
                // Padding only at the end of the last quantum, and at most two.
                if (!last || i < 2) return std::nullopt;
                values[i] = 0;
                ++padding;
                continue;
            }
            if (padding > 0) return std::nullopt;
            values[i] = kValues[static_cast<uint8_t>(c)];
            if (values[i] < 0) return std::nullopt;
        }
        const uint32_t group = static_cast<uint32_t>(values[0]) << 18 | static_cast<uint32_t>(values[1]) << 12 |
                               static_cast<uint32_t>(values[2]) << 6 | static_cast<uint32_t>(values[3]);
        // Canonical form: the bits a padded quantum drops must be zero.
        if (padding == 1 && (group & 0xff) != 0) return std::nullopt;
        if (padding == 2 && (group & 0xffff) != 0) return std::nullopt;
        bytes.push_back(static_cast<uint8_t>(group >> 16));
        if (padding < 2) bytes.push_back(static_cast<uint8_t>(group >> 8));
        if (padding < 1) bytes.push_back(static_cast<uint8_t>(group));
    }
    return bytes;
}

std::string encode_base64(const uint8_t* data, size_t size) {
    std::string text;
    text.reserve((size + 2) / 3 * 4);
    for (size_t at = 0; at < size; at += 3) {
        const size_t left = size - at;
        const uint32_t group = static_cast<uint32_t>(data[at]) << 16 |
                               (left > 1 ? static_cast<uint32_t>(data[at + 1]) << 8 : 0) |
                               (left > 2 ? static_cast<uint32_t>(data[at + 2]) : 0);
        text += kAlphabet[group >> 18 & 63];
        text += kAlphabet[group >> 12 & 63];
        text += left > 1 ? kAlphabet[group >> 6 & 63] : '=';
        text += left > 2 ? kAlphabet[group & 63] : '=';
    }
    return text;
}

}  // namespace atl::display
