#include "devices/display_link.h"

#include <linux/input-event-codes.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace atl::vmm {

using nlohmann::json;
using virtio::InputEvent;

namespace {

// display-protocol.md: pointer buttons, bit 0 left, 1 right, 2 middle.
constexpr uint16_t kButtonCodes[] = {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE};
constexpr int64_t kMaxRelative = 32767;
// display-protocol.md's range for a cursor position; the guest's may be anything.
constexpr int32_t kMinCursorPosition = -16384;
constexpr int32_t kMaxCursorPosition = 32768;

std::string base64(const std::vector<uint8_t>& bytes) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string text;
    text.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const uint32_t group = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
        for (int shift = 18; shift >= 0; shift -= 6) text += alphabet[(group >> shift) & 63];
    }
    if (i < bytes.size()) {
        const bool two = i + 1 < bytes.size();
        const uint32_t group = (uint32_t{bytes[i]} << 16) | (two ? uint32_t{bytes[i + 1]} << 8 : 0);
        text += alphabet[(group >> 18) & 63];
        text += alphabet[(group >> 12) & 63];
        text += two ? alphabet[(group >> 6) & 63] : '=';
        text += '=';
    }
    return text;
}

// An integer field within [low, high]; nullopt when missing, not an integer or out of range.
std::optional<int64_t> integer(const json& message, const char* key, int64_t low, int64_t high) {
    auto it = message.find(key);
    if (it == message.end() || !it->is_number_integer()) return std::nullopt;
    int64_t value = 0;
    if (it->is_number_unsigned()) {
        const uint64_t raw = it->get<uint64_t>();
        if (raw > static_cast<uint64_t>(high)) return std::nullopt;
        value = static_cast<int64_t>(raw);
    } else {
        value = it->get<int64_t>();
    }
    if (value < low || value > high) return std::nullopt;
    return value;
}

}  // namespace

DisplayConnection::DisplayConnection(Options options) : options_(std::move(options)) {
    surface_shown_.assign(options_.scanouts, false);
    preferred_sizes_.resize(options_.scanouts);
}

DisplayConnection::~DisplayConnection() { close_socket(); }

void DisplayConnection::close_socket() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    welcomed_ = false;
    input_.clear();
    for (auto& message : output_)
        if (message.fd >= 0) close(message.fd);
    output_.clear();
    surface_shown_.assign(surface_shown_.size(), false);
    cursor_visible_ = false;
}

DisplayLink::DisplayLink(EventLoop& loop, std::shared_ptr<DisplayConnection> connection, Devices devices)
    : loop_(loop), connection_(std::move(connection)), devices_(devices) {
    pending_.resize(connection_->options_.scanouts);
    connection_->attached_ = true;
    ++connection_->statistics_.boots;
    if (devices_.gpu) {
        devices_.gpu->set_display(this);
        // The viewer's window keeps its size across a reboot: the new boot's
        // driver is offered it from the start.
        for (uint32_t index = 0; index < devices_.gpu->scanout_count() && index < pending_.size(); ++index)
            if (const auto& size = connection_->preferred_sizes_[index])
                devices_.gpu->set_preferred_size(index, size->first, size->second);
    }
}

DisplayLink::~DisplayLink() {
    if (devices_.gpu) devices_.gpu->set_display(nullptr);
    if (reconnect_timer_) loop_.cancel_timer(*reconnect_timer_);
    clear_pending();
    auto& connection = *connection_;
    connection.attached_ = false;
    if (!connection.connected()) return;
    if (watching_) loop_.unwatch(connection.fd_);
    watching_ = false;
    // This boot's surfaces go with it: viewers see a blank screen (and no
    // cursor) until the next boot's driver shows something.
    for (uint32_t scanout = 0; scanout < connection.surface_shown_.size(); ++scanout)
        if (connection.surface_shown_[scanout]) queue({{"type", "disable"}, {"scanout", scanout}});
    connection.surface_shown_.assign(connection.surface_shown_.size(), false);
    if (connection.cursor_visible_)
        queue({{"type", "cursor"}, {"scanout", 0}, {"x", 0}, {"y", 0}, {"visible", false}});
    connection.cursor_visible_ = false;
    // What the socket does not take now, the next boot's link sends.
    if (auto error = write_output()) {
        fprintf(stderr, "atoll-vmm: display %s: %s; reconnecting at the next boot\n",
                connection.options_.socket_path.c_str(), error->c_str());
        connection.close_socket();
        ++connection.statistics_.drops;
        connection.last_drop_reason_ = *error;
    }
}

void DisplayLink::start() {
    if (connected()) {
        // A previous boot's connection: the server keeps this VM (and its
        // viewers); it learns what this boot shows as the driver sets it up.
        watch();
        if (devices_.gpu) devices_.gpu->replay(*this);
        flush();
        return;
    }
    if (!reconnect_timer_) connect();
}

void DisplayLink::watch() {
    const int fd = connection_->fd_;
    if (auto watched = loop_.watch(fd, EPOLLIN, [this](uint32_t events) { on_events(events); }); !watched) {
        drop("cannot watch the socket: " + watched.error().message);
        return;
    }
    watching_ = true;
    watching_output_ = false;
}

void DisplayLink::connect() {
    reconnect_timer_.reset();
    auto& connection = *connection_;
    const auto& options = connection.options_;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (options.socket_path.empty() || options.socket_path.size() >= sizeof address.sun_path) {
        fprintf(stderr, "atoll-vmm: display socket %s: path empty or longer than 107 bytes\n",
                options.socket_path.c_str());
        return;  // validated with the configuration; nothing to retry
    }
    std::memcpy(address.sun_path, options.socket_path.c_str(), options.socket_path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        if (fd >= 0) close(fd);
        if (!connection.reported_absent_) {
            fprintf(stderr, "atoll-vmm: display %s: %s; retrying every %lld ms\n", options.socket_path.c_str(),
                    strerror(error), static_cast<long long>(options.reconnect_interval.count()));
            connection.reported_absent_ = true;
        }
        schedule_reconnect();
        return;
    }
    connection.fd_ = fd;
    connection.welcomed_ = false;
    watch();
    if (!watching_) return;
    connection.reported_absent_ = false;
    ++connection.statistics_.connections;
    fprintf(stderr, "atoll-vmm: display %s: connected\n", options.socket_path.c_str());

    queue({{"type", "hello"},
           {"protocol", kProtocolVersion},
           {"vm_name", options.vm_name},
           {"vm_uuid", options.vm_uuid},
           {"scanouts", options.scanouts}});
    // A new server knows nothing: tell it what every scanout shows now.
    if (devices_.gpu) devices_.gpu->replay(*this);
    flush();
}

void DisplayLink::schedule_reconnect() {
    if (reconnect_timer_) return;
    reconnect_timer_ = loop_.add_timer(EventLoop::Clock::now() + connection_->options_.reconnect_interval,
                                       [this] { connect(); });
}

void DisplayLink::drop(const std::string& reason) {
    auto& connection = *connection_;
    if (!connection.connected()) return;
    fprintf(stderr, "atoll-vmm: display %s: %s; reconnecting every %lld ms\n", connection.options_.socket_path.c_str(),
            reason.c_str(), static_cast<long long>(connection.options_.reconnect_interval.count()));
    if (watching_) loop_.unwatch(connection.fd_);
    watching_ = false;
    connection.close_socket();
    clear_pending();
    ++connection.statistics_.drops;
    connection.last_drop_reason_ = reason;
    // Keys and buttons held through the viewer would otherwise stay down in the guest.
    release_all_input();
    connection.reported_absent_ = true;  // the drop was logged; no second line for the first failed retry
    schedule_reconnect();
}

void DisplayLink::on_events(uint32_t events) {
    if (events & EPOLLOUT) flush();
    if (connected() && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_input();
}

void DisplayLink::read_input() {
    char buffer[16 << 10];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    auto& connection = *connection_;
    std::string& input = connection.input_;
    while (connected()) {
        iovec vector{buffer, sizeof buffer};
        msghdr header{};
        header.msg_iov = &vector;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof control;
        const ssize_t count = recvmsg(connection.fd_, &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (count < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            drop(errno == ECONNRESET ? std::string("the server closed the connection")
                                     : std::string("read failed: ") + strerror(errno));
            return;
        }
        bool got_fds = (header.msg_flags & MSG_CTRUNC) != 0;
        for (cmsghdr* message = CMSG_FIRSTHDR(&header); message; message = CMSG_NXTHDR(&header, message)) {
            if (message->cmsg_level != SOL_SOCKET || message->cmsg_type != SCM_RIGHTS) continue;
            const size_t fd_count = (message->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < fd_count; ++i) {
                int received;
                std::memcpy(&received, CMSG_DATA(message) + i * sizeof(int), sizeof(int));
                close(received);
            }
            got_fds = true;
        }
        if (got_fds) {
            drop("malformed message from the server: file descriptors where none belong");
            return;
        }
        if (count == 0) {
            drop("the server closed the connection");
            return;
        }
        input.append(buffer, static_cast<size_t>(count));
        size_t consumed = 0;
        while (connected() && input.size() - consumed >= 4) {
            uint32_t length;
            std::memcpy(&length, input.data() + consumed, 4);  // little-endian (display-protocol.md)
            if (length == 0 || length > kMaxMessageBytes) {
                drop("malformed message from the server: length " + std::to_string(length));
                return;
            }
            if (input.size() - consumed - 4 < length) break;
            const std::string text = input.substr(consumed + 4, length);
            consumed += 4 + length;
            ++connection.statistics_.messages_received;
            handle_message(text);
        }
        if (!connected()) return;
        input.erase(0, consumed);
    }
}

void DisplayLink::handle_message(const std::string& text) {
    const json message = json::parse(text, nullptr, false);
    if (message.is_discarded() || !message.is_object()) {
        drop("malformed message from the server: not a JSON object");
        return;
    }
    auto type_field = message.find("type");
    if (type_field == message.end() || !type_field->is_string()) {
        drop("malformed message from the server: no \"type\"");
        return;
    }
    const std::string type = type_field->get<std::string>();
    if (auto fds = message.find("fds"); fds != message.end() && !(fds->is_number_integer() && *fds == 0)) {
        drop("malformed message from the server: \"" + type + "\" announces file descriptors");
        return;
    }
    if (!connection_->welcomed_) {
        // The server answers hello with welcome before anything else.
        if (type != "welcome") {
            drop("malformed message from the server: \"" + type + "\" before \"welcome\"");
            return;
        }
        const auto protocol = integer(message, "protocol", 0, INT32_MAX);
        if (!protocol || *protocol != kProtocolVersion) {
            drop("the server speaks another protocol version (we speak " + std::to_string(kProtocolVersion) + ")");
            return;
        }
        connection_->welcomed_ = true;
        return;
    }
    if (!handle_input(type, message)) drop("malformed message from the server: bad \"" + type + "\"");
}

bool DisplayLink::handle_input(const std::string& type, const json& message) {
    std::vector<InputEvent> events;
    if (type == "key") {
        // display-protocol.md: a Linux key code, which is 16 bits wide (struct
        // input_event, virtio 1.2 section 5.8.6). A code the VM's keyboard
        // cannot represent (a newer kernel's key, a button) is well-formed
        // input that this VM has no key for: ignored, not a reason to drop
        // the viewer's link.
        const auto code = integer(message, "code", 0, UINT16_MAX);
        auto pressed = message.find("pressed");
        if (!code || pressed == message.end() || !pressed->is_boolean()) return false;
        if (!devices_.keyboard) return true;
        if (!devices_.keyboard->supports(EV_KEY, static_cast<uint16_t>(*code))) {
            ignore_key(*code);
            return true;
        }
        const bool down = pressed->get<bool>();
        // A press of a key already down is the viewer's autorepeat: evdev value 2.
        const int32_t value = down ? (pressed_keys_.test(*code) ? 2 : 1) : 0;
        if (!down && !pressed_keys_.test(*code)) return true;  // release of a key never pressed
        pressed_keys_.set(*code, down);
        events.push_back({EV_KEY, static_cast<uint16_t>(*code), value});
        devices_.keyboard->send(events);
        return true;
    }
    if (type == "pointer") {
        const auto x = integer(message, "x", 0, virtio::InputDevice::kTabletMax);
        const auto y = integer(message, "y", 0, virtio::InputDevice::kTabletMax);
        const auto buttons = integer(message, "buttons", 0, 7);
        if (!x || !y || !buttons) return false;
        events.push_back({EV_ABS, ABS_X, static_cast<int32_t>(*x)});
        events.push_back({EV_ABS, ABS_Y, static_cast<int32_t>(*y)});
        send_buttons(devices_.tablet, tablet_buttons_, static_cast<uint32_t>(*buttons), events);
        return true;
    }
    if (type == "wheel") {
        const auto dy = integer(message, "dy", -kMaxRelative, kMaxRelative);
        if (!dy) return false;
        if (*dy != 0 && devices_.tablet) {
            events.push_back({EV_REL, REL_WHEEL, static_cast<int32_t>(*dy)});
            devices_.tablet->send(events);
        }
        return true;
    }
    if (type == "motion") {
        const auto dx = integer(message, "dx", -kMaxRelative, kMaxRelative);
        const auto dy = integer(message, "dy", -kMaxRelative, kMaxRelative);
        const auto buttons = integer(message, "buttons", 0, 7);
        if (!dx || !dy || !buttons) return false;
        if (*dx != 0) events.push_back({EV_REL, REL_X, static_cast<int32_t>(*dx)});
        if (*dy != 0) events.push_back({EV_REL, REL_Y, static_cast<int32_t>(*dy)});
        send_buttons(devices_.mouse, mouse_buttons_, static_cast<uint32_t>(*buttons), events);
        return true;
    }
    if (type == "resize") {
        const auto scanouts = static_cast<int64_t>(pending_.size());
        const auto scanout = integer(message, "scanout", 0, scanouts - 1);
        const auto width = integer(message, "width", 64, 8192);
        const auto height = integer(message, "height", 64, 8192);
        if (!scanout || !width || !height) return false;
        const auto index = static_cast<uint32_t>(*scanout);
        const auto w = static_cast<uint32_t>(*width), h = static_cast<uint32_t>(*height);
        if (devices_.gpu && !devices_.gpu->set_preferred_size(index, w, h)) return false;
        connection_->preferred_sizes_[index] = std::make_pair(w, h);
        // The answer: what the guest was told.
        pending_[index].modes = devices_.gpu ? devices_.gpu->preferred_mode(index) : virtio::GpuRect{0, 0, w, h};
        flush();
        return true;
    }
    return false;  // unknown type
}

void DisplayLink::ignore_key(int64_t code) {
    auto& connection = *connection_;
    ++connection.statistics_.ignored_keys;
    const auto now = std::chrono::steady_clock::now();
    if (connection.ignored_log_time_ != std::chrono::steady_clock::time_point{} &&
        now - connection.ignored_log_time_ < kIgnoredKeyLogInterval) {
        ++connection.ignored_unlogged_;
        return;
    }
    std::string earlier;
    if (connection.ignored_unlogged_ > 0)
        earlier = " (and " + std::to_string(connection.ignored_unlogged_) + " more since the last such line)";
    fprintf(stderr, "atoll-vmm: display %s: ignored key code %lld: the virtual keyboard has no such key%s\n",
            connection.options_.socket_path.c_str(), static_cast<long long>(code), earlier.c_str());
    connection.ignored_log_time_ = now;
    connection.ignored_unlogged_ = 0;
}

void DisplayLink::send_buttons(virtio::InputDevice* device, uint32_t& state, uint32_t buttons,
                               std::vector<InputEvent>& events) {
    for (uint32_t bit = 0; bit < std::size(kButtonCodes); ++bit) {
        const bool down = buttons & (1u << bit);
        if (down != static_cast<bool>(state & (1u << bit))) events.push_back({EV_KEY, kButtonCodes[bit], down ? 1 : 0});
    }
    state = buttons;
    if (device && !events.empty()) device->send(events);
}

void DisplayLink::release_all_input() {
    if (pressed_keys_.any()) {
        std::vector<InputEvent> releases;
        for (size_t code = 0; code < pressed_keys_.size(); ++code)
            if (pressed_keys_.test(code)) releases.push_back({EV_KEY, static_cast<uint16_t>(code), 0});
        pressed_keys_.reset();
        if (devices_.keyboard) devices_.keyboard->send(releases);
    }
    std::vector<InputEvent> events;
    send_buttons(devices_.tablet, tablet_buttons_, 0, events);
    events.clear();
    send_buttons(devices_.mouse, mouse_buttons_, 0, events);
}

// ---------------------------------------------------------------------------
// Outgoing

DisplayLink::PendingScanout* DisplayLink::pending_for(uint32_t scanout) {
    if (!connected() || scanout >= pending_.size()) return nullptr;
    return &pending_[scanout];
}

void DisplayLink::show_surface(uint32_t scanout, const virtio::ScanoutSurface& surface) {
    PendingScanout* pending = pending_for(scanout);
    if (!pending) return;
    const int fd = fcntl(surface.fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        drop(std::string("cannot pass a surface: ") + strerror(errno));
        return;
    }
    if (pending->change == PendingScanout::Change::Surface) close(pending->surface.fd);
    pending->change = PendingScanout::Change::Surface;
    pending->surface = surface;
    pending->surface.fd = fd;
    pending->damage.clear();  // a new surface is drawn whole
    flush();
}

void DisplayLink::disable_scanout(uint32_t scanout) {
    PendingScanout* pending = pending_for(scanout);
    if (!pending) return;
    if (pending->change == PendingScanout::Change::Surface) close(pending->surface.fd);
    pending->change = PendingScanout::Change::Disable;
    pending->surface = {};
    pending->damage.clear();
    flush();
}

void DisplayLink::damage(uint32_t scanout, const virtio::GpuRect& rect) {
    PendingScanout* pending = pending_for(scanout);
    if (!pending || rect.width == 0 || rect.height == 0) return;
    auto contains = [](const virtio::GpuRect& outer, const virtio::GpuRect& inner) {
        return inner.x >= outer.x && inner.y >= outer.y &&
               uint64_t{inner.x} + inner.width <= uint64_t{outer.x} + outer.width &&
               uint64_t{inner.y} + inner.height <= uint64_t{outer.y} + outer.height;
    };
    bool covered = false;
    for (const auto& existing : pending->damage) covered = covered || contains(existing, rect);
    if (!covered) {
        std::erase_if(pending->damage, [&](const virtio::GpuRect& existing) { return contains(rect, existing); });
        pending->damage.push_back(rect);
    }
    if (pending->damage.size() > kMaxDamageRects) {
        uint64_t left = UINT64_MAX, top = UINT64_MAX, right = 0, bottom = 0;
        for (const auto& r : pending->damage) {
            left = std::min<uint64_t>(left, r.x);
            top = std::min<uint64_t>(top, r.y);
            right = std::max<uint64_t>(right, uint64_t{r.x} + r.width);
            bottom = std::max<uint64_t>(bottom, uint64_t{r.y} + r.height);
        }
        pending->damage.assign(1, {static_cast<uint32_t>(left), static_cast<uint32_t>(top),
                                   static_cast<uint32_t>(right - left), static_cast<uint32_t>(bottom - top)});
    }
    flush();
}

void DisplayLink::cursor(const virtio::CursorPosition& position, const virtio::CursorShape* shape) {
    if (!connected()) return;
    pending_cursor_.set = true;
    pending_cursor_.position = position;
    if (shape) pending_cursor_.shape = *shape;  // an unsent shape stays until sent
    flush();
}

void DisplayLink::clear_pending() {
    for (auto& pending : pending_) {
        if (pending.change == PendingScanout::Change::Surface) close(pending.surface.fd);
        pending = {};
    }
    pending_cursor_ = {};
}

bool DisplayLink::emit_pending() {
    bool emitted = false;
    for (uint32_t scanout = 0; scanout < pending_.size(); ++scanout) {
        PendingScanout& pending = pending_[scanout];
        if (pending.change == PendingScanout::Change::Surface) {
            const auto& surface = pending.surface;
            queue({{"type", "surface"},
                   {"scanout", scanout},
                   {"width", surface.width},
                   {"height", surface.height},
                   {"stride", surface.stride},
                   {"format", "XRGB8888"},
                   {"offset", surface.offset},
                   {"fds", 1}},
                  surface.fd);  // ownership moves to the queue
            connection_->surface_shown_[scanout] = true;
            emitted = true;
        } else if (pending.change == PendingScanout::Change::Disable) {
            queue({{"type", "disable"}, {"scanout", scanout}});
            connection_->surface_shown_[scanout] = false;
            emitted = true;
        }
        pending.change = PendingScanout::Change::None;
        pending.surface = {};
        if (!pending.damage.empty()) {
            json rects = json::array();
            for (const auto& r : pending.damage) rects.push_back({r.x, r.y, r.width, r.height});
            queue({{"type", "damage"}, {"scanout", scanout}, {"rects", rects}});
            pending.damage.clear();
            emitted = true;
        }
        if (pending.modes) {
            queue({{"type", "modes"},
                   {"scanout", scanout},
                   {"preferred_width", pending.modes->width},
                   {"preferred_height", pending.modes->height}});
            pending.modes.reset();
            emitted = true;
        }
    }
    if (pending_cursor_.set) {
        const auto& position = pending_cursor_.position;
        json message{{"type", "cursor"},
                     {"scanout", position.scanout},
                     {"x", std::clamp(position.x, kMinCursorPosition, kMaxCursorPosition)},
                     {"y", std::clamp(position.y, kMinCursorPosition, kMaxCursorPosition)},
                     {"visible", position.visible}};
        if (pending_cursor_.shape) {
            const auto& shape = *pending_cursor_.shape;
            message["hot_x"] = shape.hot_x;
            message["hot_y"] = shape.hot_y;
            message["width"] = shape.width;
            message["height"] = shape.height;
            message["pixels"] = base64(shape.pixels);
        }
        queue(message);
        connection_->cursor_visible_ = position.visible;
        pending_cursor_ = {};
        emitted = true;
    }
    return emitted;
}

void DisplayLink::queue(const json& message, int fd) {
    const std::string text = message.dump();
    DisplayConnection::Outgoing outgoing;
    const auto length = static_cast<uint32_t>(text.size());
    outgoing.bytes.resize(4);
    std::memcpy(outgoing.bytes.data(), &length, 4);
    outgoing.bytes += text;
    outgoing.fd = fd;
    connection_->output_.push_back(std::move(outgoing));
    ++connection_->statistics_.messages_sent;
}

std::optional<std::string> DisplayLink::write_output() {
    auto& connection = *connection_;
    auto& output = connection.output_;
    while (connection.connected()) {
        if (output.empty() && !emit_pending()) break;
        auto& message = output.front();
        const char* data = message.bytes.data() + message.sent;
        const size_t left = message.bytes.size() - message.sent;
        ssize_t written;
        if (message.fd >= 0) {
            // display-protocol.md: the descriptors ride on the message's first byte.
            iovec vector{const_cast<char*>(data), left};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
            msghdr header{};
            header.msg_iov = &vector;
            header.msg_iovlen = 1;
            header.msg_control = control;
            header.msg_controllen = sizeof control;
            cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(cmsg), &message.fd, sizeof(int));
            written = sendmsg(connection.fd_, &header, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            written = send(connection.fd_, data, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (written < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return errno == EPIPE || errno == ECONNRESET ? std::string("the server closed the connection")
                                                         : std::string("write failed: ") + strerror(errno);
        }
        if (written > 0 && message.fd >= 0) {
            close(message.fd);  // the server has its own copy now
            message.fd = -1;
        }
        message.sent += static_cast<size_t>(written);
        if (message.sent == message.bytes.size()) output.pop_front();
    }
    return std::nullopt;
}

void DisplayLink::flush() {
    if (!connected()) return;
    if (auto error = write_output()) {
        drop(*error);
        return;
    }
    if (!watching_) return;
    const bool want_output = !connection_->output_.empty();
    if (want_output != watching_output_) {
        watching_output_ = want_output;
        (void)loop_.modify(connection_->fd_, want_output ? (EPOLLIN | EPOLLOUT) : static_cast<uint32_t>(EPOLLIN));
    }
}

}  // namespace atl::vmm
