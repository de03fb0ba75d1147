// Strict base64 decoding (RFC 4648 section 4): the standard alphabet, padding
// required, no whitespace. Used for the link's cursor pixels.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atl::display {

// The decoded bytes, or nothing when `text` is not canonical base64.
std::optional<std::vector<uint8_t>> decode_base64(std::string_view text);
std::string encode_base64(const uint8_t* data, size_t size);

}  // namespace atl::display
