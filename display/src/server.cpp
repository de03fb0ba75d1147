#include <atoll/display/server.h>

#include "dbus_service.h"
#include "event_loop.h"
#include "link_protocol.h"
#include "state_file.h"
#include "vm_display.h"
#include "vnc_server.h"
#include "vnc_tls.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <unordered_map>

namespace atl::display {

namespace {

// A VMM that stops reading its input events is dropped, not buffered forever.
constexpr size_t kMaxOutputBytes = 1 << 20;

void log_line(const std::string& message) { fprintf(stderr, "atoll-display: %s\n", message.c_str()); }

}  // namespace

std::string default_runtime_dir() {
    if (geteuid() == 0) return "/run/atoll";
    const char* runtime = getenv("XDG_RUNTIME_DIR");
    return runtime && *runtime ? std::string(runtime) + "/atoll" : std::string();
}

// One VMM's link.
struct Connection {
    int fd = -1;
    EventLoop::WatchId watch = 0;
    uint32_t watched_events = EPOLLIN;
    std::string label;  // for log lines: "link 3", then "VM 'web'"
    link::FrameReader reader;
    std::string output;

    std::shared_ptr<VmDisplay> vm;  // after hello
    // For the line logged when the link drops.
    uint64_t surfaces = 0, damage = 0, input_events = 0;
    std::unique_ptr<VncServer> vnc;
    std::unique_ptr<DbusVmObject> dbus_object;
};

// Input from viewers: framed on the spot, sent by the link thread if the
// link still exists.
class LinkInput final : public InputSink {
public:
    LinkInput(Server::Impl& server, std::weak_ptr<Connection> connection)
        : server_(server), connection_(std::move(connection)) {}
    void key(uint16_t code, bool pressed) override { send(link::encode_key(code, pressed)); }
    void pointer(uint32_t x, uint32_t y, uint32_t buttons) override { send(link::encode_pointer(x, y, buttons)); }
    void wheel(int32_t dy) override { send(link::encode_wheel(dy)); }
    void motion(int32_t dx, int32_t dy, uint32_t buttons) override { send(link::encode_motion(dx, dy, buttons)); }
    void resize(uint32_t scanout, uint32_t width, uint32_t height) override {
        send(link::encode_resize(scanout, width, height));
    }

private:
    void send(std::string frame);
    Server::Impl& server_;
    std::weak_ptr<Connection> connection_;
};

struct Server::Impl {
    ServerOptions options;
    EventLoop loop;
    int listen_fd = -1;
    std::shared_ptr<TlsCredentials> tls;
    std::unique_ptr<DbusService> dbus;
    std::vector<std::shared_ptr<Connection>> connections;
    std::unordered_map<std::string, std::shared_ptr<Connection>> by_name;
    std::unordered_map<std::string, uint16_t> last_port;  // a VM that comes back gets its port again if free
    std::set<uint16_t> ports_in_use;

    ~Impl() {
        for (auto& connection : std::vector(connections)) drop(connection, "");
        if (listen_fd >= 0) {
            close(listen_fd);
            unlink(options.socket_path.c_str());
        }
    }

    void accept_links() {
        for (;;) {
            const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            auto connection = std::make_shared<Connection>();
            connection->fd = fd;
            connection->label = "link " + std::to_string(fd);
            std::weak_ptr<Connection> weak = connection;
            auto watched = loop.watch(fd, EPOLLIN, [this, weak](uint32_t events) {
                auto connection = weak.lock();
                if (!connection || connection->fd < 0) return;
                if (events & EPOLLOUT) flush(connection);
                if (connection->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) receive(connection);
            });
            if (!watched) {
                close(fd);
                continue;
            }
            connection->watch = *watched;
            connections.push_back(std::move(connection));
        }
    }

    void receive(const std::shared_ptr<Connection>& connection) {
        char buffer[16 * 1024];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * link::FrameReader::kMaxQueuedFds)];
        // At most 1 MiB per turn: a VMM that writes without pause must not
        // keep the other links waiting (epoll is level-triggered: it comes back).
        for (int turn = 0; turn < 64; ++turn) {
            iovec vector{buffer, sizeof buffer};
            msghdr message{};
            message.msg_iov = &vector;
            message.msg_iovlen = 1;
            message.msg_control = control;
            message.msg_controllen = sizeof control;
            const ssize_t count = recvmsg(connection->fd, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
            if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
            std::vector<int> fds;
            for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
                if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
                const size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; ++i) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
                    fds.push_back(fd);
                }
            }
            if (count <= 0) {
                for (int fd : fds) close(fd);
                drop(connection, count == 0 ? "link closed" : std::string("link: ") + strerror(errno));
                return;
            }
            auto fed = connection->reader.feed(std::string_view(buffer, static_cast<size_t>(count)), fds);
            if (message.msg_flags & MSG_CTRUNC) return drop(connection, "more file descriptors than a message carries");
            if (!fed) return drop(connection, fed.error().message);
            if (!process(connection)) return;
        }
    }

    // Handles every complete message; false when the connection was dropped.
    bool process(const std::shared_ptr<Connection>& connection) {
        for (;;) {
            auto frame = connection->reader.next();
            if (!frame) {
                drop(connection, frame.error().message);
                return false;
            }
            if (!*frame) return true;
            auto parsed = link::parse_vmm_message((*frame)->body);
            if (!parsed) {
                drop(connection, parsed.error().message);
                return false;
            }
            auto fds = connection->reader.take_fds(link::fds_required(*parsed));
            if (!fds) {
                drop(connection, fds.error().message);
                return false;
            }
            // Descriptors travel with their message's first byte: any still
            // queued when no later byte has arrived belong to no message.
            if ((*frame)->nothing_after && connection->reader.queued_fds() > 0) {
                for (int fd : *fds) close(fd);
                drop(connection, "file descriptors sent with a message that carries none");
                return false;
            }
            auto handled = handle(connection, *parsed, *fds);
            if (!handled) {
                drop(connection, handled.error().message);
                return false;
            }
            if (connection->fd < 0) return false;
        }
    }

    Result<void> handle(const std::shared_ptr<Connection>& connection, const link::VmmMessage& message,
                        const std::vector<int>& fds) {
        if (const auto* hello = std::get_if<link::Hello>(&message)) {
            if (connection->vm) return make_error("hello: sent twice");
            return welcome(connection, *hello);
        }
        if (!connection->vm) {
            for (int fd : fds) close(fd);
            return make_error("the first message must be hello");
        }
        VmDisplay& vm = *connection->vm;
        if (const auto* surface = std::get_if<link::Surface>(&message)) {
            ATOLL_TRY(vm.apply_surface(*surface, fds.at(0)));
            ++connection->surfaces;
            // Rare (mode changes): worth a line each.
            log_line(connection->label + ": scanout " + std::to_string(surface->scanout) + " shows a " +
                     std::to_string(surface->width) + "x" + std::to_string(surface->height) + " surface");
            return {};
        }
        if (const auto* disable = std::get_if<link::Disable>(&message)) {
            log_line(connection->label + ": scanout " + std::to_string(disable->scanout) + " off");
            return vm.apply(*disable);
        }
        if (const auto* damage = std::get_if<link::Damage>(&message)) {
            ++connection->damage;
            ATOLL_TRY(vm.apply(*damage));
            if (options.verbose) log_damage(*connection, *damage);
            return {};
        }
        if (const auto* cursor = std::get_if<link::Cursor>(&message)) return vm.apply(*cursor);
        if (const auto* modes = std::get_if<link::Modes>(&message)) return vm.apply(*modes);
        return {};
    }

    // --verbose: each damage message with a checksum of the surface, to tell
    // "no damage" from "damage of unchanged pixels" when a viewer shows
    // something stale.
    void log_damage(const Connection& connection, const link::Damage& damage) {
        auto surface = connection.vm->scanout(damage.scanout).surface;
        if (!surface) return;
        uint64_t hash = 1469598103934665603ull;  // FNV-1a over the visible pixels
        for (uint32_t y = 0; y < surface->height(); ++y) {
            const uint8_t* row = surface->pixels() + uint64_t{y} * surface->stride();
            for (uint32_t x = 0; x < surface->width() * 4; ++x) hash = (hash ^ row[x]) * 1099511628211ull;
        }
        std::string rects;
        for (const auto& rect : damage.rects)
            rects += " [" + std::to_string(rect.x) + "," + std::to_string(rect.y) + " " + std::to_string(rect.width) +
                     "x" + std::to_string(rect.height) + "]";
        char checksum[20];
        snprintf(checksum, sizeof checksum, "%016llx", static_cast<unsigned long long>(hash));
        log_line(connection.label + ": damage on scanout " + std::to_string(damage.scanout) + rects +
                 "; surface checksum " + checksum);
    }

    Result<void> welcome(const std::shared_ptr<Connection>& connection, const link::Hello& hello) {
        if (by_name.count(hello.vm_name))
            return make_error("hello: VM '" + hello.vm_name + "' already has a display link");
        auto input = std::make_shared<LinkInput>(*this, connection);
        connection->vm = std::make_shared<VmDisplay>(hello, input);
        connection->label = "VM '" + hello.vm_name + "'";
        by_name[hello.vm_name] = connection;
        send(connection, link::encode_welcome());

        std::string vnc_text = "no VNC";
        if (options.vnc) {
            auto vnc = start_vnc(hello.vm_name, input);
            if (vnc) {
                connection->vnc = std::move(*vnc);
                const VncAddress address = connection->vnc->address();
                ports_in_use.insert(address.port);
                last_port[hello.vm_name] = address.port;
                connection->vm->set_vnc_address(address);
                connection->vm->add_sink(connection->vnc.get());
                vnc_text = "VNC " + address.host + ":" + std::to_string(address.port);
                if (address.tls) vnc_text += " (VeNCrypt)";
            } else {
                // The VM keeps its link (and local viewers) without VNC.
                log_line(connection->label + ": " + vnc.error().message);
                vnc_text = "VNC failed";
            }
        }
        if (dbus) {
            auto object = dbus->add(connection->vm);
            if (object) {
                connection->dbus_object = std::move(*object);
                connection->vm->add_sink(connection->dbus_object.get());
            } else {
                log_line(connection->label + ": " + object.error().message);
            }
        }
        if (!options.state_dir.empty()) {
            if (auto written = write_state_file(options.state_dir, *connection->vm); !written)
                log_line(connection->label + ": " + written.error().message);
        }
        log_line(connection->label + ": display link up, " + std::to_string(hello.scanouts) + " scanout(s), " +
                 vnc_text);
        return {};
    }

    Result<std::unique_ptr<VncServer>> start_vnc(const std::string& name, std::shared_ptr<InputSink> input) {
        VncOptions vnc;
        vnc.listen_address = options.vnc_listen_address;
        vnc.password = options.vnc_password;
        vnc.tls = tls;
        vnc.desktop_name = name;
        if (auto fixed = options.vnc_ports.find(name); fixed != options.vnc_ports.end()) {
            vnc.ports.push_back(fixed->second);
        } else {
            if (auto last = last_port.find(name); last != last_port.end() && !ports_in_use.count(last->second))
                vnc.ports.push_back(last->second);
            for (uint32_t i = 0; i < options.vnc_port_count; ++i) {
                const uint32_t port = uint32_t{options.vnc_port_base} + i;
                if (port > 65535) break;
                if (ports_in_use.count(static_cast<uint16_t>(port))) continue;
                // Ports reserved for a named VM are not handed to others.
                bool reserved = false;
                for (const auto& [vm, fixed_port] : options.vnc_ports) reserved |= fixed_port == port;
                if (!reserved) vnc.ports.push_back(static_cast<uint16_t>(port));
            }
        }
        return VncServer::start(vnc, std::move(input));
    }

    void send(const std::shared_ptr<Connection>& connection, std::string_view frame) {
        if (connection->fd < 0) return;
        if (connection->output.size() + frame.size() > kMaxOutputBytes)
            return drop(connection, "the VMM does not read its input events");
        connection->output.append(frame);
        flush(connection);
    }

    void flush(const std::shared_ptr<Connection>& connection) {
        while (!connection->output.empty()) {
            const ssize_t written = ::send(connection->fd, connection->output.data(), connection->output.size(),
                                           MSG_NOSIGNAL | MSG_DONTWAIT);
            if (written < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                return drop(connection, std::string("link: ") + strerror(errno));
            }
            connection->output.erase(0, static_cast<size_t>(written));
        }
        const uint32_t wanted = connection->output.empty() ? EPOLLIN : (EPOLLIN | EPOLLOUT);
        if (wanted != connection->watched_events) {
            connection->watched_events = wanted;
            loop.modify(connection->watch, wanted);
        }
    }

    // Ends one link: its VM's viewers go, the other VMs are untouched.
    void drop(const std::shared_ptr<Connection>& connection, const std::string& reason) {
        if (connection->fd < 0) return;
        if (!reason.empty()) {
            std::string counts;
            if (connection->vm)
                counts = " (" + std::to_string(connection->surfaces) + " surfaces, " +
                         std::to_string(connection->damage) + " damage messages, " +
                         std::to_string(connection->input_events) + " input events)";
            log_line(connection->label + ": " + reason + "; link dropped" + counts);
        }
        loop.unwatch(connection->watch);
        close(connection->fd);
        connection->fd = -1;
        if (connection->vm) {
            const std::string name = connection->vm->name();
            if (connection->dbus_object) connection->vm->remove_sink(connection->dbus_object.get());
            if (connection->vnc) {
                connection->vm->remove_sink(connection->vnc.get());
                ports_in_use.erase(connection->vnc->address().port);
            }
            connection->dbus_object.reset();
            connection->vnc.reset();
            connection->vm->set_vnc_address(std::nullopt);
            if (!options.state_dir.empty()) remove_state_file(options.state_dir, name);
            by_name.erase(name);
        }
        std::erase(connections, connection);
    }
};

void LinkInput::send(std::string frame) {
    server_.loop.post([&server = server_, weak = connection_, frame = std::move(frame)] {
        if (auto connection = weak.lock()) {
            ++connection->input_events;
            server.send(connection, frame);
        }
    });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::start(const ServerOptions& options) {
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    initialize_vnc(options.verbose);

    if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
        if (options.tls_cert_file.empty() || options.tls_key_file.empty())
            return make_error("VeNCrypt needs both a certificate (--vnc-tls-cert) and a key (--vnc-tls-key)");
        auto tls = TlsCredentials::load(options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file);
        if (!tls) return tls.error();
        impl->tls = *tls;
    } else if (!options.tls_client_ca_file.empty()) {
        return make_error("--vnc-tls-client-ca needs --vnc-tls-cert and --vnc-tls-key");
    }

    const std::string& path = options.socket_path;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path)
        return make_error("link socket \"" + path + "\": empty or longer than 107 bytes");
    memcpy(address.sun_path, path.c_str(), path.size() + 1);
    std::error_code made;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), made);
    struct stat existing {};
    if (lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) return make_error("link socket " + path + ": exists and is not a socket");
        // A live server answers; a stale socket from a dead one is replaced.
        const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool alive = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
        if (probe >= 0) close(probe);
        if (alive) return make_error("link socket " + path + ": another atoll-display is serving it");
        unlink(path.c_str());
    }
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error("link socket: " + std::string(strerror(errno)));
    const mode_t old_mask = umask(0077);  // only this user's VMMs may connect
    const int bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    umask(old_mask);
    if (bound != 0 || listen(fd, 32) != 0) {
        const std::string why = strerror(errno);
        close(fd);
        return make_error("link socket " + path + ": " + why);
    }
    impl->listen_fd = fd;
    auto watched = impl->loop.watch(fd, EPOLLIN, [raw = impl.get()](uint32_t) { raw->accept_links(); });
    if (!watched) return watched.error();

    if (options.dbus != ServerOptions::Dbus::None) {
        auto dbus = DbusService::start(options.dbus == ServerOptions::Dbus::System ? DbusService::Bus::System
                                                                                  : DbusService::Bus::Session);
        if (!dbus) return dbus.error();
        impl->dbus = std::move(*dbus);
    }
    return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::run() { impl_->loop.run(); }

void Server::stop() { impl_->loop.stop(); }

}  // namespace atl::display
