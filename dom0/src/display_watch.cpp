#include "display_watch.h"

#include <nlohmann/json.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace atl::dom0 {

using nlohmann::json;

std::string vnc_address_text(const VncEndpoint& endpoint) {
    const bool ipv6 = endpoint.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

std::optional<VncEndpoint> read_vnc_state(const std::string& dir, const std::string& vm_name) {
    if (dir.empty()) return std::nullopt;
    std::ifstream file(dir + "/" + vm_name + ".json");
    if (!file) return std::nullopt;
    std::stringstream text;
    text << file.rdbuf();
    if (text.str().size() > 64 * 1024) return std::nullopt;
    const json state = json::parse(text.str(), nullptr, false);
    if (!state.is_object()) return std::nullopt;
    const auto name = state.find("vm_name");
    if (name == state.end() || !name->is_string() || name->get<std::string>() != vm_name) return std::nullopt;
    // A display server that died leaves its files behind.
    const auto pid = state.find("pid");
    if (pid == state.end() || !pid->is_number_unsigned() || pid->get<uint64_t>() == 0 ||
        pid->get<uint64_t>() > INT32_MAX)
        return std::nullopt;
    if (kill(static_cast<pid_t>(pid->get<uint64_t>()), 0) != 0 && errno != EPERM) return std::nullopt;
    const auto vnc = state.find("vnc");
    if (vnc == state.end() || !vnc->is_object()) return std::nullopt;
    const auto host = vnc->find("host");
    const auto port = vnc->find("port");
    if (host == vnc->end() || !host->is_string() || host->get<std::string>().empty() ||
        host->get<std::string>().size() > 255)
        return std::nullopt;
    if (port == vnc->end() || !port->is_number_unsigned() || port->get<uint64_t>() == 0 ||
        port->get<uint64_t>() > 65535)
        return std::nullopt;
    VncEndpoint endpoint;
    endpoint.host = host->get<std::string>();
    endpoint.port = static_cast<uint16_t>(port->get<uint64_t>());
    endpoint.tls = vnc->value("tls", false);
    endpoint.password = vnc->value("password", false);
    return endpoint;
}

DisplayStateWatcher::DisplayStateWatcher(std::string dir, Changed changed)
    : dir_(std::move(dir)), changed_(std::move(changed)) {
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (inotify_fd_ < 0 || stop_fd_ < 0 || dir_.empty()) return;
    thread_ = std::thread([this] { run(); });
}

DisplayStateWatcher::~DisplayStateWatcher() {
    if (thread_.joinable()) {
        const uint64_t one = 1;
        (void)!write(stop_fd_, &one, sizeof one);
        thread_.join();
    }
    if (inotify_fd_ >= 0) close(inotify_fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
}

void DisplayStateWatcher::run() {
    // atoll-display may start after atolld and create the directory then: until
    // it exists, try again every second.
    bool watching = false;
    for (;;) {
        if (!watching) {
            watching = inotify_add_watch(inotify_fd_, dir_.c_str(),
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF |
                                             IN_ONLYDIR) >= 0;
            if (watching) changed_("");
        }
        pollfd waits[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
        if (poll(waits, 2, watching ? -1 : 1000) < 0 && errno != EINTR) return;
        if (waits[0].revents) return;
        if (!(waits[1].revents & POLLIN)) continue;
        alignas(inotify_event) char buffer[16 * 1024];
        const ssize_t got = read(inotify_fd_, buffer, sizeof buffer);
        if (got <= 0) continue;
        for (ssize_t offset = 0; offset + static_cast<ssize_t>(sizeof(inotify_event)) <= got;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
            offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            if (event->mask & IN_IGNORED) {
                watching = false;  // the directory went; wait for it to come back
                changed_("");
                continue;
            }
            if (event->mask & IN_Q_OVERFLOW) {
                changed_("");
                continue;
            }
            if (event->len == 0) continue;
            const std::string file(event->name);
            const std::string suffix = ".json";
            if (file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0)
                changed_(file.substr(0, file.size() - suffix.size()));
        }
    }
}

}  // namespace atl::dom0
