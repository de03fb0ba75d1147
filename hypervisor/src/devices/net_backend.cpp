#include "devices/net_backend.h"

#include "vmm/event_loop.h"

#include <slirp/libslirp.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <unordered_map>

namespace atl::vmm {

namespace {

// A guest can trigger these messages at will (malformed packets), so each
// source prints a few lines per second and counts the rest.
class RateLimitedLog {
public:
    explicit RateLimitedLog(std::string prefix) : prefix_(std::move(prefix)) {}

    void operator()(const std::string& message) {
        const auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= std::chrono::seconds(1)) {
            if (suppressed_ > 0)
                std::fprintf(stderr, "%s: %llu more messages suppressed\n", prefix_.c_str(),
                             static_cast<unsigned long long>(suppressed_));
            window_start_ = now;
            printed_in_window_ = 0;
            suppressed_ = 0;
        }
        if (printed_in_window_ >= kLinesPerSecond) {
            ++suppressed_;
            return;
        }
        ++printed_in_window_;
        std::fprintf(stderr, "%s: %s\n", prefix_.c_str(), message.c_str());
    }

private:
    static constexpr int kLinesPerSecond = 5;
    std::string prefix_;
    std::chrono::steady_clock::time_point window_start_{};
    int printed_in_window_ = 0;
    uint64_t suppressed_ = 0;
};

std::string errno_text(int error) { return std::strerror(error); }

// ---------------------------------------------------------------------------
// Option parsing

std::optional<in_addr> parse_ipv4(const std::string& text) {
    in_addr address{};
    if (inet_pton(AF_INET, text.c_str(), &address) != 1) return std::nullopt;
    return address;
}

std::string format_ipv4(in_addr address) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &address, text, sizeof text);
    return text;
}

std::optional<int> parse_port(std::string_view text) {
    int port = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (error != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535)
        return std::nullopt;
    return port;
}

struct Subnet {
    in_addr network{};
    in_addr netmask{};
    bool contains(in_addr address) const {
        return (address.s_addr & netmask.s_addr) == network.s_addr;
    }
};

Result<Subnet> parse_subnet(const std::string& cidr) {
    const auto slash = cidr.find('/');
    const auto bad = [&] {
        return make_error("slirp network '" + cidr + "': expected an IPv4 subnet such as 10.0.2.0/24");
    };
    if (slash == std::string::npos) return bad();
    const auto network = parse_ipv4(cidr.substr(0, slash));
    int prefix_bits = 0;
    const std::string_view prefix_text = std::string_view(cidr).substr(slash + 1);
    const auto [end, error] =
        std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix_bits);
    if (!network || error != std::errc() || end != prefix_text.data() + prefix_text.size()) return bad();
    // The subnet must hold the network, router, DNS and DHCP addresses.
    if (prefix_bits < 8 || prefix_bits > 29)
        return make_error("slirp network '" + cidr + "': prefix length must be between 8 and 29");
    Subnet subnet;
    subnet.netmask.s_addr = htonl(~0u << (32 - prefix_bits));
    subnet.network = *network;
    if ((subnet.network.s_addr & ~subnet.netmask.s_addr) != 0)
        return make_error("slirp network '" + cidr + "': host bits are set (did you mean " +
                          format_ipv4(in_addr{subnet.network.s_addr & subnet.netmask.s_addr}) + "/" +
                          std::to_string(prefix_bits) + "?)");
    return subnet;
}

Result<in_addr> parse_address_in(const Subnet& subnet, const std::string& cidr, const char* what,
                                 const std::string& text) {
    const auto address = parse_ipv4(text);
    if (!address) return make_error(std::string("slirp ") + what + " '" + text + "': not an IPv4 address");
    if (!subnet.contains(*address))
        return make_error(std::string("slirp ") + what + " " + text + ": outside the network " + cidr);
    return *address;
}

struct HostForward {
    bool udp = false;
    in_addr host_address{};
    int host_port = 0;
    int guest_port = 0;
};

Result<HostForward> parse_host_forward(const std::string& text) {
    std::vector<std::string_view> fields;
    std::string_view rest = text;
    while (true) {
        const auto colon = rest.find(':');
        fields.push_back(rest.substr(0, colon));
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
    }
    const auto bad = [&] {
        return make_error("slirp host forward '" + text +
                          "': expected tcp:HOSTPORT:GUESTPORT, udp:HOSTPORT:GUESTPORT or tcp:HOSTADDR:HOSTPORT:GUESTPORT");
    };
    if (fields.size() != 3 && fields.size() != 4) return bad();
    HostForward forward;
    if (fields[0] == "udp") forward.udp = true;
    else if (fields[0] != "tcp") return bad();
    forward.host_address.s_addr = htonl(INADDR_LOOPBACK);
    if (fields.size() == 4) {
        const auto address = parse_ipv4(std::string(fields[1]));
        if (!address) return bad();
        forward.host_address = *address;
    }
    const auto host_port = parse_port(fields[fields.size() - 2]);
    const auto guest_port = parse_port(fields.back());
    if (!host_port || !guest_port) return bad();
    forward.host_port = *host_port;
    forward.guest_port = *guest_port;
    return forward;
}

// ---------------------------------------------------------------------------
// libslirp on the event loop
//
// libslirp is written for a poll() loop: before sleeping the application asks
// it which sockets to watch (slirp_pollfds_fill), after waking it reports what
// happened (slirp_pollfds_poll). Here the "sleep" is the EventLoop's epoll:
// after every call into slirp the set of watched fds is brought in line with
// what slirp asked for, and a wake-up timer is set to the timeout slirp gave
// (its TCP timers run inside slirp_pollfds_poll). No thread, no busy polling:
// when idle, slirp asks to be woken at most once a second.

uint32_t to_epoll_events(int slirp_events) {
    uint32_t events = 0;
    if (slirp_events & SLIRP_POLL_IN) events |= EPOLLIN;
    if (slirp_events & SLIRP_POLL_OUT) events |= EPOLLOUT;
    if (slirp_events & SLIRP_POLL_PRI) events |= EPOLLPRI;
    return events;
}

int to_slirp_events(uint32_t epoll_events) {
    int events = 0;
    if (epoll_events & EPOLLIN) events |= SLIRP_POLL_IN;
    if (epoll_events & EPOLLOUT) events |= SLIRP_POLL_OUT;
    if (epoll_events & EPOLLPRI) events |= SLIRP_POLL_PRI;
    if (epoll_events & EPOLLERR) events |= SLIRP_POLL_ERR;
    if (epoll_events & EPOLLHUP) events |= SLIRP_POLL_HUP;
    return events;
}

int64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

class SlirpBackend final : public NetBackend {
public:
    SlirpBackend(EventLoop& loop, std::string description)
        : loop_(loop), description_(std::move(description)), log_(description_) {}

    ~SlirpBackend() override {
        cancel_wakeup();
        for (const auto& [fd, events] : watched_) loop_.unwatch(fd);
        watched_.clear();
        if (slirp_) slirp_cleanup(slirp_);  // frees its timers through timer_free
        slirp_ = nullptr;
        for (auto& [timer, owned] : timers_) {
            if (timer->scheduled) loop_.cancel_timer(*timer->scheduled);
        }
        timers_.clear();
    }

    Result<void> start(const SlirpOptions& options) {
        auto subnet = parse_subnet(options.network);
        if (!subnet) return subnet.error();
        auto host = parse_address_in(*subnet, options.network, "host address", options.host_address);
        if (!host) return host.error();
        auto dns = parse_address_in(*subnet, options.network, "DNS address", options.dns_address);
        if (!dns) return dns.error();
        auto dhcp_start = parse_address_in(*subnet, options.network, "DHCP start", options.dhcp_start);
        if (!dhcp_start) return dhcp_start.error();
        std::vector<HostForward> forwards;
        for (const auto& text : options.host_forwards) {
            auto forward = parse_host_forward(text);
            if (!forward) return forward.error();
            forwards.push_back(*forward);
        }

        hostname_ = options.hostname;
        SlirpConfig config{};
        config.version = 4;
        config.restricted = options.restricted ? 1 : 0;
        config.in_enabled = true;
        config.vnetwork = subnet->network;
        config.vnetmask = subnet->netmask;
        config.vhost = *host;
        config.in6_enabled = false;
        config.vhostname = hostname_.empty() ? nullptr : hostname_.c_str();
        config.vdhcp_start = *dhcp_start;
        config.vnameserver = *dns;
        // if_mtu/if_mru 0: slirp's defaults (1500), matching the guest's default MTU.
        config.disable_host_loopback = false;  // 10.0.2.2 reaches the host's 127.0.0.1
        config.enable_emu = false;  // slirp's own documentation calls its emulation code unsafe
        config.disable_dns = false;
        config.disable_dhcp = false;

        slirp_ = slirp_new(&config, &kCallbacks, this);
        if (!slirp_) return make_error(description_ + ": libslirp refused the configuration");

        for (size_t i = 0; i < forwards.size(); ++i) {
            const HostForward& forward = forwards[i];
            errno = 0;
            if (slirp_add_hostfwd(slirp_, forward.udp ? 1 : 0, forward.host_address, forward.host_port,
                                  *dhcp_start, forward.guest_port) < 0) {
                const int error = errno;
                return make_error("slirp host forward '" + options.host_forwards[i] + "': cannot listen on " +
                                  format_ipv4(forward.host_address) + ":" + std::to_string(forward.host_port) +
                                  (error ? " (" + errno_text(error) + ")" : std::string(" (port in use?)")));
            }
        }
        sync_with_slirp();  // watch the forwards' listening sockets
        return {};
    }

    void send(std::span<const uint8_t> frame) override {
        if (frame.size() > static_cast<size_t>(INT_MAX)) return;
        if (depth_ > 0) {
            // Called back from inside slirp (a receive handler answering at
            // once): slirp is not re-entrant, so the frame waits its turn.
            deferred_frames_.emplace_back(frame.begin(), frame.end());
            return;
        }
        call_slirp([&] { slirp_input(slirp_, frame.data(), static_cast<int>(frame.size())); });
    }

    void set_receive_handler(ReceiveHandler handler) override { receive_handler_ = std::move(handler); }

    std::string description() const override { return description_; }

private:
    struct Timer {
        SlirpBackend* owner = nullptr;
        // Version-4 timers are handed back through slirp_handle_timer...
        SlirpTimerId id = SLIRP_TIMER_RA;
        // ...older ones call a function directly.
        SlirpTimerCb callback = nullptr;
        void* callback_opaque = nullptr;
        std::optional<EventLoop::TimerId> scheduled;
    };

    struct PollEntry {
        int fd;
        int slirp_events;
    };

    // Every call into slirp goes through here. Afterwards the fds slirp wants
    // watched and its timeout may have changed (a connection opened or closed,
    // a TCP timer started), so the loop is brought in line with slirp.
    template <class Call>
    void call_slirp(Call&& call) {
        ++depth_;
        call();
        --depth_;
        if (depth_ > 0) return;
        while (!deferred_frames_.empty()) {
            const std::vector<uint8_t> frame = std::move(deferred_frames_.front());
            deferred_frames_.pop_front();
            ++depth_;
            slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
            --depth_;
        }
        sync_with_slirp();
    }

    void sync_with_slirp() {
        poll_entries_.clear();
        uint32_t timeout_ms = UINT32_MAX;
        syncing_ = true;
        slirp_pollfds_fill(slirp_, &timeout_ms, &SlirpBackend::add_poll, this);
        syncing_ = false;

        wanted_.clear();
        for (const PollEntry& entry : poll_entries_) wanted_[entry.fd] |= to_epoll_events(entry.slirp_events);
        for (auto it = watched_.begin(); it != watched_.end();) {
            const auto wanted = wanted_.find(it->first);
            if (wanted == wanted_.end() || wanted->second == 0) {
                loop_.unwatch(it->first);
                it = watched_.erase(it);
            } else {
                ++it;
            }
        }
        for (const auto& [fd, events] : wanted_) {
            if (events == 0) continue;  // epoll would still report HUP/ERR that slirp is not asking about
            const auto watched = watched_.find(fd);
            if (watched == watched_.end()) {
                watch(fd, events);
            } else if (watched->second != events) {
                watched->second = events;
                if (!loop_.modify(fd, events)) {
                    // slirp closed the fd without telling us and a new socket
                    // took its number: epoll forgot the old one, so add anew.
                    loop_.unwatch(fd);
                    watched_.erase(fd);
                    watch(fd, events);
                }
            }
        }
        schedule_wakeup(timeout_ms);
    }

    void watch(int fd, uint32_t events) {
        auto watched = loop_.watch(fd, events, [this, fd](uint32_t ready) { on_fd_ready(fd, ready); });
        if (!watched) {
            log_("cannot watch socket " + std::to_string(fd) + ": " + watched.error().message);
            return;
        }
        watched_[fd] = events;
    }

    void on_fd_ready(int fd, uint32_t epoll_events) {
        ready_fd_ = fd;
        ready_events_ = to_slirp_events(epoll_events);
        call_slirp([&] { slirp_pollfds_poll(slirp_, 0, &SlirpBackend::get_revents, this); });
        ready_fd_ = -1;
        ready_events_ = 0;
    }

    void schedule_wakeup(uint32_t timeout_ms) {
        cancel_wakeup();
        if (timeout_ms == UINT32_MAX) return;
        wakeup_timer_ = loop_.add_timer(EventLoop::Clock::now() + std::chrono::milliseconds(timeout_ms), [this] {
            wakeup_timer_.reset();
            // No fd is ready: slirp runs its TCP timers (retransmission, delayed ACK).
            call_slirp([&] { slirp_pollfds_poll(slirp_, 0, &SlirpBackend::get_revents, this); });
        });
    }

    void cancel_wakeup() {
        if (wakeup_timer_) loop_.cancel_timer(*wakeup_timer_);
        wakeup_timer_.reset();
    }

    void on_timer(Timer* timer) {
        timer->scheduled.reset();
        call_slirp([&] {
            if (timer->callback)
                timer->callback(timer->callback_opaque);
            else
                slirp_handle_timer(slirp_, timer->id, timer->callback_opaque);
        });
    }

    static SlirpBackend& self(void* opaque) { return *static_cast<SlirpBackend*>(opaque); }

    // --- slirp_pollfds_fill / slirp_pollfds_poll helpers
    static int add_poll(int fd, int events, void* opaque) {
        auto& backend = self(opaque);
        backend.poll_entries_.push_back(PollEntry{fd, events});
        return static_cast<int>(backend.poll_entries_.size() - 1);
    }

    static int get_revents(int index, void* opaque) {
        const auto& backend = self(opaque);
        if (index < 0 || static_cast<size_t>(index) >= backend.poll_entries_.size()) return 0;
        const PollEntry& entry = backend.poll_entries_[index];
        if (entry.fd != backend.ready_fd_) return 0;
        // Report only what slirp asked for, plus the conditions poll() always reports.
        return backend.ready_events_ & (entry.slirp_events | SLIRP_POLL_ERR | SLIRP_POLL_HUP);
    }

    // --- SlirpCb
    static ssize_t send_packet(const void* data, size_t length, void* opaque) {
        auto& backend = self(opaque);
        // Copy the handler: it may be replaced from inside itself.
        if (const ReceiveHandler handler = backend.receive_handler_)
            handler(std::span<const uint8_t>(static_cast<const uint8_t*>(data), length));
        return static_cast<ssize_t>(length);
    }

    static void guest_error(const char* message, void* opaque) {
        self(opaque).log_(std::string("guest error: ") + message);
    }

    static int64_t clock_get_ns(void*) { return monotonic_ns(); }

    static void* timer_new(SlirpTimerCb callback, void* callback_opaque, void* opaque) {
        auto timer = std::make_unique<Timer>();
        timer->owner = &self(opaque);
        timer->callback = callback;
        timer->callback_opaque = callback_opaque;
        Timer* raw = timer.get();
        self(opaque).timers_.emplace(raw, std::move(timer));
        return raw;
    }

    static void* timer_new_opaque(SlirpTimerId id, void* callback_opaque, void* opaque) {
        auto timer = std::make_unique<Timer>();
        timer->owner = &self(opaque);
        timer->id = id;
        timer->callback_opaque = callback_opaque;
        Timer* raw = timer.get();
        self(opaque).timers_.emplace(raw, std::move(timer));
        return raw;
    }

    static void timer_free(void* handle, void* opaque) {
        auto& backend = self(opaque);
        auto* timer = static_cast<Timer*>(handle);
        if (timer->scheduled) backend.loop_.cancel_timer(*timer->scheduled);
        backend.timers_.erase(timer);
    }

    // expire_time_ms is on the clock_get_ns clock, in milliseconds.
    static void timer_mod(void* handle, int64_t expire_time_ms, void* opaque) {
        auto& backend = self(opaque);
        auto* timer = static_cast<Timer*>(handle);
        if (timer->scheduled) backend.loop_.cancel_timer(*timer->scheduled);
        const int64_t delay_ms = std::max<int64_t>(0, expire_time_ms - monotonic_ns() / 1'000'000);
        timer->scheduled = backend.loop_.add_timer(EventLoop::Clock::now() + std::chrono::milliseconds(delay_ms),
                                                   [timer] { timer->owner->on_timer(timer); });
    }

    static void register_poll_fd(int, void*) {}  // watched when slirp_pollfds_fill asks for it

    // slirp is about to close `fd`: forget it now, before the number can be reused.
    static void unregister_poll_fd(int fd, void* opaque) {
        auto& backend = self(opaque);
        if (backend.watched_.erase(fd) > 0) backend.loop_.unwatch(fd);
    }

    // A socket can take more data: the next sync picks that up. Outside a
    // slirp call (no sync pending), sync now.
    static void notify(void* opaque) {
        auto& backend = self(opaque);
        if (backend.depth_ == 0 && !backend.syncing_ && backend.slirp_) backend.sync_with_slirp();
    }

    static void init_completed(Slirp* slirp, void* opaque) { self(opaque).slirp_ = slirp; }

    static constexpr SlirpCb kCallbacks = {
        .send_packet = &SlirpBackend::send_packet,
        .guest_error = &SlirpBackend::guest_error,
        .clock_get_ns = &SlirpBackend::clock_get_ns,
        .timer_new = &SlirpBackend::timer_new,
        .timer_free = &SlirpBackend::timer_free,
        .timer_mod = &SlirpBackend::timer_mod,
        .register_poll_fd = &SlirpBackend::register_poll_fd,
        .unregister_poll_fd = &SlirpBackend::unregister_poll_fd,
        .notify = &SlirpBackend::notify,
        .init_completed = &SlirpBackend::init_completed,
        .timer_new_opaque = &SlirpBackend::timer_new_opaque,
    };

    EventLoop& loop_;
    const std::string description_;
    RateLimitedLog log_;
    std::string hostname_;
    Slirp* slirp_ = nullptr;
    ReceiveHandler receive_handler_;

    std::vector<PollEntry> poll_entries_;  // indexed as slirp_pollfds_fill numbered them
    std::unordered_map<int, uint32_t> wanted_;   // scratch for sync_with_slirp
    std::unordered_map<int, uint32_t> watched_;  // fd -> epoll events registered
    int ready_fd_ = -1;
    int ready_events_ = 0;
    std::optional<EventLoop::TimerId> wakeup_timer_;
    std::unordered_map<Timer*, std::unique_ptr<Timer>> timers_;

    int depth_ = 0;  // > 0 while inside a slirp call
    bool syncing_ = false;  // inside slirp_pollfds_fill
    std::deque<std::vector<uint8_t>> deferred_frames_;
};

// ---------------------------------------------------------------------------
// tap

class TapBackend final : public NetBackend {
public:
    TapBackend(EventLoop& loop, int fd, std::string interface_name)
        : loop_(loop), fd_(fd), interface_name_(std::move(interface_name)),
          log_("tap device " + interface_name_), read_buffer_(kMaxFrameBytes) {}

    ~TapBackend() override {
        if (watching_) loop_.unwatch(fd_);
        close(fd_);
    }

    Result<void> start() {
        auto watched = loop_.watch(fd_, EPOLLIN, [this](uint32_t) { on_readable(); });
        if (!watched) return make_error("tap device " + interface_name_ + ": " + watched.error().message);
        watching_ = true;
        return {};
    }

    void send(std::span<const uint8_t> frame) override {
        while (true) {
            const ssize_t written = write(fd_, frame.data(), frame.size());
            if (written >= 0) return;
            if (errno == EINTR) continue;
            // EAGAIN: the kernel's queue is full; EIO: the interface is down.
            // Either way the frame is lost, as on a real wire.
            if (errno == EIO)
                log_("dropped a frame from the guest: the interface is down (ip link set " + interface_name_ + " up)");
            else if (errno != EAGAIN)
                log_("write failed: " + errno_text(errno));
            return;
        }
    }

    void set_receive_handler(ReceiveHandler handler) override { receive_handler_ = std::move(handler); }

    std::string description() const override { return "tap " + interface_name_; }

private:
    // Enough for any frame a tap without offloads hands us (its MTU can be
    // raised up to 64 KiB).
    static constexpr size_t kMaxFrameBytes = 65536 + 64;
    // Frames per wake-up, so one busy interface cannot starve the loop;
    // epoll is level-triggered and calls again for the rest.
    static constexpr int kFramesPerWakeup = 64;

    void on_readable() {
        for (int i = 0; i < kFramesPerWakeup; ++i) {
            const ssize_t length = read(fd_, read_buffer_.data(), read_buffer_.size());
            if (length < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;
                // A persistent error (the interface was deleted): stop
                // watching rather than spin on it.
                log_("read failed: " + errno_text(errno) + "; no more frames from it");
                loop_.unwatch(fd_);
                watching_ = false;
                return;
            }
            if (length == 0) return;
            if (const ReceiveHandler handler = receive_handler_)
                handler(std::span<const uint8_t>(read_buffer_.data(), static_cast<size_t>(length)));
        }
    }

    EventLoop& loop_;
    const int fd_;
    const std::string interface_name_;
    RateLimitedLog log_;
    std::vector<uint8_t> read_buffer_;
    ReceiveHandler receive_handler_;
    bool watching_ = false;
};

class NullBackend final : public NetBackend {
public:
    void send(std::span<const uint8_t>) override {}
    void set_receive_handler(ReceiveHandler) override {}
    std::string description() const override { return "null"; }
};

}  // namespace

Result<std::shared_ptr<NetBackend>> make_slirp_backend(EventLoop& loop, const SlirpOptions& options) {
    auto backend = std::make_shared<SlirpBackend>(loop, "slirp " + options.network);
    auto started = backend->start(options);
    if (!started) return started.error();
    return std::shared_ptr<NetBackend>(std::move(backend));
}

Result<std::shared_ptr<NetBackend>> make_tap_backend(EventLoop& loop, const std::string& interface_name) {
    if (interface_name.empty() || interface_name.size() >= IFNAMSIZ)
        return make_error("tap device name '" + interface_name + "': must be 1 to " + std::to_string(IFNAMSIZ - 1) +
                          " characters");

    const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        if (error == ENOENT || error == ENODEV || error == ENXIO)
            return make_error("/dev/net/tun missing (load the tun module: modprobe tun)");
        if (error == EACCES || error == EPERM)
            return make_error("/dev/net/tun: permission denied (needs CAP_NET_ADMIN or access to /dev/net/tun)");
        return make_error("/dev/net/tun: " + errno_text(error));
    }

    ifreq request{};
    std::memcpy(request.ifr_name, interface_name.c_str(), interface_name.size());
    // Plain Ethernet frames: no packet-information prefix, no virtio-net
    // header (the guest gets no offloads through this back-end).
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (ioctl(fd, TUNSETIFF, &request) != 0) {
        const int error = errno;
        close(fd);
        const std::string prefix = "tap device " + interface_name + ": ";
        if (error == EPERM || error == EACCES)
            return make_error(prefix + "permission denied (needs CAP_NET_ADMIN)");
        if (error == EBUSY)
            return make_error(prefix + "busy (opened by another process, or an interface of another kind)");
        if (error == EINVAL)
            return make_error(prefix + "invalid (an existing interface of another kind or with other flags?)");
        return make_error(prefix + errno_text(error));
    }
    // The kernel fills in the final name when the request used a pattern ("atoll%d").
    const std::string actual_name(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));

    auto backend = std::make_shared<TapBackend>(loop, fd, actual_name);
    auto started = backend->start();
    if (!started) return started.error();
    return std::shared_ptr<NetBackend>(std::move(backend));
}

std::shared_ptr<NetBackend> make_null_net_backend() { return std::make_shared<NullBackend>(); }

}  // namespace atl::vmm
