#include "supervisor.h"

#include "control_client.h"
#include "vmm_process.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace atl::dom0 {

using nlohmann::json;

struct Supervisor::Watched {
    uint64_t run = 0;
    int pidfd = -1;
    bool child = false;
    int control_fd = -1;
    LineBuffer input;
    VmmEnd end;
};

namespace {
// epoll data: the run number, and whether the descriptor is the control socket.
uint64_t tag(uint64_t run, bool control) { return run << 1 | (control ? 1 : 0); }
}  // namespace

Supervisor::Supervisor(Callbacks callbacks) : callbacks_(std::move(callbacks)) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = UINT64_MAX;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
    thread_ = std::thread([this] { loop(); });
}

Supervisor::~Supervisor() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
    for (auto* watched : pending_) watched_[watched->run] = watched;
    for (auto& [run, watched] : watched_) {
        close(watched->pidfd);
        if (watched->control_fd >= 0) close(watched->control_fd);
        delete watched;
    }
    close(wake_fd_);
    close(epoll_fd_);
}

void Supervisor::watch(uint64_t run, int pidfd, bool child, int control_fd, std::string unread) {
    auto* watched = new Watched;
    watched->run = run;
    watched->pidfd = pidfd;
    watched->child = child;
    watched->control_fd = control_fd;
    watched->input.append(unread.data(), unread.size());
    {
        std::lock_guard lock(mutex_);
        pending_.push_back(watched);
    }
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
}

void Supervisor::add_pending() {
    std::vector<Watched*> adding;
    {
        std::lock_guard lock(mutex_);
        adding.swap(pending_);
    }
    for (auto* watched : adding) {
        watched_[watched->run] = watched;
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = tag(watched->run, false);
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watched->pidfd, &event);
        if (watched->control_fd >= 0) {
            event.data.u64 = tag(watched->run, true);
            epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watched->control_fd, &event);
            read_control(*watched, false);  // lines already buffered
        }
    }
}

void Supervisor::read_control(Watched& watched, bool until_eof) {
    // Non-blocking reads: until_eof only drains what the socket already holds
    // (the exit event precedes the process's end).
    if (watched.control_fd >= 0) {
        for (;;) {
            char buffer[8192];
            const ssize_t count = recv(watched.control_fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (count > 0) {
                watched.input.append(buffer, static_cast<size_t>(count));
                if (!until_eof) break;
                continue;
            }
            if (count < 0 && errno == EINTR) continue;
            if (count < 0 && errno == EAGAIN) break;
            // End of stream or error: the connection is over.
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched.control_fd, nullptr);
            close(watched.control_fd);
            watched.control_fd = -1;
            break;
        }
    }
    std::string line;
    while (watched.input.next_line(line)) {
        json message = json::parse(line, nullptr, false);
        if (message.is_discarded() || !message.is_object() || !message.contains("event")) continue;
        if (message["event"] == "exit") {
            if (message.contains("code") && message["code"].is_number_integer()) watched.end.code = message["code"].get<int>();
            if (message.contains("reason") && message["reason"].is_string())
                watched.end.reason = message["reason"].get<std::string>();
            if (message.contains("message") && message["message"].is_string())
                watched.end.message = message["message"].get<std::string>();
            continue;
        }
        if (callbacks_.on_event) callbacks_.on_event(watched.run, message);
    }
}

void Supervisor::finish(uint64_t run) {
    auto it = watched_.find(run);
    if (it == watched_.end()) return;
    Watched* watched = it->second;
    watched_.erase(it);
    read_control(*watched, true);
    if (watched->control_fd >= 0) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched->control_fd, nullptr);
        close(watched->control_fd);
    }
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched->pidfd, nullptr);
    if (watched->child) {
        if (auto status = reap(watched->pidfd, true)) {
            if (status->signaled) watched->end.signal = status->code;
            else watched->end.exit_status = status->code;
        }
    }
    close(watched->pidfd);
    const VmmEnd end = watched->end;
    delete watched;
    if (callbacks_.on_end) callbacks_.on_end(run, end);
}

void Supervisor::loop() {
    epoll_event events[32];
    for (;;) {
        const int count = epoll_wait(epoll_fd_, events, 32, -1);
        if (count < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < count; ++i) {
            const uint64_t data = events[i].data.u64;
            if (data == UINT64_MAX) {
                uint64_t value;
                (void)!read(wake_fd_, &value, sizeof value);
                {
                    std::lock_guard lock(mutex_);
                    if (stopping_) return;
                }
                add_pending();
                continue;
            }
            const uint64_t run = data >> 1;
            auto it = watched_.find(run);
            if (it == watched_.end()) continue;
            if (data & 1) read_control(*it->second, false);
            else finish(run);
        }
    }
}

}  // namespace atl::dom0
