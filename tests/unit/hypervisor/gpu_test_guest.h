// Drives a virtio-gpu device's queues the way Linux's virtio_gpu driver does:
// a request (header + body, entries in a second buffer for ATTACH_BACKING) and
// a response buffer per controlq command, readable-only cursorq commands.
// No GoogleTest dependency.
#pragma once

#include "devices/virtio/gpu.h"
#include "virtio_test_driver.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace atl::vmm::virtio::testing {

struct GpuHeader {
    uint32_t type = 0;
    uint32_t flags = 0;
    uint64_t fence_id = 0;
    uint32_t ctx_id = 0;
    uint8_t ring_idx = 0;
    uint8_t padding[3] = {};
};
static_assert(sizeof(GpuHeader) == 24);

struct GpuResponse {
    uint32_t used_length = 0;
    GpuHeader header;
    std::vector<uint8_t> payload;  // after the header
};

struct GpuMemEntry {
    uint64_t address;
    uint32_t length;
    uint32_t padding;
};

class GpuTestGuest {
public:
    // 8 MiB of guest data for framebuffers and requests.
    explicit GpuTestGuest(GpuDeviceConfig config = {}, uint64_t data_bytes = 8 << 20)
        : driver(64, data_bytes, 2), device(config) {}

    void activate(bool edid = true, bool event_index = false) {
        auto context = driver.activation_context(event_index, &interrupt);
        context.acked_features = kFeatureVersion1 | (edid ? GpuDevice::kFeatureEdid : 0);
        activated = device.activate(std::move(context)).ok();
    }

    // One controlq command; `extra` is a second readable buffer (ATTACH_BACKING's entries).
    GpuResponse command(uint32_t type, const std::vector<uint8_t>& body, uint32_t response_bytes = 24,
                        const std::vector<uint8_t>& extra = {}, uint32_t flags = 0, uint64_t fence_id = 0) {
        GpuHeader header;
        header.type = type;
        header.flags = flags;
        header.fence_id = fence_id;
        std::vector<uint8_t> request(sizeof header);
        std::memcpy(request.data(), &header, sizeof header);
        request.insert(request.end(), body.begin(), body.end());
        std::vector<DriverBuffer> buffers{{driver.put(request), static_cast<uint32_t>(request.size()), false}};
        if (!extra.empty()) buffers.push_back({driver.put(extra), static_cast<uint32_t>(extra.size()), false});
        uint64_t response_address = 0;
        if (response_bytes > 0) {
            response_address = driver.fill(response_bytes, 0xEE);
            buffers.push_back({response_address, response_bytes, true});
        }
        auto& queue = driver.queue(GpuDevice::kControlQueue);
        const uint16_t used_before = queue.used_index();
        queue.add_chain(buffers);
        device.queue_notify(GpuDevice::kControlQueue);
        GpuResponse response;
        if (queue.used_index() == used_before) return response;
        response.used_length = queue.used_element(used_before).length;
        if (response_bytes >= sizeof(GpuHeader)) {
            driver.memory()->read_object(GuestAddress{response_address}, response.header);
            response.payload = driver.get(response_address + sizeof(GpuHeader), response_bytes - sizeof(GpuHeader));
        }
        return response;
    }

    // A cursorq command (no response buffer, as Linux sends them).
    void cursor_command(uint32_t type, uint32_t scanout, int32_t x, int32_t y, uint32_t resource_id = 0,
                        uint32_t hot_x = 0, uint32_t hot_y = 0) {
        GpuHeader header;
        header.type = type;
        const uint32_t body[8] = {scanout, static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0,
                                  resource_id, hot_x, hot_y, 0};
        std::vector<uint8_t> request(sizeof header + sizeof body);
        std::memcpy(request.data(), &header, sizeof header);
        std::memcpy(request.data() + sizeof header, body, sizeof body);
        driver.queue(GpuDevice::kCursorQueue).add_chain({{driver.put(request), static_cast<uint32_t>(request.size()), false}});
        device.queue_notify(GpuDevice::kCursorQueue);
    }

    template <class... Words>
    static std::vector<uint8_t> words(Words... values) {
        const uint32_t array[] = {static_cast<uint32_t>(values)...};
        std::vector<uint8_t> bytes(sizeof array);
        std::memcpy(bytes.data(), array, sizeof array);
        return bytes;
    }
    static std::vector<uint8_t> entries(const std::vector<GpuMemEntry>& list) {
        std::vector<uint8_t> bytes(list.size() * sizeof(GpuMemEntry));
        if (!list.empty()) std::memcpy(bytes.data(), list.data(), bytes.size());
        return bytes;
    }

    uint32_t create_2d(uint32_t id, uint32_t format, uint32_t width, uint32_t height) {
        return command(GpuDevice::kCmdResourceCreate2d, words(id, format, width, height)).header.type;
    }
    uint32_t attach(uint32_t id, const std::vector<GpuMemEntry>& list) {
        return command(GpuDevice::kCmdResourceAttachBacking, words(id, list.size()), 24, entries(list)).header.type;
    }
    uint32_t transfer(uint32_t id, uint32_t x, uint32_t y, uint32_t width, uint32_t height, uint64_t offset) {
        std::vector<uint8_t> body = words(x, y, width, height);
        const auto tail = words(static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32), id, 0);
        body.insert(body.end(), tail.begin(), tail.end());
        return command(GpuDevice::kCmdTransferToHost2d, body).header.type;
    }
    uint32_t set_scanout(uint32_t scanout, uint32_t id, uint32_t x, uint32_t y, uint32_t width, uint32_t height) {
        return command(GpuDevice::kCmdSetScanout, words(x, y, width, height, scanout, id)).header.type;
    }
    uint32_t flush(uint32_t id, uint32_t x, uint32_t y, uint32_t width, uint32_t height) {
        return command(GpuDevice::kCmdResourceFlush, words(x, y, width, height, id, 0)).header.type;
    }
    uint32_t unref(uint32_t id) { return command(GpuDevice::kCmdResourceUnref, words(id, 0)).header.type; }

    // A framebuffer in guest RAM, split in two entries with a gap between
    // them (scatter-gather as the guest's pages are): pixel (x, y) holds pattern(x, y).
    struct Framebuffer {
        uint32_t width = 0, height = 0;
        std::vector<GpuMemEntry> entries;
    };
    static uint32_t pattern(uint32_t x, uint32_t y, uint32_t seed = 0) {
        return (x * 0x01020304u) ^ (y * 0x00050607u) ^ seed ^ 0x80000000u;
    }
    Framebuffer make_framebuffer(uint32_t width, uint32_t height, uint32_t seed = 0) {
        Framebuffer framebuffer{width, height, {}};
        const uint64_t total = uint64_t{width} * height * 4;
        // Split in the middle of a pixel, so rows and pixels cross entries.
        const uint64_t first = total > 8 ? total / 2 + 2 : total;
        const uint64_t a = driver.allocate(first, 4096);
        driver.allocate(4096, 4096);  // a hole that belongs to neither entry
        const uint64_t b = total > first ? driver.allocate(total - first, 4096) : 0;
        framebuffer.entries.push_back({a, static_cast<uint32_t>(first), 0});
        if (total > first) framebuffer.entries.push_back({b, static_cast<uint32_t>(total - first), 0});
        draw(framebuffer, seed);
        return framebuffer;
    }
    void draw(const Framebuffer& framebuffer, uint32_t seed) {
        for (uint32_t y = 0; y < framebuffer.height; ++y)
            for (uint32_t x = 0; x < framebuffer.width; ++x) write_pixel(framebuffer, x, y, pattern(x, y, seed));
    }
    void write_pixel(const Framebuffer& framebuffer, uint32_t x, uint32_t y, uint32_t value) {
        uint64_t offset = (uint64_t{y} * framebuffer.width + x) * 4;
        uint8_t bytes[4];
        std::memcpy(bytes, &value, 4);
        for (uint8_t byte : bytes) {  // a pixel may straddle two entries
            uint64_t within = offset++;
            for (const auto& entry : framebuffer.entries) {
                if (within < entry.length) {
                    driver.memory()->write_object(GuestAddress{entry.address + within}, byte);
                    break;
                }
                within -= entry.length;
            }
        }
    }

    TestDriver driver;
    FakeInterrupt interrupt;
    GpuDevice device;
    bool activated = false;
};

// Records what the GPU tells its display.
class RecordingDisplay : public GpuDisplay {
public:
    struct Event {
        enum Kind { Surface, Disable, Damage, Cursor } kind;
        uint32_t scanout = 0;
        ScanoutSurface surface;  // fd not kept
        GpuRect rect;
        CursorPosition position;
        bool has_shape = false;
        CursorShape shape;
    };
    void show_surface(uint32_t scanout, const ScanoutSurface& surface) override {
        events.push_back({Event::Surface, scanout, surface, {}, {}, false, {}});
    }
    void disable_scanout(uint32_t scanout) override { events.push_back({Event::Disable, scanout, {}, {}, {}, false, {}}); }
    void damage(uint32_t scanout, const GpuRect& rect) override {
        events.push_back({Event::Damage, scanout, {}, rect, {}, false, {}});
    }
    void cursor(const CursorPosition& position, const CursorShape* shape) override {
        events.push_back({Event::Cursor, position.scanout, {}, {}, position, shape != nullptr, shape ? *shape : CursorShape{}});
    }
    std::vector<Event> events;
};

}  // namespace atl::vmm::virtio::testing
