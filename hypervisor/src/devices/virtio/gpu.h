// virtio-gpu in 2D mode (virtio 1.2 section 5.7): controlq 0, cursorq 1, up to
// four scanouts, EDID. Host resources are plain pixel buffers in this process;
// a resource that a scanout shows moves into a memfd of its own so the display
// server can map it without copies (display/docs/display-protocol.md).
//
// Every request is hostile: sizes are overflow-checked, rectangles are checked
// against their resource, backing entries against guest RAM, and host memory
// per device is bounded. A bad request gets an error response and changes
// nothing; a broken ring stops the device (DEVICE_NEEDS_RESET).
#pragma once

#include "devices/virtio/device.h"
#include "devices/virtio/guest_error_log.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::vmm::virtio {

struct GpuRect {
    uint32_t x = 0;
    uint32_t y = 0;
    uint32_t width = 0;
    uint32_t height = 0;

    friend bool operator==(const GpuRect&, const GpuRect&) = default;
};

// A window of a shared memfd that a scanout shows: XRGB8888 (bytes B, G, R, X).
struct ScanoutSurface {
    int fd = -1;  // borrowed: valid during the call only (dup it to keep it)
    uint64_t offset = 0;
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t stride = 0;
};

struct CursorShape {
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t hot_x = 0;
    uint32_t hot_y = 0;
    std::vector<uint8_t> pixels;  // width * height * 4 bytes: B, G, R, A (ARGB8888 little-endian)
};

struct CursorPosition {
    uint32_t scanout = 0;
    int32_t x = 0;  // where the pointer's hot spot is, in scanout pixels (may be off-screen)
    int32_t y = 0;
    bool visible = false;
};

// Where the scanouts' output goes (the display link). Called on the I/O thread.
class GpuDisplay {
public:
    virtual ~GpuDisplay() = default;
    virtual void show_surface(uint32_t scanout, const ScanoutSurface& surface) = 0;
    virtual void disable_scanout(uint32_t scanout) = 0;
    // `rect` is in scanout coordinates, inside the surface last shown.
    virtual void damage(uint32_t scanout, const GpuRect& rect) = 0;
    // `shape` is null when only the position or the visibility changed.
    virtual void cursor(const CursorPosition& position, const CursorShape* shape) = 0;
};

struct GpuDeviceConfig {
    uint32_t scanouts = 1;  // 1..kMaxScanouts
    uint32_t width = 1280;  // every scanout's preferred size until a viewer asks for another
    uint32_t height = 800;
    uint64_t max_host_memory_bytes = 256ull << 20;  // all resources of this device together
};

class GpuDevice : public Device {
public:
    static constexpr uint32_t kMaxScanouts = 4;
    // Section 5.7.3.
    static constexpr uint64_t kFeatureEdid = 1ull << 1;
    static constexpr uint16_t kControlQueue = 0;
    static constexpr uint16_t kCursorQueue = 1;
    // Section 5.7.4.
    static constexpr uint32_t kEventDisplay = 1;

    // Section 5.7.6.7: command and response types.
    enum : uint32_t {
        kCmdGetDisplayInfo = 0x0100,
        kCmdResourceCreate2d,
        kCmdResourceUnref,
        kCmdSetScanout,
        kCmdResourceFlush,
        kCmdTransferToHost2d,
        kCmdResourceAttachBacking,
        kCmdResourceDetachBacking,
        kCmdGetCapsetInfo,
        kCmdGetCapset,
        kCmdGetEdid,
        kCmdUpdateCursor = 0x0300,
        kCmdMoveCursor,
        kRespOkNoData = 0x1100,
        kRespOkDisplayInfo,
        kRespOkCapsetInfo,
        kRespOkCapset,
        kRespOkEdid,
        kRespErrUnspec = 0x1200,
        kRespErrOutOfMemory,
        kRespErrInvalidScanoutId,
        kRespErrInvalidResourceId,
        kRespErrInvalidContextId,
        kRespErrInvalidParameter,
    };
    static constexpr uint32_t kFlagFence = 1;

    // Section 5.7.6.8: the formats a 2D resource may have.
    enum Format : uint32_t {
        kFormatB8G8R8A8 = 1,
        kFormatB8G8R8X8 = 2,
        kFormatA8R8G8B8 = 3,
        kFormatX8R8G8B8 = 4,
        kFormatR8G8B8A8 = 67,
        kFormatX8B8G8R8 = 68,
        kFormatA8B8G8R8 = 121,
        kFormatR8G8B8X8 = 134,
    };

    // Limits on what a guest can make the host hold.
    static constexpr uint32_t kMaxResourceDimension = 16384;
    static constexpr uint32_t kMaxResources = 1024;
    static constexpr uint32_t kMaxSharedResources = 64;  // resources in memfds (each holds a file descriptor)
    static constexpr uint32_t kMaxBackingEntries = 65536;
    static constexpr uint32_t kCursorSize = 64;  // section 5.7.6.10: cursor resources are 64x64 at most

    explicit GpuDevice(const GpuDeviceConfig& config);
    ~GpuDevice() override;
    GpuDevice(const GpuDevice&) = delete;
    GpuDevice& operator=(const GpuDevice&) = delete;

    DeviceType type() const override { return kDeviceGpu; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 2; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    // Drops every resource and turns the scanouts off; the preferred sizes stay.
    void reset() override;
    std::string name() const override { return "virtio-gpu"; }

    // The display that shows the scanouts (null: none). Not owned.
    void set_display(GpuDisplay* display) { display_ = display; }
    // Tells `display` what it needs to show the current state: every enabled
    // scanout's surface and the cursor (after the display (re)connected).
    void replay(GpuDisplay& display) const;
    // A viewer wants scanout `scanout` to be width x height: updates the display
    // information and raises VIRTIO_GPU_EVENT_DISPLAY; the guest's driver picks
    // the mode. False when the scanout or the size is out of range.
    bool set_preferred_size(uint32_t scanout, uint32_t width, uint32_t height);

    uint32_t scanout_count() const { return static_cast<uint32_t>(scanouts_.size()); }
    GpuRect preferred_mode(uint32_t scanout) const;
    uint32_t events_read() const { return events_read_; }
    uint64_t host_memory_bytes() const { return host_memory_bytes_; }
    size_t resource_count() const { return resources_.size(); }
    // The host copy of a resource's pixels, converted to B, G, R, X/A bytes (tests).
    std::vector<uint8_t> resource_pixels(uint32_t resource_id) const;

    struct Statistics {
        uint64_t commands = 0;
        uint64_t errors = 0;          // error responses
        uint64_t device_errors = 0;   // broken rings that stopped the device
    };
    const Statistics& statistics() const { return statistics_; }

private:
    struct BackingEntry {
        uint64_t guest_address = 0;
        uint32_t length = 0;
        uint64_t start = 0;  // offset of this entry in the backing
    };
    struct Resource {
        uint32_t id = 0;
        uint32_t format = 0;
        uint32_t width = 0;
        uint32_t height = 0;
        uint32_t stride = 0;
        uint64_t mapped_bytes = 0;
        uint8_t* pixels = nullptr;
        int fd = -1;  // memfd once shared with the display, else -1 (anonymous memory)
        bool written = false;  // a transfer wrote pixels (else they are all zero)
        // The bounding box of the pixels transfers changed since a flush last
        // covered them: what a flush has to show (null: nothing changed).
        std::optional<GpuRect> unflushed;
        bool has_backing = false;
        std::vector<BackingEntry> backing;
        uint64_t backing_bytes = 0;
    };
    struct Scanout {
        uint32_t preferred_width = 0;
        uint32_t preferred_height = 0;
        uint32_t resource_id = 0;  // 0: disabled
        GpuRect rect;
    };
    struct Response {
        uint32_t type = kRespOkNoData;
        std::vector<uint8_t> payload;  // after the header
    };

    void process_queue(uint16_t queue_index);
    uint32_t handle_chain(const DescriptorChain& chain, bool cursor_queue);
    Response execute(uint32_t type, ChainReader& body);
    void execute_cursor(uint32_t type, ChainReader& body);

    Response get_display_info();
    Response get_edid(ChainReader& body);
    Response resource_create_2d(ChainReader& body);
    Response resource_unref(ChainReader& body);
    Response set_scanout(ChainReader& body);
    Response resource_flush(ChainReader& body);
    Response transfer_to_host_2d(ChainReader& body);
    Response attach_backing(ChainReader& body);
    Response detach_backing(ChainReader& body);

    Resource* find(uint32_t resource_id);
    bool share(Resource& resource);
    void destroy(Resource& resource);
    void disable(uint32_t scanout);
    ScanoutSurface surface_of(const Scanout& scanout) const;
    // Copies `rect` from the backing; the bounding box of the pixels that changed, if any.
    std::optional<GpuRect> copy_rows(const Resource& resource, const GpuRect& rect, uint64_t offset);
    Response error(uint32_t type, const std::string& message);
    void log_guest_error(const std::string& message);

    std::vector<Scanout> scanouts_;
    uint64_t max_host_memory_bytes_;
    uint64_t host_memory_bytes_ = 0;
    uint32_t shared_resources_ = 0;
    std::map<uint32_t, Resource> resources_;
    std::optional<CursorShape> cursor_shape_;
    CursorPosition cursor_position_;
    uint32_t events_read_ = 0;

    GpuDisplay* display_ = nullptr;
    std::optional<ActivationContext> context_;
    bool stopped_ = false;
    Statistics statistics_;
    GuestErrorLog guest_errors_;
};

}  // namespace atl::vmm::virtio
