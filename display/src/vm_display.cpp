#include "vm_display.h"

#include <unistd.h>

#include <algorithm>

namespace atl::display {

std::optional<link::Rect> clip_rect(const link::Rect& rect, uint32_t width, uint32_t height) {
    if (rect.x >= width || rect.y >= height) return std::nullopt;
    link::Rect clipped = rect;
    clipped.width = std::min(rect.width, width - rect.x);
    clipped.height = std::min(rect.height, height - rect.y);
    if (clipped.width == 0 || clipped.height == 0) return std::nullopt;
    return clipped;
}

VmDisplay::VmDisplay(const link::Hello& hello, std::shared_ptr<InputSink> input)
    : name_(hello.vm_name),
      uuid_(hello.vm_uuid),
      scanout_count_(hello.scanouts),
      input_(std::move(input)),
      scanouts_(hello.scanouts) {}

Result<void> VmDisplay::check_scanout(uint32_t scanout) const {
    if (scanout >= scanout_count_)
        return make_error("scanout " + std::to_string(scanout) + " does not exist (the VM announced " +
                          std::to_string(scanout_count_) + ")");
    return {};
}

Result<void> VmDisplay::apply_surface(const link::Surface& surface, int fd) {
    if (auto checked = check_scanout(surface.scanout); !checked) {
        close(fd);
        return checked;
    }
    auto mapping = SurfaceMapping::map(fd, surface);
    if (!mapping) return mapping.error();
    {
        std::lock_guard lock(mutex_);
        scanouts_[surface.scanout].surface = *mapping;
    }
    for (DisplaySink* sink : sinks_) sink->surface_changed(surface.scanout, *mapping);
    return {};
}

Result<void> VmDisplay::apply(const link::Disable& disable) {
    ATOLL_TRY(check_scanout(disable.scanout));
    {
        std::lock_guard lock(mutex_);
        scanouts_[disable.scanout].surface.reset();
    }
    for (DisplaySink* sink : sinks_) sink->surface_changed(disable.scanout, nullptr);
    return {};
}

Result<void> VmDisplay::apply(const link::Damage& damage) {
    ATOLL_TRY(check_scanout(damage.scanout));
    std::shared_ptr<SurfaceMapping> surface;
    {
        std::lock_guard lock(mutex_);
        surface = scanouts_[damage.scanout].surface;
    }
    // Damage on a disabled scanout refers to nothing shown: ignored.
    if (!surface) return {};
    std::vector<link::Rect> clipped;
    clipped.reserve(damage.rects.size());
    for (const auto& rect : damage.rects)
        if (auto inside = clip_rect(rect, surface->width(), surface->height())) clipped.push_back(*inside);
    if (clipped.empty()) return {};
    for (DisplaySink* sink : sinks_) sink->damaged(damage.scanout, clipped);
    return {};
}

Result<void> VmDisplay::apply(const link::Cursor& cursor) {
    ATOLL_TRY(check_scanout(cursor.scanout));
    CursorState state;
    const bool shape_changed = cursor.shape.has_value();
    {
        std::lock_guard lock(mutex_);
        CursorState& current = scanouts_[cursor.scanout].cursor;
        if (cursor.shape) {
            auto image = std::make_shared<CursorImage>();
            image->width = cursor.shape->width;
            image->height = cursor.shape->height;
            image->hot_x = cursor.shape->hot_x;
            image->hot_y = cursor.shape->hot_y;
            image->argb = cursor.shape->pixels;
            current.image = std::move(image);
        }
        current.x = cursor.x;
        current.y = cursor.y;
        current.visible = cursor.visible;
        state = current;
    }
    for (DisplaySink* sink : sinks_) sink->cursor_changed(cursor.scanout, state, shape_changed);
    return {};
}

Result<void> VmDisplay::apply(const link::Modes& modes) {
    ATOLL_TRY(check_scanout(modes.scanout));
    {
        std::lock_guard lock(mutex_);
        scanouts_[modes.scanout].preferred_mode = std::make_pair(modes.preferred_width, modes.preferred_height);
    }
    for (DisplaySink* sink : sinks_) sink->modes_changed(modes.scanout, modes.preferred_width, modes.preferred_height);
    return {};
}

void VmDisplay::add_sink(DisplaySink* sink) { sinks_.push_back(sink); }

void VmDisplay::remove_sink(DisplaySink* sink) { std::erase(sinks_, sink); }

ScanoutState VmDisplay::scanout(uint32_t index) const {
    std::lock_guard lock(mutex_);
    if (index >= scanouts_.size()) return {};
    return scanouts_[index];
}

std::optional<VncAddress> VmDisplay::vnc_address() const {
    std::lock_guard lock(mutex_);
    return vnc_address_;
}

void VmDisplay::set_vnc_address(std::optional<VncAddress> address) {
    std::lock_guard lock(mutex_);
    vnc_address_ = std::move(address);
}

}  // namespace atl::display
