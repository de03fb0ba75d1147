#include "devices/virtio/gpu.h"

#include "devices/virtio/edid.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1
#endif

namespace atl::vmm::virtio {

namespace {

// Section 5.7.6.7: the header of every request and response.
struct CtrlHeader {
    uint32_t type;
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint8_t ring_idx;
    uint8_t padding[3];
};
static_assert(sizeof(CtrlHeader) == 24);

// Section 5.7.6.8: request bodies (what follows the header).
struct WireRect {
    uint32_t x, y, width, height;
};
struct ResourceCreate2d {
    uint32_t resource_id, format, width, height;
};
struct ResourceId {  // RESOURCE_UNREF, RESOURCE_DETACH_BACKING
    uint32_t resource_id, padding;
};
struct SetScanout {
    WireRect rect;
    uint32_t scanout_id, resource_id;
};
struct ResourceFlush {
    WireRect rect;
    uint32_t resource_id, padding;
};
struct TransferToHost2d {
    WireRect rect;
    uint64_t offset;
    uint32_t resource_id, padding;
};
static_assert(sizeof(TransferToHost2d) == 32);
struct AttachBacking {
    uint32_t resource_id, nr_entries;
};
struct MemEntry {
    uint64_t address;
    uint32_t length, padding;
};
static_assert(sizeof(MemEntry) == 16);
struct GetEdid {
    uint32_t scanout, padding;
};
// Section 5.7.6.10.
struct UpdateCursor {
    uint32_t scanout_id, x, y, pos_padding;
    uint32_t resource_id, hot_x, hot_y, padding;
};
static_assert(sizeof(UpdateCursor) == 32);

// Responses.
struct DisplayOne {
    WireRect rect;
    uint32_t enabled, flags;
};
constexpr size_t kMaxWireScanouts = 16;
constexpr size_t kDisplayInfoBytes = sizeof(DisplayOne) * kMaxWireScanouts;
static_assert(kDisplayInfoBytes == 384);
constexpr size_t kEdidPayloadBytes = 8 + 1024;  // size, padding, edid[1024]

// Section 5.7.4: struct virtio_gpu_config.
struct GpuConfig {
    uint32_t events_read, events_clear, num_scanouts, num_capsets;
};

constexpr uint32_t kBytesPerPixel = 4;
constexpr uint64_t kPageBytes = 4096;
constexpr uint32_t kMinModeDimension = 64;
constexpr uint32_t kMaxModeDimension = 8192;

uint64_t round_up_to_page(uint64_t value) { return (value + kPageBytes - 1) / kPageBytes * kPageBytes; }

// Where B, G, R and A (or X) sit in a source pixel of `format`; the host copy
// is always B, G, R, A bytes (XRGB8888/ARGB8888 little-endian). Empty for
// formats that are already in that order.
struct Swizzle {
    bool known = false;
    bool identity = false;
    bool has_alpha = false;
    uint8_t source[4] = {0, 1, 2, 3};
};

Swizzle swizzle_for(uint32_t format) {
    switch (format) {
    case GpuDevice::kFormatB8G8R8A8: return {true, true, true, {0, 1, 2, 3}};
    case GpuDevice::kFormatB8G8R8X8: return {true, true, false, {0, 1, 2, 3}};
    case GpuDevice::kFormatA8R8G8B8: return {true, false, true, {3, 2, 1, 0}};
    case GpuDevice::kFormatX8R8G8B8: return {true, false, false, {3, 2, 1, 0}};
    case GpuDevice::kFormatR8G8B8A8: return {true, false, true, {2, 1, 0, 3}};
    case GpuDevice::kFormatX8B8G8R8: return {true, false, false, {1, 2, 3, 0}};
    case GpuDevice::kFormatA8B8G8R8: return {true, false, true, {1, 2, 3, 0}};
    case GpuDevice::kFormatR8G8B8X8: return {true, false, false, {2, 1, 0, 3}};
    default: return {};
    }
}

// True when `rect` lies inside a width x height area; no addition can overflow.
bool rect_inside(const WireRect& rect, uint32_t width, uint32_t height) {
    return rect.x <= width && rect.width <= width - rect.x && rect.y <= height && rect.height <= height - rect.y;
}

// Both rectangles lie inside one resource (at most 16384 a side): no sum overflows.
GpuRect bounding_box(const GpuRect& a, const GpuRect& b) {
    const uint32_t left = std::min(a.x, b.x), top = std::min(a.y, b.y);
    const uint32_t right = std::max(a.x + a.width, b.x + b.width), bottom = std::max(a.y + a.height, b.y + b.height);
    return {left, top, right - left, bottom - top};
}

// Empty (zero width or height) when they do not overlap.
GpuRect intersection(const WireRect& a, const GpuRect& b) {
    const uint64_t left = std::max<uint64_t>(a.x, b.x), top = std::max<uint64_t>(a.y, b.y);
    const uint64_t right = std::min<uint64_t>(uint64_t{a.x} + a.width, uint64_t{b.x} + b.width);
    const uint64_t bottom = std::min<uint64_t>(uint64_t{a.y} + a.height, uint64_t{b.y} + b.height);
    if (left >= right || top >= bottom) return {};
    return {static_cast<uint32_t>(left), static_cast<uint32_t>(top), static_cast<uint32_t>(right - left),
            static_cast<uint32_t>(bottom - top)};
}

std::string hex(uint32_t value) {
    char text[16];
    snprintf(text, sizeof text, "%#x", value);
    return text;
}

std::string describe(const WireRect& rect) {
    return std::to_string(rect.width) + "x" + std::to_string(rect.height) + "+" + std::to_string(rect.x) + "+" +
           std::to_string(rect.y);
}

template <class T>
std::vector<uint8_t> bytes_of(const T& value) {
    std::vector<uint8_t> bytes(sizeof(T));
    std::memcpy(bytes.data(), &value, sizeof(T));
    return bytes;
}

}  // namespace

GpuDevice::GpuDevice(const GpuDeviceConfig& config) : max_host_memory_bytes_(config.max_host_memory_bytes) {
    const uint32_t count = std::clamp<uint32_t>(config.scanouts, 1, kMaxScanouts);
    scanouts_.resize(count);
    for (auto& scanout : scanouts_) {
        scanout.preferred_width = std::clamp(config.width, kMinModeDimension, kMaxModeDimension);
        scanout.preferred_height = std::clamp(config.height, kMinModeDimension, kMaxModeDimension);
    }
}

GpuDevice::~GpuDevice() {
    for (auto& [id, resource] : resources_) destroy(resource);
}

uint64_t GpuDevice::offered_features() const {
    return kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx | kFeatureEdid;
}

void GpuDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    const GpuConfig config{events_read_, 0, scanout_count(), 0};
    read_config_window(config, offset, data);
}

void GpuDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // Section 5.7.4.1: writing 1 to a bit of events_clear clears it in events_read.
    constexpr uint64_t kClearOffset = offsetof(GpuConfig, events_clear);
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t at = offset + i;
        if (at >= kClearOffset && at < kClearOffset + 4)
            events_read_ &= ~(uint32_t{data[i]} << (8 * (at - kClearOffset)));
    }
}

Result<void> GpuDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.size() < 2) return make_error(name() + ": the driver set up fewer than 2 queues");
    context_.emplace(std::move(context));
    stopped_ = false;
    return {};
}

void GpuDevice::reset() {
    for (uint32_t index = 0; index < scanout_count(); ++index) disable(index);
    for (auto& [id, resource] : resources_) destroy(resource);
    resources_.clear();
    if (cursor_position_.visible || cursor_shape_) {
        cursor_position_.visible = false;
        cursor_shape_.reset();
        if (display_) display_->cursor(cursor_position_, nullptr);
    }
    events_read_ = 0;
    context_.reset();
    stopped_ = false;
}

void GpuDevice::replay(GpuDisplay& display) const {
    for (uint32_t index = 0; index < scanout_count(); ++index) {
        if (scanouts_[index].resource_id != 0) display.show_surface(index, surface_of(scanouts_[index]));
    }
    if (cursor_shape_ || cursor_position_.visible)
        display.cursor(cursor_position_, cursor_shape_ ? &*cursor_shape_ : nullptr);
}

bool GpuDevice::set_preferred_size(uint32_t scanout, uint32_t width, uint32_t height) {
    if (scanout >= scanout_count() || width < kMinModeDimension || width > kMaxModeDimension ||
        height < kMinModeDimension || height > kMaxModeDimension)
        return false;
    Scanout& target = scanouts_[scanout];
    if (target.preferred_width == width && target.preferred_height == height) return true;
    target.preferred_width = width;
    target.preferred_height = height;
    // Section 5.7.4.2: the driver re-reads the display information (and EDID).
    events_read_ |= kEventDisplay;
    if (context_ && !stopped_ && context_->interrupt) context_->interrupt->notify_config_change();
    return true;
}

GpuRect GpuDevice::preferred_mode(uint32_t scanout) const {
    if (scanout >= scanout_count()) return {};
    uint32_t x = 0;
    for (uint32_t index = 0; index < scanout; ++index) x += scanouts_[index].preferred_width;
    return {x, 0, scanouts_[scanout].preferred_width, scanouts_[scanout].preferred_height};
}

std::vector<uint8_t> GpuDevice::resource_pixels(uint32_t resource_id) const {
    auto it = resources_.find(resource_id);
    if (it == resources_.end()) return {};
    const Resource& resource = it->second;
    return std::vector<uint8_t>(resource.pixels, resource.pixels + uint64_t{resource.stride} * resource.height);
}

void GpuDevice::queue_notify(uint16_t queue) {
    if (!context_ || stopped_ || queue >= 2 || queue >= context_->queues.size()) return;
    if (queue < context_->queue_enabled.size() && !context_->queue_enabled[queue]) return;
    process_queue(queue);
}

void GpuDevice::process_queue(uint16_t queue_index) {
    Virtqueue& queue = context_->queues[queue_index];
    auto error = queue.serve_available([&](DescriptorChain chain) {
        // Commands run to completion here, so a fenced command's response
        // is only returned after its work is done (section 5.7.6.6).
        queue.push_used(chain.head, handle_chain(chain, queue_index == kCursorQueue));
    });
    if (error) {
        stopped_ = true;
        ++statistics_.device_errors;
        log_guest_error("stopped until reset: " + *error);
        if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + *error);
        return;
    }
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(queue_index);
}

uint32_t GpuDevice::handle_chain(const DescriptorChain& chain, bool cursor_queue) {
    ++statistics_.commands;
    const GuestMemory& memory = *context_->memory;
    ChainReader reader(memory, chain.readable);
    ChainWriter writer(memory, chain.writable);

    CtrlHeader request{};
    Response response;
    size_t needed = sizeof(CtrlHeader);
    const bool have_header = reader.read_object(request);
    if (!have_header) {
        response = error(kRespErrUnspec, "request shorter than its 24-byte header");
    } else if (cursor_queue) {
        // Section 5.7.6.10: cursor commands only; Linux gives them no response buffer.
        if (request.type == kCmdUpdateCursor || request.type == kCmdMoveCursor) {
            execute_cursor(request.type, reader);
        } else {
            response = error(kRespErrUnspec, "command " + hex(request.type) + " on the cursor queue");
        }
    } else {
        if (request.type == kCmdGetDisplayInfo) needed += kDisplayInfoBytes;
        if (request.type == kCmdGetEdid) needed += kEdidPayloadBytes;
        // A response that cannot be delivered means the command is not run at all.
        if (writer.remaining() < needed)
            response = error(kRespErrUnspec, "response buffer of " + std::to_string(writer.remaining()) +
                                                 " bytes for a response of " + std::to_string(needed));
        else
            response = execute(request.type, reader);
    }

    if (writer.remaining() < sizeof(CtrlHeader)) {
        if (!cursor_queue) log_guest_error("request without room for a response");
        return 0;
    }
    CtrlHeader header{};
    header.type = response.type;
    if (have_header && (request.flags & kFlagFence)) {
        header.flags = kFlagFence;
        header.fence_id = request.fence_id;
    }
    header.ctx_id = have_header ? request.ctx_id : 0;
    writer.write_object(header);
    if (!response.payload.empty() && writer.remaining() >= response.payload.size())
        writer.write(response.payload.data(), response.payload.size());
    return static_cast<uint32_t>(writer.written());
}

GpuDevice::Response GpuDevice::execute(uint32_t type, ChainReader& body) {
    switch (type) {
    case kCmdGetDisplayInfo: return get_display_info();
    case kCmdGetEdid: return get_edid(body);
    case kCmdResourceCreate2d: return resource_create_2d(body);
    case kCmdResourceUnref: return resource_unref(body);
    case kCmdSetScanout: return set_scanout(body);
    case kCmdResourceFlush: return resource_flush(body);
    case kCmdTransferToHost2d: return transfer_to_host_2d(body);
    case kCmdResourceAttachBacking: return attach_backing(body);
    case kCmdResourceDetachBacking: return detach_backing(body);
    case kCmdGetCapsetInfo:
    case kCmdGetCapset: return error(kRespErrInvalidParameter, "no capability sets (num_capsets is 0)");
    default: return error(kRespErrUnspec, "unsupported command " + hex(type));
    }
}

GpuDevice::Response GpuDevice::get_display_info() {
    DisplayOne modes[kMaxWireScanouts] = {};
    for (uint32_t index = 0; index < scanout_count(); ++index) {
        const GpuRect mode = preferred_mode(index);
        modes[index].rect = {mode.x, mode.y, mode.width, mode.height};
        modes[index].enabled = 1;
    }
    return {kRespOkDisplayInfo, bytes_of(modes)};
}

GpuDevice::Response GpuDevice::get_edid(ChainReader& body) {
    GetEdid request{};
    if (!(context_->acked_features & kFeatureEdid)) return error(kRespErrUnspec, "GET_EDID without VIRTIO_GPU_F_EDID");
    if (!body.read_object(request)) return error(kRespErrUnspec, "GET_EDID request too short");
    if (request.scanout >= scanout_count())
        return error(kRespErrInvalidScanoutId, "GET_EDID for scanout " + std::to_string(request.scanout));
    EdidSpec spec;
    spec.width = scanouts_[request.scanout].preferred_width;
    spec.height = scanouts_[request.scanout].preferred_height;
    spec.product_code = static_cast<uint16_t>(1 + request.scanout);
    spec.serial_number = request.scanout;
    const auto edid = build_edid(spec);
    Response response{kRespOkEdid, std::vector<uint8_t>(kEdidPayloadBytes, 0)};
    const uint32_t size = kEdidBlockBytes;
    std::memcpy(response.payload.data(), &size, sizeof size);
    std::memcpy(response.payload.data() + 8, edid.data(), edid.size());
    return response;
}

GpuDevice::Response GpuDevice::resource_create_2d(ChainReader& body) {
    ResourceCreate2d request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "RESOURCE_CREATE_2D request too short");
    const std::string what = "RESOURCE_CREATE_2D " + std::to_string(request.resource_id) + ": ";
    if (request.resource_id == 0) return error(kRespErrInvalidResourceId, what + "resource id 0 is reserved");
    if (resources_.count(request.resource_id)) return error(kRespErrInvalidResourceId, what + "id already in use");
    if (!swizzle_for(request.format).known)
        return error(kRespErrInvalidParameter, what + "unknown format " + std::to_string(request.format));
    if (request.width == 0 || request.height == 0 || request.width > kMaxResourceDimension ||
        request.height > kMaxResourceDimension)
        return error(kRespErrInvalidParameter, what + "size " + std::to_string(request.width) + "x" +
                                                   std::to_string(request.height) + " is empty or above " +
                                                   std::to_string(kMaxResourceDimension));
    if (resources_.size() >= kMaxResources)
        return error(kRespErrOutOfMemory, what + "more than " + std::to_string(kMaxResources) + " resources");
    Resource resource;
    resource.id = request.resource_id;
    resource.format = request.format;
    resource.width = request.width;
    resource.height = request.height;
    resource.stride = request.width * kBytesPerPixel;  // at most 64 KiB
    // One row more than the image: a surface that starts at column x > 0 of the
    // last rows still has offset + stride * height bytes behind it (display-protocol.md).
    resource.mapped_bytes = round_up_to_page(uint64_t{resource.stride} * (uint64_t{request.height} + 1));
    if (resource.mapped_bytes > max_host_memory_bytes_ - host_memory_bytes_)
        return error(kRespErrOutOfMemory, what + std::to_string(resource.mapped_bytes) +
                                              " bytes would exceed the device's limit of " +
                                              std::to_string(max_host_memory_bytes_));
    void* pixels = mmap(nullptr, resource.mapped_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pixels == MAP_FAILED) return error(kRespErrOutOfMemory, what + "host mmap failed: " + strerror(errno));
    resource.pixels = static_cast<uint8_t*>(pixels);
    host_memory_bytes_ += resource.mapped_bytes;
    resources_.emplace(resource.id, std::move(resource));
    return {};
}

GpuDevice::Response GpuDevice::resource_unref(ChainReader& body) {
    ResourceId request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "RESOURCE_UNREF request too short");
    Resource* resource = find(request.resource_id);
    if (!resource)
        return error(kRespErrInvalidResourceId, "RESOURCE_UNREF of unknown resource " + std::to_string(request.resource_id));
    // A scanout cannot show what no longer exists.
    for (uint32_t index = 0; index < scanout_count(); ++index)
        if (scanouts_[index].resource_id == request.resource_id) disable(index);
    destroy(*resource);
    resources_.erase(request.resource_id);
    return {};
}

GpuDevice::Response GpuDevice::set_scanout(ChainReader& body) {
    SetScanout request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "SET_SCANOUT request too short");
    const std::string what = "SET_SCANOUT " + std::to_string(request.scanout_id) + ": ";
    if (request.scanout_id >= scanout_count())
        return error(kRespErrInvalidScanoutId, what + "no such scanout (" + std::to_string(scanout_count()) + ")");
    if (request.resource_id == 0) {
        disable(request.scanout_id);
        return {};
    }
    Resource* resource = find(request.resource_id);
    if (!resource) return error(kRespErrInvalidResourceId, what + "unknown resource " + std::to_string(request.resource_id));
    // Section 5.7.6.8: the scanout rectangle must be covered by the resource.
    if (request.rect.width == 0 || request.rect.height == 0 ||
        !rect_inside(request.rect, resource->width, resource->height))
        return error(kRespErrInvalidParameter, what + "rectangle " + describe(request.rect) + " is empty or outside the " +
                                                   std::to_string(resource->width) + "x" +
                                                   std::to_string(resource->height) + " resource");
    if (!share(*resource)) return error(kRespErrOutOfMemory, what + "cannot share the resource with the display");
    Scanout& scanout = scanouts_[request.scanout_id];
    const GpuRect rect{request.rect.x, request.rect.y, request.rect.width, request.rect.height};
    if (scanout.resource_id == request.resource_id && scanout.rect == rect) return {};
    scanout.resource_id = request.resource_id;
    scanout.rect = rect;
    if (display_) display_->show_surface(request.scanout_id, surface_of(scanout));
    return {};
}

GpuDevice::Response GpuDevice::resource_flush(ChainReader& body) {
    ResourceFlush request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "RESOURCE_FLUSH request too short");
    Resource* resource = find(request.resource_id);
    if (!resource)
        return error(kRespErrInvalidResourceId, "RESOURCE_FLUSH of unknown resource " + std::to_string(request.resource_id));
    if (!rect_inside(request.rect, resource->width, resource->height))
        return error(kRespErrInvalidParameter, "RESOURCE_FLUSH " + std::to_string(request.resource_id) + ": rectangle " +
                                                   describe(request.rect) + " is outside the resource");
    // Only what transfers changed since it was last flushed is news.
    if (!resource->unflushed) return {};
    const GpuRect changed = *resource->unflushed;
    const GpuRect flushed = intersection(request.rect, changed);
    if (flushed.width == 0 || flushed.height == 0) return {};
    if (flushed == changed) resource->unflushed.reset();  // (a partial flush keeps the whole box: shown twice at worst)
    for (uint32_t index = 0; index < scanout_count(); ++index) {
        const Scanout& scanout = scanouts_[index];
        if (scanout.resource_id != request.resource_id) continue;
        // The flushed part of what this scanout shows, in scanout coordinates.
        const uint64_t left = std::max<uint64_t>(flushed.x, scanout.rect.x);
        const uint64_t top = std::max<uint64_t>(flushed.y, scanout.rect.y);
        const uint64_t right = std::min<uint64_t>(uint64_t{flushed.x} + flushed.width,
                                                  uint64_t{scanout.rect.x} + scanout.rect.width);
        const uint64_t bottom = std::min<uint64_t>(uint64_t{flushed.y} + flushed.height,
                                                   uint64_t{scanout.rect.y} + scanout.rect.height);
        if (left >= right || top >= bottom) continue;
        if (display_)
            display_->damage(index, {static_cast<uint32_t>(left - scanout.rect.x), static_cast<uint32_t>(top - scanout.rect.y),
                                     static_cast<uint32_t>(right - left), static_cast<uint32_t>(bottom - top)});
    }
    return {};
}

GpuDevice::Response GpuDevice::transfer_to_host_2d(ChainReader& body) {
    TransferToHost2d request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "TRANSFER_TO_HOST_2D request too short");
    const std::string what = "TRANSFER_TO_HOST_2D " + std::to_string(request.resource_id) + ": ";
    Resource* resource = find(request.resource_id);
    if (!resource) return error(kRespErrInvalidResourceId, what + "unknown resource");
    if (!resource->has_backing) return error(kRespErrUnspec, what + "no backing attached");
    if (!rect_inside(request.rect, resource->width, resource->height))
        return error(kRespErrInvalidParameter, what + "rectangle " + describe(request.rect) + " is outside the " +
                                                   std::to_string(resource->width) + "x" +
                                                   std::to_string(resource->height) + " resource");
    if (request.rect.width == 0 || request.rect.height == 0) return {};
    // The source rows are `stride` apart in the backing, the first at `offset`.
    // All terms are below 2^46, so the sum cannot overflow once offset is bounded.
    const uint64_t span = uint64_t{request.rect.height - 1} * resource->stride + uint64_t{request.rect.width} * kBytesPerPixel;
    if (request.offset > resource->backing_bytes || span > resource->backing_bytes - request.offset)
        return error(kRespErrInvalidParameter, what + "offset " + std::to_string(request.offset) + " and rectangle " +
                                                   describe(request.rect) + " reach past the " +
                                                   std::to_string(resource->backing_bytes) + "-byte backing");
    if (auto changed = copy_rows(*resource, {request.rect.x, request.rect.y, request.rect.width, request.rect.height},
                                 request.offset))
        resource->unflushed = resource->unflushed ? bounding_box(*resource->unflushed, *changed) : *changed;
    resource->written = true;
    return {};
}

std::optional<GpuRect> GpuDevice::copy_rows(const Resource& resource, const GpuRect& rect, uint64_t offset) {
    const GuestMemory& memory = *context_->memory;
    const Swizzle swizzle = swizzle_for(resource.format);
    const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
    // Each row is gathered (and converted) here first and compared with what
    // the resource holds: drivers flush far more than they change (Linux's
    // fbdev flushes whole rows of every page written), and a display that
    // is told only what changed encodes and sends only that.
    std::vector<uint8_t> row_buffer(row_bytes);
    uint32_t left = UINT32_MAX, right = 0, top = UINT32_MAX, bottom = 0;
    const auto& entries = resource.backing;
    for (uint32_t row = 0; row < rect.height; ++row) {
        uint8_t* destination = resource.pixels + uint64_t{rect.y + row} * resource.stride + uint64_t{rect.x} * kBytesPerPixel;
        uint8_t* gather = row_buffer.data();
        uint64_t source = offset + uint64_t{row} * resource.stride;
        // The last entry starting at or before `source`; entries are sorted by start.
        auto entry = std::upper_bound(entries.begin(), entries.end(), source,
                                      [](uint64_t value, const BackingEntry& e) { return value < e.start; });
        uint64_t done = 0;
        if (entry != entries.begin()) --entry;
        while (done < row_bytes && entry != entries.end()) {
            const uint64_t within = source - entry->start;
            const uint64_t piece = std::min<uint64_t>(row_bytes - done, entry->length - within);
            // Validated at attach time; guest RAM never moves, so this cannot fail.
            const uint8_t* host = memory.host_pointer(GuestAddress{entry->guest_address + within}, piece);
            if (!host) break;
            // Pixels are only copied, never interpreted, so the guest changing
            // them meanwhile can only tear its own image.
            std::memcpy(gather + done, host, piece);
            done += piece;
            source += piece;
            ++entry;
        }
        if (done < row_bytes) break;
        if (!swizzle.identity) {
            for (uint64_t pixel = 0; pixel < row_bytes; pixel += kBytesPerPixel) {
                uint8_t* bytes = gather + pixel;
                const uint8_t in[4] = {bytes[0], bytes[1], bytes[2], bytes[3]};
                bytes[0] = in[swizzle.source[0]];
                bytes[1] = in[swizzle.source[1]];
                bytes[2] = in[swizzle.source[2]];
                bytes[3] = in[swizzle.source[3]];
            }
        }
        // The first and the last pixel that differ; only they and what lies between are written.
        uint32_t first = 0;
        while (first < rect.width && std::memcmp(gather + uint64_t{first} * kBytesPerPixel,
                                                 destination + uint64_t{first} * kBytesPerPixel, kBytesPerPixel) == 0)
            ++first;
        if (first == rect.width) continue;
        uint32_t last = rect.width - 1;
        while (last > first && std::memcmp(gather + uint64_t{last} * kBytesPerPixel,
                                           destination + uint64_t{last} * kBytesPerPixel, kBytesPerPixel) == 0)
            --last;
        std::memcpy(destination + uint64_t{first} * kBytesPerPixel, gather + uint64_t{first} * kBytesPerPixel,
                    uint64_t{last - first + 1} * kBytesPerPixel);
        left = std::min(left, first);
        right = std::max(right, last + 1);
        top = std::min(top, row);
        bottom = row + 1;
    }
    if (top == UINT32_MAX) return std::nullopt;
    return GpuRect{rect.x + left, rect.y + top, right - left, bottom - top};
}

GpuDevice::Response GpuDevice::attach_backing(ChainReader& body) {
    AttachBacking request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "RESOURCE_ATTACH_BACKING request too short");
    const std::string what = "RESOURCE_ATTACH_BACKING " + std::to_string(request.resource_id) + ": ";
    Resource* resource = find(request.resource_id);
    if (!resource) return error(kRespErrInvalidResourceId, what + "unknown resource");
    if (resource->has_backing) return error(kRespErrUnspec, what + "a backing is already attached");
    if (request.nr_entries == 0 || request.nr_entries > kMaxBackingEntries)
        return error(kRespErrInvalidParameter, what + std::to_string(request.nr_entries) + " entries (1 to " +
                                                   std::to_string(kMaxBackingEntries) + " allowed)");
    if (body.remaining() < uint64_t{request.nr_entries} * sizeof(MemEntry))
        return error(kRespErrUnspec, what + "request shorter than its " + std::to_string(request.nr_entries) + " entries");
    const GuestMemory& memory = *context_->memory;
    std::vector<BackingEntry> entries;
    entries.reserve(request.nr_entries);
    uint64_t total = 0;
    for (uint32_t index = 0; index < request.nr_entries; ++index) {
        MemEntry entry{};
        if (!body.read_object(entry)) return error(kRespErrUnspec, what + "entries unreadable");
        if (entry.length == 0) continue;
        if (!memory.contains(GuestAddress{entry.address}, entry.length)) {
            char text[64];
            snprintf(text, sizeof text, "entry %u (0x%llx, %u bytes)", index,
                     static_cast<unsigned long long>(entry.address), entry.length);
            return error(kRespErrInvalidParameter, what + text + " is outside guest RAM");
        }
        entries.push_back({entry.address, entry.length, total});
        total += entry.length;  // at most 2^16 entries of < 2^32 bytes: no overflow
    }
    resource->backing = std::move(entries);
    resource->backing_bytes = total;
    resource->has_backing = true;
    return {};
}

GpuDevice::Response GpuDevice::detach_backing(ChainReader& body) {
    ResourceId request{};
    if (!body.read_object(request)) return error(kRespErrUnspec, "RESOURCE_DETACH_BACKING request too short");
    Resource* resource = find(request.resource_id);
    if (!resource)
        return error(kRespErrInvalidResourceId,
                     "RESOURCE_DETACH_BACKING of unknown resource " + std::to_string(request.resource_id));
    if (!resource->has_backing)
        return error(kRespErrUnspec, "RESOURCE_DETACH_BACKING " + std::to_string(request.resource_id) + ": no backing");
    resource->backing.clear();
    resource->backing_bytes = 0;
    resource->has_backing = false;
    return {};
}

void GpuDevice::execute_cursor(uint32_t type, ChainReader& body) {
    UpdateCursor request{};
    if (!body.read_object(request)) {
        log_guest_error("cursor command too short");
        return;
    }
    if (request.scanout_id >= scanout_count()) {
        log_guest_error("cursor on scanout " + std::to_string(request.scanout_id) + ", which does not exist");
        return;
    }
    CursorPosition position = cursor_position_;
    position.scanout = request.scanout_id;
    position.x = static_cast<int32_t>(request.x);
    position.y = static_cast<int32_t>(request.y);
    if (type == kCmdMoveCursor) {
        cursor_position_ = position;
        if (display_) display_->cursor(cursor_position_, nullptr);
        return;
    }
    if (request.resource_id == 0) {
        position.visible = false;
        cursor_position_ = position;
        if (display_) display_->cursor(cursor_position_, nullptr);
        return;
    }
    const Resource* resource = find(request.resource_id);
    if (!resource || resource->width > kCursorSize || resource->height > kCursorSize) {
        log_guest_error("UPDATE_CURSOR with resource " + std::to_string(request.resource_id) +
                        (resource ? ", larger than 64x64" : ", which does not exist"));
        return;
    }
    CursorShape shape;
    shape.width = resource->width;
    shape.height = resource->height;
    shape.hot_x = std::min(request.hot_x, resource->width - 1);
    shape.hot_y = std::min(request.hot_y, resource->height - 1);
    shape.pixels.resize(uint64_t{shape.width} * shape.height * kBytesPerPixel);
    for (uint32_t row = 0; row < shape.height; ++row)
        std::memcpy(shape.pixels.data() + uint64_t{row} * shape.width * kBytesPerPixel,
                    resource->pixels + uint64_t{row} * resource->stride, uint64_t{shape.width} * kBytesPerPixel);
    // A format without alpha is an opaque cursor.
    if (!swizzle_for(resource->format).has_alpha)
        for (size_t at = 3; at < shape.pixels.size(); at += kBytesPerPixel) shape.pixels[at] = 0xff;
    position.visible = true;
    cursor_position_ = position;
    cursor_shape_ = std::move(shape);
    if (display_) display_->cursor(cursor_position_, &*cursor_shape_);
}

GpuDevice::Resource* GpuDevice::find(uint32_t resource_id) {
    auto it = resources_.find(resource_id);
    return it == resources_.end() ? nullptr : &it->second;
}

bool GpuDevice::share(Resource& resource) {
    if (resource.fd >= 0) return true;
    if (shared_resources_ >= kMaxSharedResources) {
        log_guest_error("more than " + std::to_string(kMaxSharedResources) + " resources on scanouts");
        return false;
    }
    const int fd = memfd_create("atoll-gpu-resource", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        log_guest_error(std::string("memfd_create: ") + strerror(errno));
        return false;
    }
    void* shared = MAP_FAILED;
    if (ftruncate(fd, static_cast<off_t>(resource.mapped_bytes)) == 0)
        shared = mmap(nullptr, resource.mapped_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED) {
        log_guest_error(std::string("sharing a resource: ") + strerror(errno));
        close(fd);
        return false;
    }
    if (resource.written) std::memcpy(shared, resource.pixels, uint64_t{resource.stride} * resource.height);
    munmap(resource.pixels, resource.mapped_bytes);
    resource.pixels = static_cast<uint8_t*>(shared);
    resource.fd = fd;
    ++shared_resources_;
    // The display maps the memfd read-only and can trust its size: no one may
    // resize it, and only the mapping made here may write (Linux 5.1+).
    const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if (fcntl(fd, F_ADD_SEALS, seals | F_SEAL_FUTURE_WRITE) != 0) (void)fcntl(fd, F_ADD_SEALS, seals);
    return true;
}

void GpuDevice::destroy(Resource& resource) {
    if (resource.pixels) munmap(resource.pixels, resource.mapped_bytes);
    resource.pixels = nullptr;
    if (resource.fd >= 0) {
        close(resource.fd);
        resource.fd = -1;
        --shared_resources_;
    }
    host_memory_bytes_ -= resource.mapped_bytes;
    resource.mapped_bytes = 0;
}

void GpuDevice::disable(uint32_t index) {
    Scanout& scanout = scanouts_[index];
    if (scanout.resource_id == 0) return;
    scanout.resource_id = 0;
    scanout.rect = {};
    if (display_) display_->disable_scanout(index);
}

ScanoutSurface GpuDevice::surface_of(const Scanout& scanout) const {
    const Resource& resource = resources_.at(scanout.resource_id);
    ScanoutSurface surface;
    surface.fd = resource.fd;
    surface.offset = uint64_t{scanout.rect.y} * resource.stride + uint64_t{scanout.rect.x} * kBytesPerPixel;
    surface.width = scanout.rect.width;
    surface.height = scanout.rect.height;
    surface.stride = resource.stride;
    return surface;
}

GpuDevice::Response GpuDevice::error(uint32_t type, const std::string& message) {
    ++statistics_.errors;
    log_guest_error(message);
    return {type, {}};
}

void GpuDevice::log_guest_error(const std::string& message) { guest_errors_.write(name(), message); }

}  // namespace atl::vmm::virtio
