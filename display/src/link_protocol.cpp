#include "link_protocol.h"

#include "base64.h"

#include <atoll/json_depth.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstring>
#include <limits>

namespace atl::display::link {

using nlohmann::json;

namespace {

// Field readers: each names the field in its error.
class Fields {
public:
    explicit Fields(const json& object) : object_(object) {}

    bool has(const char* key) const { return object_.contains(key); }

    Result<int64_t> integer(const char* key, int64_t min, int64_t max) const {
        auto found = object_.find(key);
        if (found == object_.end()) return make_error(std::string("missing \"") + key + "\"");
        int64_t value;
        if (found->is_number_unsigned()) {
            const uint64_t raw = found->get<uint64_t>();
            if (raw > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return out_of_range(key, min, max);
            value = static_cast<int64_t>(raw);
        } else if (found->is_number_integer()) {
            value = found->get<int64_t>();
        } else {
            return make_error(std::string("\"") + key + "\" is not an integer");
        }
        if (value < min || value > max) return out_of_range(key, min, max);
        return value;
    }

    Result<uint32_t> u32(const char* key, uint32_t min, uint32_t max) const {
        auto value = integer(key, min, max);
        if (!value) return value.error();
        return static_cast<uint32_t>(*value);
    }

    Result<bool> boolean(const char* key) const {
        auto found = object_.find(key);
        if (found == object_.end()) return make_error(std::string("missing \"") + key + "\"");
        if (!found->is_boolean()) return make_error(std::string("\"") + key + "\" is not a boolean");
        return found->get<bool>();
    }

    Result<std::string> string(const char* key, size_t max_bytes) const {
        auto found = object_.find(key);
        if (found == object_.end()) return make_error(std::string("missing \"") + key + "\"");
        if (!found->is_string()) return make_error(std::string("\"") + key + "\" is not a string");
        std::string value = found->get<std::string>();
        if (value.size() > max_bytes) return make_error(std::string("\"") + key + "\" is too long");
        return value;
    }

    const json& at(const char* key) const { return object_.at(key); }

private:
    static Error out_of_range(const char* key, int64_t min, int64_t max) {
        return make_error(std::string("\"") + key + "\" out of range " + std::to_string(min) + ".." +
                          std::to_string(max));
    }
    const json& object_;
};

#define ATOLL_FIELD(variable, expression)          \
    auto variable##_result = (expression);         \
    if (!variable##_result) return variable##_result.error(); \
    const auto variable = *variable##_result

constexpr int64_t kMaxScanoutIndex = kMaxScanouts - 1;

Result<VmmMessage> parse_hello(const Fields& fields) {
    ATOLL_FIELD(protocol, fields.integer("protocol", 0, std::numeric_limits<int32_t>::max()));
    if (protocol != kProtocolVersion)
        return make_error("protocol " + std::to_string(protocol) + " not supported (this server speaks " +
                          std::to_string(kProtocolVersion) + ")");
    Hello hello;
    ATOLL_FIELD(name, fields.string("vm_name", 64));
    if (!valid_vm_name(name)) return make_error("\"vm_name\" is not a valid VM name");
    hello.vm_name = name;
    if (fields.has("vm_uuid")) {
        ATOLL_FIELD(uuid, fields.string("vm_uuid", 64));
        for (char c : uuid)
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-'))
                return make_error("\"vm_uuid\" is not a UUID");
        hello.vm_uuid = uuid;
    }
    // 0: a VM with input devices but no display adapter.
    ATOLL_FIELD(scanouts, fields.u32("scanouts", 0, kMaxScanouts));
    hello.scanouts = scanouts;
    return VmmMessage{hello};
}

Result<VmmMessage> parse_surface(const Fields& fields) {
    Surface surface;
    ATOLL_FIELD(scanout, fields.u32("scanout", 0, kMaxScanoutIndex));
    ATOLL_FIELD(width, fields.u32("width", 1, kMaxSurfaceSide));
    ATOLL_FIELD(height, fields.u32("height", 1, kMaxSurfaceSide));
    ATOLL_FIELD(stride, fields.u32("stride", 4, kMaxSurfaceSide * 4u * 2u));
    ATOLL_FIELD(format, fields.string("format", 16));
    ATOLL_FIELD(offset, fields.integer("offset", 0, int64_t{1} << 40));
    if (format != "XRGB8888") return make_error("format \"" + format + "\" not supported (XRGB8888 is)");
    if (stride < uint64_t{width} * 4) return make_error("stride smaller than width * 4");
    if (stride % 4 != 0 || offset % 4 != 0) return make_error("stride and offset must be multiples of 4");
    if (uint64_t{stride} * height > kMaxSurfaceBytes) return make_error("surface larger than 1 GiB");
    surface.scanout = scanout;
    surface.width = width;
    surface.height = height;
    surface.stride = stride;
    surface.offset = static_cast<uint64_t>(offset);
    return VmmMessage{surface};
}

Result<VmmMessage> parse_disable(const Fields& fields) {
    ATOLL_FIELD(scanout, fields.u32("scanout", 0, kMaxScanoutIndex));
    return VmmMessage{Disable{scanout}};
}

Result<VmmMessage> parse_damage(const Fields& fields) {
    Damage damage;
    ATOLL_FIELD(scanout, fields.u32("scanout", 0, kMaxScanoutIndex));
    damage.scanout = scanout;
    if (!fields.has("rects")) return make_error("missing \"rects\"");
    const json& rects = fields.at("rects");
    if (!rects.is_array()) return make_error("\"rects\" is not an array");
    if (rects.size() > kMaxDamageRects) return make_error("more than 4096 damage rectangles");
    damage.rects.reserve(rects.size());
    for (const json& rect : rects) {
        if (!rect.is_array() || rect.size() != 4) return make_error("a damage rectangle is not [x, y, w, h]");
        uint32_t values[4];
        for (size_t i = 0; i < 4; ++i) {
            if (!rect[i].is_number_unsigned() || rect[i].get<uint64_t>() > kMaxSurfaceSide)
                return make_error("a damage rectangle has a value outside 0..16384");
            values[i] = static_cast<uint32_t>(rect[i].get<uint64_t>());
        }
        if (values[0] + values[2] > kMaxSurfaceSide || values[1] + values[3] > kMaxSurfaceSide)
            return make_error("a damage rectangle ends beyond 16384");
        damage.rects.push_back(Rect{values[0], values[1], values[2], values[3]});
    }
    return VmmMessage{std::move(damage)};
}

Result<VmmMessage> parse_cursor(const Fields& fields) {
    Cursor cursor;
    ATOLL_FIELD(scanout, fields.u32("scanout", 0, kMaxScanoutIndex));
    // Off-screen too (display-protocol.md's range; atoll-vmm clamps the guest's).
    ATOLL_FIELD(x, fields.integer("x", -int64_t{kMaxSurfaceSide}, 2 * int64_t{kMaxSurfaceSide}));
    ATOLL_FIELD(y, fields.integer("y", -int64_t{kMaxSurfaceSide}, 2 * int64_t{kMaxSurfaceSide}));
    ATOLL_FIELD(visible, fields.boolean("visible"));
    cursor.scanout = scanout;
    cursor.x = static_cast<int32_t>(x);
    cursor.y = static_cast<int32_t>(y);
    cursor.visible = visible;
    const char* shape_keys[] = {"hot_x", "hot_y", "width", "height", "pixels"};
    int present = 0;
    for (const char* key : shape_keys) present += fields.has(key) ? 1 : 0;
    if (present == 0) return VmmMessage{std::move(cursor)};
    if (present != 5) return make_error("a cursor shape needs hot_x, hot_y, width, height and pixels");
    CursorShape shape;
    ATOLL_FIELD(width, fields.u32("width", 1, kMaxCursorSide));
    ATOLL_FIELD(height, fields.u32("height", 1, kMaxCursorSide));
    ATOLL_FIELD(hot_x, fields.u32("hot_x", 0, width - 1));
    ATOLL_FIELD(hot_y, fields.u32("hot_y", 0, height - 1));
    ATOLL_FIELD(pixels, fields.string("pixels", (kMaxCursorSide * kMaxCursorSide * 4 + 2) / 3 * 4));
    auto bytes = decode_base64(pixels);
    if (!bytes) return make_error("\"pixels\" is not base64");
    if (bytes->size() != size_t{width} * height * 4) return make_error("\"pixels\" is not width * height * 4 bytes");
    shape.width = width;
    shape.height = height;
    shape.hot_x = hot_x;
    shape.hot_y = hot_y;
    shape.pixels.resize(size_t{width} * height);
    for (size_t i = 0; i < shape.pixels.size(); ++i) {
        const uint8_t* p = bytes->data() + i * 4;  // little-endian ARGB8888
        shape.pixels[i] = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    }
    cursor.shape = std::move(shape);
    return VmmMessage{std::move(cursor)};
}

Result<VmmMessage> parse_modes(const Fields& fields) {
    ATOLL_FIELD(scanout, fields.u32("scanout", 0, kMaxScanoutIndex));
    ATOLL_FIELD(width, fields.u32("preferred_width", 1, kMaxSurfaceSide));
    ATOLL_FIELD(height, fields.u32("preferred_height", 1, kMaxSurfaceSide));
    return VmmMessage{Modes{scanout, width, height}};
}

#undef ATOLL_FIELD

std::string encode(const json& message) { return frame(message.dump()); }

}  // namespace

bool valid_vm_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    auto letter_or_digit = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!letter_or_digit(name.front())) return false;
    for (char c : name)
        if (!letter_or_digit(c) && c != '.' && c != '_' && c != '-') return false;
    return true;
}

size_t fds_required(const VmmMessage& message) { return std::holds_alternative<Surface>(message) ? 1 : 0; }

Result<VmmMessage> parse_vmm_message(std::string_view body) {
    if (body.size() > kMaxMessageBytes) return make_error("message longer than 64 KiB");
    if (json_nesting_depth(body, kMaxJsonDepth) > kMaxJsonDepth) return make_error("JSON nested too deeply");
    const json message = json::parse(body.begin(), body.end(), nullptr, false);
    if (message.is_discarded()) return make_error("not valid JSON");
    if (!message.is_object()) return make_error("not a JSON object");
    const Fields fields(message);
    auto type_result = fields.string("type", 32);
    if (!type_result) return type_result.error();
    const std::string& type = *type_result;

    Result<VmmMessage> parsed = make_error("unknown type \"" + type + "\"");
    if (type == "hello") parsed = parse_hello(fields);
    else if (type == "surface") parsed = parse_surface(fields);
    else if (type == "disable") parsed = parse_disable(fields);
    else if (type == "damage") parsed = parse_damage(fields);
    else if (type == "cursor") parsed = parse_cursor(fields);
    else if (type == "modes") parsed = parse_modes(fields);
    if (!parsed) return make_error(type + ": " + parsed.error().message);

    int64_t declared_fds = 0;
    if (fields.has("fds")) {
        auto fds = fields.integer("fds", 0, 16);
        if (!fds) return make_error(type + ": " + fds.error().message);
        declared_fds = *fds;
    }
    if (static_cast<size_t>(declared_fds) != fds_required(*parsed))
        return make_error(type + ": declares " + std::to_string(declared_fds) + " file descriptors, needs " +
                          std::to_string(fds_required(*parsed)));
    return parsed;
}

std::string frame(std::string_view body) {
    std::string framed(4, '\0');
    const uint32_t size = static_cast<uint32_t>(body.size());
    for (int i = 0; i < 4; ++i) framed[i] = static_cast<char>(size >> (8 * i));
    framed.append(body);
    return framed;
}

std::string encode_welcome() { return encode({{"type", "welcome"}, {"protocol", kProtocolVersion}}); }

std::string encode_key(uint16_t code, bool pressed) {
    return encode({{"type", "key"}, {"code", code}, {"pressed", pressed}});
}

std::string encode_pointer(uint32_t x, uint32_t y, uint32_t buttons) {
    return encode({{"type", "pointer"}, {"x", x}, {"y", y}, {"buttons", buttons}});
}

std::string encode_wheel(int32_t dy) { return encode({{"type", "wheel"}, {"dy", dy}}); }

std::string encode_motion(int32_t dx, int32_t dy, uint32_t buttons) {
    return encode({{"type", "motion"}, {"dx", dx}, {"dy", dy}, {"buttons", buttons}});
}

std::string encode_resize(uint32_t scanout, uint32_t width, uint32_t height) {
    return encode({{"type", "resize"}, {"scanout", scanout}, {"width", width}, {"height", height}});
}

// ---- FrameReader ----

FrameReader::~FrameReader() {
    for (int fd : fds_) close(fd);
}

Result<void> FrameReader::feed(std::string_view bytes, const std::vector<int>& fds) {
    for (int fd : fds) fds_.push_back(fd);
    if (fds_.size() > kMaxQueuedFds) return make_error("more file descriptors than messages claim");
    if (consumed_ > 0 && consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
    }
    buffer_.append(bytes);
    return {};
}

Result<std::optional<FrameReader::Frame>> FrameReader::next() {
    const size_t available = buffer_.size() - consumed_;
    if (available < 4) return std::optional<Frame>{};
    const auto* header = reinterpret_cast<const uint8_t*>(buffer_.data() + consumed_);
    const uint32_t size = uint32_t{header[0]} | uint32_t{header[1]} << 8 | uint32_t{header[2]} << 16 |
                          uint32_t{header[3]} << 24;
    if (size == 0 || size > kMaxMessageBytes)
        return make_error("message length " + std::to_string(size) + " outside 1..65536");
    if (available - 4 < size) return std::optional<Frame>{};
    Frame frame;
    frame.body.assign(buffer_, consumed_ + 4, size);
    consumed_ += 4 + size;
    frame.nothing_after = consumed_ == buffer_.size();
    // Drop consumed bytes once they dominate the buffer.
    if (consumed_ > 64 * 1024 && consumed_ * 2 > buffer_.size()) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
    }
    return std::optional<Frame>{std::move(frame)};
}

Result<std::vector<int>> FrameReader::take_fds(size_t count) {
    if (fds_.size() < count)
        return make_error("declares " + std::to_string(count) + " file descriptors, " +
                          std::to_string(fds_.size()) + " arrived");
    std::vector<int> taken(fds_.begin(), fds_.begin() + static_cast<std::ptrdiff_t>(count));
    fds_.erase(fds_.begin(), fds_.begin() + static_cast<std::ptrdiff_t>(count));
    return taken;
}

}  // namespace atl::display::link
