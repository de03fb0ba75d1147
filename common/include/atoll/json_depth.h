// How deeply arrays and objects nest in a JSON text, counted on the text before
// it is parsed: nlohmann::json copies, prints and destroys a value recursively,
// so text from outside (a VMM's display link, a client's VM definition) is
// refused past a depth limit first.
#pragma once

#include <cstddef>
#include <limits>
#include <string_view>

namespace atl {

// Brackets inside strings do not count; a closing bracket with nothing open is
// passed over (the parser refuses such a text anyway). Stops counting, and
// returns, as soon as the depth exceeds `stop_after`.
inline size_t json_nesting_depth(std::string_view text, size_t stop_after = std::numeric_limits<size_t>::max()) {
    size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) deepest = depth;
            if (deepest > stop_after) return deepest;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

}  // namespace atl
