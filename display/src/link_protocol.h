// The display link between atoll-vmm and atoll-display
// (display/docs/display-protocol.md): message types, their validation, their
// encoding, and the framing (4-byte little-endian length, JSON, SCM_RIGHTS).
//
// Everything here is pure: no sockets, no mappings. The parser is what a
// hostile VMM reaches first, so it is the fuzz target
// (tests/fuzz/display_message_fuzz.cpp).
#pragma once

#include <atoll/result.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace atl::display::link {

inline constexpr int kProtocolVersion = 1;
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
// Surfaces, cursors and requests stay within these (virtio-gpu guests ask for
// at most 16384 pixels a side; a viewer's resize request, 64..8192).
inline constexpr uint32_t kMaxScanouts = 16;
inline constexpr uint32_t kMaxSurfaceSide = 16384;
inline constexpr uint64_t kMaxSurfaceBytes = 1ull << 30;
inline constexpr uint32_t kMaxCursorSide = 64;
inline constexpr size_t kMaxDamageRects = 4096;
inline constexpr uint32_t kMinResizeSide = 64;
inline constexpr uint32_t kMaxResizeSide = 8192;
inline constexpr uint32_t kPointerMax = 32767;
// Nesting deeper than this is refused before the JSON parser sees it.
inline constexpr size_t kMaxJsonDepth = 8;

struct Rect {
    uint32_t x = 0, y = 0, width = 0, height = 0;
    bool operator==(const Rect&) const = default;
};

// ---- atoll-vmm -> atoll-display ----

struct Hello {
    std::string vm_name;  // atolld's VM name rule: 1..64 of [A-Za-z0-9._-], starting with a letter or digit
    std::string vm_uuid;  // may be empty
    uint32_t scanouts = 1;
};

// "XRGB8888": 32-bit little-endian pixels, bytes B, G, R, X.
struct Surface {
    uint32_t scanout = 0;
    uint32_t width = 0, height = 0, stride = 0;
    uint64_t offset = 0;
};

struct Disable {
    uint32_t scanout = 0;
};

struct Damage {
    uint32_t scanout = 0;
    std::vector<Rect> rects;
};

struct CursorShape {
    uint32_t hot_x = 0, hot_y = 0, width = 0, height = 0;
    std::vector<uint32_t> pixels;  // ARGB8888, width*height, row by row
};

struct Cursor {
    uint32_t scanout = 0;
    int32_t x = 0, y = 0;
    bool visible = false;
    std::optional<CursorShape> shape;  // present when the shape changed
};

struct Modes {
    uint32_t scanout = 0;
    uint32_t preferred_width = 0, preferred_height = 0;
};

using VmmMessage = std::variant<Hello, Surface, Disable, Damage, Cursor, Modes>;

// How many file descriptors a message of this kind carries.
size_t fds_required(const VmmMessage& message);

// Parses and validates one message body (the JSON after the length word).
// Checks types, value ranges and the declared "fds" count; what depends on the
// connection's state (the scanout count from hello, the current surface) is
// the caller's. The error says what was wrong, for the one log line.
Result<VmmMessage> parse_vmm_message(std::string_view body);

bool valid_vm_name(std::string_view name);

// ---- atoll-display -> atoll-vmm: encoded frames (length word + JSON) ----

std::string encode_welcome();
std::string encode_key(uint16_t code, bool pressed);
std::string encode_pointer(uint32_t x, uint32_t y, uint32_t buttons);
std::string encode_wheel(int32_t dy);
std::string encode_motion(int32_t dx, int32_t dy, uint32_t buttons);
std::string encode_resize(uint32_t scanout, uint32_t width, uint32_t height);
// Frames an arbitrary body (tests and the fake VMM use it).
std::string frame(std::string_view body);

// Pointer buttons on the link: bit 0 left, bit 1 right, bit 2 middle.
inline constexpr uint32_t kButtonLeft = 1, kButtonRight = 2, kButtonMiddle = 4;

// ---- framing ----

// Splits a byte stream plus the file descriptors that arrived with it into
// messages. File descriptors travel with the first byte of the message that
// declares them, so they queue in arrival order and each message takes as many
// as it declares. Owns queued descriptors and closes what it never hands out.
class FrameReader {
public:
    struct Frame {
        std::string body;
        // True when no byte after this frame has arrived yet: queued file
        // descriptors cannot belong to a later message.
        bool nothing_after = false;
    };

    FrameReader() = default;
    ~FrameReader();
    FrameReader(const FrameReader&) = delete;
    FrameReader& operator=(const FrameReader&) = delete;

    static constexpr size_t kMaxQueuedFds = 4;

    // Adds received bytes and descriptors (the reader owns `fds` from here on).
    // Fails when more descriptors queue up than any message could claim.
    Result<void> feed(std::string_view bytes, const std::vector<int>& fds);
    // The next complete frame, nothing when more bytes are needed, or an
    // error for a bad length word.
    Result<std::optional<Frame>> next();
    // Takes `count` queued descriptors (the caller owns them), or fails
    // without taking any when fewer are queued.
    Result<std::vector<int>> take_fds(size_t count);
    size_t queued_fds() const { return fds_.size(); }
    size_t buffered_bytes() const { return buffer_.size() - consumed_; }

private:
    std::string buffer_;
    size_t consumed_ = 0;
    std::deque<int> fds_;
};

}  // namespace atl::display::link
