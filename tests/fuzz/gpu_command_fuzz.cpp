// Fuzzes virtio-gpu (virtio 1.2 section 5.7): sequences of controlq and cursorq
// commands whose bodies are fuzz bytes, plus a viewer's resizes, device
// resets and display replays, against a checking display.
//
// Guest RAM (1 MiB and a bit): the test driver's rings and request area, and
// 256 KiB of "framebuffer" memory at kFramebufferBase (512 KiB) that backing
// entries can point into (any other address is fair game too).
//
// Input: byte 0 = flags (bit 0: EVENT_IDX, bit 1: EDID negotiated, bits 2-3:
// scanouts - 1), then records until the input ends (at most 64):
//   u8 op     bits 0-3 what to do:
//               0 GET_DISPLAY_INFO  1 RESOURCE_CREATE_2D  2 RESOURCE_UNREF  3 SET_SCANOUT
//               4 RESOURCE_FLUSH    5 TRANSFER_TO_HOST_2D 6 RESOURCE_ATTACH_BACKING
//               7 RESOURCE_DETACH_BACKING  8 GET_CAPSET_INFO  9 GET_EDID
//               10 UPDATE_CURSOR (cursorq)  11 MOVE_CURSOR (cursorq)
//               12 raw type (the body's first 4 bytes) on the controlq
//               13 a viewer's resize (body: u32 scanout, u32 width, u32 height; no chain)
//               14 device reset, new rings, activate again
//               15 replay the state to the display
//             bit 4 split the request after the header into a second descriptor;
//             bit 5 indirect table; bit 6 FENCE flag; bit 7 then corrupt the ring (a loop) and stop
//   u8 response bytes: 0 -> 1056, 255 -> no response buffer, else value * 8
//   u8 body length, then the body (the request after its 24-byte header; zeros
//      when the input runs out). ATTACH_BACKING's entries are part of the body.
//
// The oracle: no crash or sanitizer report; each chain completes exactly once,
// with a used length no larger than its writable bytes and a known response
// type (and the fence echoed); host memory stays within the device's limit;
// every surface the display is told about is backed by enough memfd bytes and
// every damage rectangle lies inside the scanout's current surface.

#include "devices/virtio/gpu.h"
#include "fuzz_input.h"
#include "gpu_test_guest.h"
#include "offered_chain.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

using atl::fuzz::FuzzInput;
using atl::fuzz::OfferedChain;
using atl::vmm::virtio::CursorPosition;
using atl::vmm::virtio::CursorShape;
using atl::vmm::virtio::GpuDevice;
using atl::vmm::virtio::GpuDeviceConfig;
using atl::vmm::virtio::GpuDisplay;
using atl::vmm::virtio::GpuRect;
using atl::vmm::virtio::ScanoutSurface;
using atl::vmm::virtio::testing::DriverBuffer;
using atl::vmm::virtio::testing::FakeInterrupt;
using atl::vmm::virtio::testing::GpuHeader;
using atl::vmm::virtio::testing::TestDriver;

namespace {

constexpr uint16_t kQueueSize = 64;
constexpr uint64_t kDataBytes = 1 << 20;
constexpr uint64_t kFramebufferBase = 512 << 10;
constexpr uint64_t kFramebufferBytes = 256 << 10;
constexpr uint64_t kHostMemoryLimit = 16 << 20;
constexpr int kMaxRecords = 64;

// Checks what the device tells a display against the device's own promises.
class CheckingDisplay : public GpuDisplay {
public:
    explicit CheckingDisplay(uint32_t scanouts) : surfaces_(scanouts) {}

    void show_surface(uint32_t scanout, const ScanoutSurface& surface) override {
        FUZZ_CHECK(scanout < surfaces_.size());
        FUZZ_CHECK(surface.fd >= 0 && surface.width > 0 && surface.height > 0);
        FUZZ_CHECK(surface.stride >= uint64_t{surface.width} * 4);
        struct stat info {};
        FUZZ_CHECK(fstat(surface.fd, &info) == 0);
        FUZZ_CHECK(static_cast<uint64_t>(info.st_size) >= surface.offset + uint64_t{surface.stride} * surface.height);
        surfaces_[scanout] = {true, surface.width, surface.height};
    }
    void disable_scanout(uint32_t scanout) override {
        FUZZ_CHECK(scanout < surfaces_.size());
        surfaces_[scanout] = {};
    }
    void damage(uint32_t scanout, const GpuRect& rect) override {
        FUZZ_CHECK(scanout < surfaces_.size() && surfaces_[scanout].shown);
        FUZZ_CHECK(rect.width > 0 && rect.height > 0);
        FUZZ_CHECK(uint64_t{rect.x} + rect.width <= surfaces_[scanout].width);
        FUZZ_CHECK(uint64_t{rect.y} + rect.height <= surfaces_[scanout].height);
    }
    void cursor(const CursorPosition& position, const CursorShape* shape) override {
        FUZZ_CHECK(position.scanout < surfaces_.size());
        if (!shape) return;
        FUZZ_CHECK(shape->width >= 1 && shape->width <= 64 && shape->height >= 1 && shape->height <= 64);
        FUZZ_CHECK(shape->hot_x < shape->width && shape->hot_y < shape->height);
        FUZZ_CHECK(shape->pixels.size() == uint64_t{shape->width} * shape->height * 4);
    }
    void forget() {
        for (auto& surface : surfaces_) surface = {};
    }

private:
    struct Shown {
        bool shown = false;
        uint32_t width = 0, height = 0;
    };
    std::vector<Shown> surfaces_;
};

bool known_response(uint32_t type) {
    return (type >= GpuDevice::kRespOkNoData && type <= GpuDevice::kRespOkEdid) ||
           (type >= GpuDevice::kRespErrUnspec && type <= GpuDevice::kRespErrInvalidParameter);
}

const uint32_t kCommands[] = {GpuDevice::kCmdGetDisplayInfo,        GpuDevice::kCmdResourceCreate2d,
                              GpuDevice::kCmdResourceUnref,         GpuDevice::kCmdSetScanout,
                              GpuDevice::kCmdResourceFlush,         GpuDevice::kCmdTransferToHost2d,
                              GpuDevice::kCmdResourceAttachBacking, GpuDevice::kCmdResourceDetachBacking,
                              GpuDevice::kCmdGetCapsetInfo,         GpuDevice::kCmdGetEdid,
                              GpuDevice::kCmdUpdateCursor,          GpuDevice::kCmdMoveCursor};

std::unique_ptr<TestDriver> make_driver() {
    auto driver = std::make_unique<TestDriver>(kQueueSize, kDataBytes, 2);
    FUZZ_CHECK(driver->data_base() + (64 << 10) <= kFramebufferBase);
    FUZZ_CHECK(kFramebufferBase + kFramebufferBytes <= driver->memory_end());
    // Something other than zeros for transfers to copy.
    static const std::vector<uint8_t> pixels = [] {
        std::vector<uint8_t> bytes(kFramebufferBytes);
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
        return bytes;
    }();
    driver->memory()->write(atl::vmm::GuestAddress{kFramebufferBase}, pixels.data(), pixels.size());
    return driver;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    FuzzInput input(data, size);
    const uint8_t flags = input.byte();
    const bool event_index = flags & 1;
    const bool edid = flags & 2;
    GpuDeviceConfig config;
    config.scanouts = 1 + ((flags >> 2) & 3);
    config.max_host_memory_bytes = kHostMemoryLimit;

    auto driver = make_driver();
    FakeInterrupt interrupt;
    CheckingDisplay display(config.scanouts);
    GpuDevice device(config);
    device.set_display(&display);
    auto activate = [&] {
        auto context = driver->activation_context(event_index, &interrupt);
        context.acked_features = atl::vmm::virtio::kFeatureVersion1 | (edid ? GpuDevice::kFeatureEdid : 0);
        FUZZ_CHECK(device.activate(std::move(context)).ok());
    };
    activate();

    for (int record = 0; record < kMaxRecords && !input.empty(); ++record) {
        driver->reset_data();
        const uint8_t op = input.byte();
        const uint8_t response_selector = input.byte();
        const auto body = input.bytes(input.byte());
        const unsigned what = op & 15;

        if (what == 13) {
            uint32_t fields[3] = {};
            if (!body.empty()) std::memcpy(fields, body.data(), std::min(body.size(), sizeof fields));
            const bool accepted = device.set_preferred_size(fields[0], fields[1], fields[2]);
            if (accepted) {
                const GpuRect mode = device.preferred_mode(fields[0]);
                FUZZ_CHECK(mode.width == fields[1] && mode.height == fields[2]);
            }
            continue;
        }
        if (what == 14) {
            device.reset();
            FUZZ_CHECK(device.resource_count() == 0 && device.host_memory_bytes() == 0);
            display.forget();
            driver = make_driver();
            activate();
            continue;
        }
        if (what == 15) {
            CheckingDisplay fresh(config.scanouts);
            device.replay(fresh);
            continue;
        }

        GpuHeader header;
        header.type = what == 12 ? 0 : kCommands[what];
        std::vector<uint8_t> payload = body;
        if (what == 12 && payload.size() >= 4) {
            std::memcpy(&header.type, payload.data(), 4);
            payload.erase(payload.begin(), payload.begin() + 4);
        }
        if (op & 64) {
            header.flags = GpuDevice::kFlagFence;
            header.fence_id = 0x0123456789abcdefull + record;
        }
        std::vector<uint8_t> request(sizeof header + payload.size());
        std::memcpy(request.data(), &header, sizeof header);
        if (!payload.empty()) std::memcpy(request.data() + sizeof header, payload.data(), payload.size());

        std::vector<DriverBuffer> buffers;
        if ((op & 16) && request.size() > sizeof header) {
            const std::vector<uint8_t> head(request.begin(), request.begin() + sizeof header);
            const std::vector<uint8_t> tail(request.begin() + sizeof header, request.end());
            buffers.push_back({driver->put(head), static_cast<uint32_t>(head.size()), false});
            buffers.push_back({driver->put(tail), static_cast<uint32_t>(tail.size()), false});
        } else {
            buffers.push_back({driver->put(request), static_cast<uint32_t>(request.size()), false});
        }
        uint32_t response_bytes = response_selector == 0 ? 1056 : response_selector == 255 ? 0 : response_selector * 8u;
        uint64_t response_address = 0;
        if (response_bytes > 0) {
            response_address = driver->fill(response_bytes, 0xEE);
            buffers.push_back({response_address, response_bytes, true});
        }

        const bool cursor_queue = what == 10 || what == 11;
        auto& queue = driver->queue(cursor_queue ? GpuDevice::kCursorQueue : GpuDevice::kControlQueue);
        const OfferedChain chain(queue, interrupt, buffers, op & 32, op & 128, driver->data_base());
        device.queue_notify(cursor_queue ? GpuDevice::kCursorQueue : GpuDevice::kControlQueue);

        if (op & 128) {
            chain.check_broken_ring();
            break;
        }
        const auto used = chain.check_completed_at_once(response_bytes);
        if (response_bytes >= sizeof(GpuHeader)) {
            FUZZ_CHECK(used.length >= sizeof(GpuHeader));
            GpuHeader response;
            driver->memory()->read_object(atl::vmm::GuestAddress{response_address}, response);
            FUZZ_CHECK(known_response(response.type));
            if (header.flags & GpuDevice::kFlagFence) {
                FUZZ_CHECK(response.flags & GpuDevice::kFlagFence);
                FUZZ_CHECK(response.fence_id == header.fence_id);
            }
        } else {
            FUZZ_CHECK(used.length == 0);
        }
        FUZZ_CHECK(device.host_memory_bytes() <= kHostMemoryLimit);
    }
    return 0;
}
