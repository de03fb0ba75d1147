// One VM's display as the server sees it: what its VMM shared (surfaces,
// cursor, preferred modes, per scanout) and who shows it (the VNC server, the
// D-Bus object). Created on the VMM's hello, destroyed when its link drops.
#pragma once

#include "link_protocol.h"
#include "surface.h"

#include <atoll/result.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace atl::display {

struct CursorImage {
    uint32_t width = 0, height = 0, hot_x = 0, hot_y = 0;
    std::vector<uint32_t> argb;  // width * height
};

struct CursorState {
    std::shared_ptr<const CursorImage> image;  // null until the VMM sends a shape
    int32_t x = 0, y = 0;
    bool visible = false;
};

struct ScanoutState {
    std::shared_ptr<SurfaceMapping> surface;  // null: disabled
    CursorState cursor;
    std::optional<std::pair<uint32_t, uint32_t>> preferred_mode;
};

// Input from viewers toward the guest. Callable from any thread; events are
// queued for the VM's link and dropped once the link is gone.
class InputSink {
public:
    virtual ~InputSink() = default;
    virtual void key(uint16_t code, bool pressed) = 0;
    virtual void pointer(uint32_t x, uint32_t y, uint32_t buttons) = 0;  // 0..32767 across the scanout
    virtual void wheel(int32_t dy) = 0;
    virtual void motion(int32_t dx, int32_t dy, uint32_t buttons) = 0;
    virtual void resize(uint32_t scanout, uint32_t width, uint32_t height) = 0;
};

// A viewer back-end. Called on the link thread, in message order; must not block.
class DisplaySink {
public:
    virtual ~DisplaySink() = default;
    virtual void surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) = 0;
    virtual void damaged(uint32_t scanout, const std::vector<link::Rect>& rects) = 0;
    virtual void cursor_changed(uint32_t scanout, const CursorState& cursor, bool shape_changed) = 0;
    virtual void modes_changed(uint32_t, uint32_t, uint32_t) {}
};

struct VncAddress {
    std::string host;
    uint16_t port = 0;
    bool tls = false;
    bool password = false;
};

class VmDisplay {
public:
    VmDisplay(const link::Hello& hello, std::shared_ptr<InputSink> input);

    const std::string& name() const { return name_; }
    const std::string& uuid() const { return uuid_; }
    uint32_t scanout_count() const { return scanout_count_; }
    const std::shared_ptr<InputSink>& input() const { return input_; }

    // Link thread. An error is the VMM's fault: its link is dropped.
    Result<void> apply_surface(const link::Surface& surface, int fd);  // owns fd
    Result<void> apply(const link::Disable& disable);
    Result<void> apply(const link::Damage& damage);
    Result<void> apply(const link::Cursor& cursor);
    Result<void> apply(const link::Modes& modes);

    // Link thread. Sinks are not owned; remove before destroying them.
    void add_sink(DisplaySink* sink);
    void remove_sink(DisplaySink* sink);

    // Any thread.
    ScanoutState scanout(uint32_t index) const;
    std::optional<VncAddress> vnc_address() const;
    void set_vnc_address(std::optional<VncAddress> address);

private:
    Result<void> check_scanout(uint32_t scanout) const;

    const std::string name_;
    const std::string uuid_;
    const uint32_t scanout_count_;
    const std::shared_ptr<InputSink> input_;
    std::vector<DisplaySink*> sinks_;

    mutable std::mutex mutex_;  // guards what other threads read
    std::vector<ScanoutState> scanouts_;
    std::optional<VncAddress> vnc_address_;
};

// Intersects `rect` with a width x height surface; empty results are dropped.
std::optional<link::Rect> clip_rect(const link::Rect& rect, uint32_t width, uint32_t height);

}  // namespace atl::display
