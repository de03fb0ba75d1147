// atoll-vmm's side of the display link (display/docs/display-protocol.md): a
// unix-socket client of atoll-display. It tells the server what the virtio-gpu
// scanouts show (memfds passed once, then damage rectangles) and feeds the
// server's keyboard, pointer and resize messages to the virtio-input devices
// and the GPU.
//
// Two parts, because a guest reboot rebuilds the whole machine (run.cpp) while
// the display must not notice more than a blank screen:
// - DisplayConnection: the socket, its protocol state and what the server was
//   last told. Made once per VMM process; VNC viewers stay connected across boots.
// - DisplayLink: one boot's view of it, on that boot's I/O thread, bound to
//   that boot's GPU and input devices. When the boot ends the server is told
//   its scanouts went dark; the next boot's link takes the connection over and
//   shows whatever the new driver sets up.
//
// The VM never depends on the server: while it is absent or after it went away
// the link retries every 2 s; a malformed message drops the link (one log line).
// Input the VM cannot represent (a key its keyboard lacks) is ignored, not a
// protocol violation. Outgoing state coalesces while the server is slow to
// read (a newer surface, damage or cursor replaces or merges with the unsent
// one), so neither memory nor duplicated file descriptors pile up.
#pragma once

#include "devices/virtio/gpu.h"
#include "devices/virtio/input.h"
#include "vmm/event_loop.h"

#include <nlohmann/json_fwd.hpp>

#include <bitset>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::vmm {

// The connection to atoll-display, shared by the boots of one VM in turn.
// Only one DisplayLink uses it at a time, on that boot's I/O thread; between
// boots nobody does (the server's messages wait in the socket).
class DisplayConnection {
public:
    static constexpr int kProtocolVersion = 1;
    static constexpr uint32_t kMaxMessageBytes = 64 << 10;

    struct Options {
        std::string socket_path;
        std::string vm_name;
        std::string vm_uuid;
        uint32_t scanouts = 1;  // announced in hello: the same for every boot
        std::chrono::milliseconds reconnect_interval{2000};
    };
    struct Statistics {
        uint64_t connections = 0;
        uint64_t drops = 0;  // connections that ended (server gone, malformed message, write error)
        uint64_t messages_sent = 0;
        uint64_t messages_received = 0;
        uint64_t ignored_keys = 0;  // key codes the keyboard cannot represent
        uint64_t boots = 0;         // DisplayLinks that attached
    };

    explicit DisplayConnection(Options options);
    ~DisplayConnection();
    DisplayConnection(const DisplayConnection&) = delete;
    DisplayConnection& operator=(const DisplayConnection&) = delete;

    const Options& options() const { return options_; }
    bool connected() const { return fd_ >= 0; }
    bool welcomed() const { return welcomed_; }
    const Statistics& statistics() const { return statistics_; }
    // Why the last connection ended (empty: none has).
    const std::string& last_drop_reason() const { return last_drop_reason_; }

private:
    friend class DisplayLink;
    struct Outgoing {
        std::string bytes;  // length prefix and JSON
        int fd = -1;        // travels with the first byte (SCM_RIGHTS); owned
        size_t sent = 0;
    };

    void close_socket();

    Options options_;
    int fd_ = -1;
    bool welcomed_ = false;
    bool reported_absent_ = false;  // "cannot connect" logged once until the next connection
    std::string input_;             // a partly received message
    std::deque<Outgoing> output_;   // a partly sent message first
    // What the server was last told, so that a boot that ends can blank it.
    std::vector<bool> surface_shown_;
    bool cursor_visible_ = false;
    // A viewer's last resize per scanout: the next boot's GPU starts with it.
    std::vector<std::optional<std::pair<uint32_t, uint32_t>>> preferred_sizes_;
    // Rate limit of the "ignored key" log line.
    std::chrono::steady_clock::time_point ignored_log_time_{};
    uint64_t ignored_unlogged_ = 0;
    Statistics statistics_;
    std::string last_drop_reason_;
    bool attached_ = false;
};

class DisplayLink final : public virtio::GpuDisplay {
public:
    static constexpr int kProtocolVersion = DisplayConnection::kProtocolVersion;
    static constexpr uint32_t kMaxMessageBytes = DisplayConnection::kMaxMessageBytes;
    // Damage rectangles kept per scanout before they merge into their bounding box.
    static constexpr size_t kMaxDamageRects = 16;
    // At most one "ignored key" line per this interval (a viewer may hold a key down).
    static constexpr std::chrono::seconds kIgnoredKeyLogInterval{10};

    // The devices the link drives; any may be null. Not owned: they must outlive the link.
    struct Devices {
        virtio::GpuDevice* gpu = nullptr;
        virtio::InputDevice* keyboard = nullptr;
        virtio::InputDevice* tablet = nullptr;
        virtio::InputDevice* mouse = nullptr;
    };

    // Becomes the GPU's display (and gives it the size a viewer last asked
    // for). Call start() on the loop thread to take the connection over.
    DisplayLink(EventLoop& loop, std::shared_ptr<DisplayConnection> connection, Devices devices);
    // On the loop thread, or after the loop stopped. Tells the server this
    // boot's scanouts are dark and leaves the connection open for the next boot.
    ~DisplayLink() override;
    DisplayLink(const DisplayLink&) = delete;
    DisplayLink& operator=(const DisplayLink&) = delete;

    // Connects, or takes over the connection a previous boot left; the link
    // reconnects by itself afterwards.
    void start();
    bool connected() const { return connection_->connected(); }
    bool welcomed() const { return connection_->welcomed(); }
    const DisplayConnection& connection() const { return *connection_; }

    // virtio::GpuDisplay
    void show_surface(uint32_t scanout, const virtio::ScanoutSurface& surface) override;
    void disable_scanout(uint32_t scanout) override;
    void damage(uint32_t scanout, const virtio::GpuRect& rect) override;
    void cursor(const virtio::CursorPosition& position, const virtio::CursorShape* shape) override;

    const DisplayConnection::Statistics& statistics() const { return connection_->statistics(); }
    const std::string& last_drop_reason() const { return connection_->last_drop_reason(); }

private:
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

    void watch();
    void connect();
    void schedule_reconnect();
    void drop(const std::string& reason);
    void on_events(uint32_t events);
    void read_input();
    void handle_message(const std::string& text);
    bool handle_input(const std::string& type, const nlohmann::json& message);
    void ignore_key(int64_t code);
    void queue(const nlohmann::json& message, int fd = -1);
    void flush();
    // Writes what the socket takes now, without touching the loop; the error
    // that ends the connection, if one happened (the caller drops it).
    std::optional<std::string> write_output();
    bool emit_pending();
    void clear_pending();
    PendingScanout* pending_for(uint32_t scanout);
    void send_buttons(virtio::InputDevice* device, uint32_t& state, uint32_t buttons,
                      std::vector<virtio::InputEvent>& events);
    void release_all_input();

    EventLoop& loop_;
    std::shared_ptr<DisplayConnection> connection_;
    Devices devices_;
    bool watching_ = false;  // the connection's socket is on loop_
    bool watching_output_ = false;
    std::optional<EventLoop::TimerId> reconnect_timer_;
    std::vector<PendingScanout> pending_;
    PendingCursor pending_cursor_;

    std::bitset<1024> pressed_keys_;
    uint32_t tablet_buttons_ = 0;
    uint32_t mouse_buttons_ = 0;
};

}  // namespace atl::vmm
