// atoll-vmm's side of the display link (display/docs/display-protocol.md): a
// unix-socket client of atoll-display, on the I/O thread. It tells the server
// what the virtio-gpu scanouts show (memfds passed once, then damage
// rectangles) and feeds the server's keyboard, pointer and resize messages to
// the virtio-input devices and the GPU.
//
// The VM never depends on the server: while it is absent or after it went away
// the link retries every 2 s; a malformed message drops the link (one log line).
// Outgoing state coalesces while the server is slow to read (a newer surface,
// damage or cursor replaces or merges with the unsent one), so neither memory
// nor duplicated file descriptors pile up.
#pragma once

#include "devices/virtio/gpu.h"
#include "devices/virtio/input.h"
#include "vmm/event_loop.h"

#include <nlohmann/json_fwd.hpp>

#include <bitset>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace atl::vmm {

class DisplayLink final : public virtio::GpuDisplay {
public:
    static constexpr int kProtocolVersion = 1;
    static constexpr uint32_t kMaxMessageBytes = 64 << 10;
    // Damage rectangles kept per scanout before they merge into their bounding box.
    static constexpr size_t kMaxDamageRects = 16;

    // The devices the link drives; any may be null. Not owned: they must outlive the link.
    struct Devices {
        virtio::GpuDevice* gpu = nullptr;
        virtio::InputDevice* keyboard = nullptr;
        virtio::InputDevice* tablet = nullptr;
        virtio::InputDevice* mouse = nullptr;
    };
    struct Options {
        std::string socket_path;
        std::string vm_name;
        std::string vm_uuid;
        std::chrono::milliseconds reconnect_interval{2000};
    };

    // Becomes the GPU's display. Call start() on the loop thread to connect.
    DisplayLink(EventLoop& loop, Options options, Devices devices);
    // On the loop thread, or after the loop stopped.
    ~DisplayLink() override;
    DisplayLink(const DisplayLink&) = delete;
    DisplayLink& operator=(const DisplayLink&) = delete;

    // The first connection attempt; the link reconnects by itself afterwards.
    void start();
    bool connected() const { return fd_ >= 0; }
    bool welcomed() const { return welcomed_; }

    // virtio::GpuDisplay
    void show_surface(uint32_t scanout, const virtio::ScanoutSurface& surface) override;
    void disable_scanout(uint32_t scanout) override;
    void damage(uint32_t scanout, const virtio::GpuRect& rect) override;
    void cursor(const virtio::CursorPosition& position, const virtio::CursorShape* shape) override;

    struct Statistics {
        uint64_t connections = 0;
        uint64_t drops = 0;  // connections that ended (server gone, malformed message, write error)
        uint64_t messages_sent = 0;
        uint64_t messages_received = 0;
    };
    const Statistics& statistics() const { return statistics_; }
    // Why the last connection ended (empty: none has).
    const std::string& last_drop_reason() const { return last_drop_reason_; }

private:
    struct Outgoing {
        std::string bytes;  // length prefix and JSON
        int fd = -1;        // travels with the first byte (SCM_RIGHTS); owned
        size_t sent = 0;
    };
    struct PendingScanout {
        enum class Change { None, Surface, Disable };
        Change change = Change::None;
        virtio::ScanoutSurface surface;  // fd owned (a dup) when change is Surface
        std::vector<virtio::GpuRect> damage;
        std::optional<virtio::GpuRect> modes;
    };
    struct PendingCursor {
        bool set = false;
        virtio::CursorPosition position;
        std::optional<virtio::CursorShape> shape;
    };

    void connect();
    void schedule_reconnect();
    void drop(const std::string& reason);
    void on_events(uint32_t events);
    void read_input();
    void handle_message(const std::string& text);
    bool handle_input(const std::string& type, const nlohmann::json& message);
    void queue(const nlohmann::json& message, int fd = -1);
    void flush();
    bool emit_pending();
    void clear_pending();
    PendingScanout* pending_for(uint32_t scanout);
    void send_buttons(virtio::InputDevice* device, uint32_t& state, uint32_t buttons,
                      std::vector<virtio::InputEvent>& events);
    void release_all_input();

    EventLoop& loop_;
    Options options_;
    Devices devices_;
    int fd_ = -1;
    bool welcomed_ = false;
    bool watching_output_ = false;
    bool reported_absent_ = false;  // "cannot connect" logged once until the next connection
    std::optional<EventLoop::TimerId> reconnect_timer_;
    std::string input_;
    std::deque<Outgoing> output_;
    std::vector<PendingScanout> pending_;
    PendingCursor pending_cursor_;

    std::bitset<1024> pressed_keys_;
    uint32_t tablet_buttons_ = 0;
    uint32_t mouse_buttons_ = 0;

    Statistics statistics_;
    std::string last_drop_reason_;
};

}  // namespace atl::vmm
