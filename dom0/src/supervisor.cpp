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

struct Supervisor::Pending {
    std::string command;
    bool done = false;
    json response;  // the whole reply object; null when the VMM went away
    std::condition_variable answered;
};

struct Supervisor::Watched {
    uint64_t run = 0;
    int pidfd = -1;
    bool child = false;
    int control_fd = -1;  // guarded by mutex_ for writes; read on the loop thread
    LineBuffer input;     // loop thread only
    VmmEnd end;           // loop thread only
    uint64_t next_id = 1;
    std::map<uint64_t, std::shared_ptr<Pending>> pending;  // by request id
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
    std::lock_guard lock(mutex_);
    for (auto& watched : adding_) watched_[watched->run] = watched;
    for (auto& [run, watched] : watched_) {
        close(watched->pidfd);
        if (watched->control_fd >= 0) close(watched->control_fd);
        for (auto& [id, pending] : watched->pending) {
            pending->done = true;
            pending->answered.notify_all();
        }
    }
    watched_.clear();
    close(wake_fd_);
    close(epoll_fd_);
}

void Supervisor::watch(uint64_t run, int pidfd, bool child, int control_fd, std::string unread) {
    auto watched = std::make_shared<Watched>();
    watched->run = run;
    watched->pidfd = pidfd;
    watched->child = child;
    watched->control_fd = control_fd;
    watched->input.append(unread.data(), unread.size());
    {
        std::lock_guard lock(mutex_);
        // Known at once, so that a request right after watch() finds it.
        watched_[run] = watched;
        adding_.push_back(watched);
    }
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
}

Outcome<json> Supervisor::request(uint64_t run, const std::string& command, std::chrono::milliseconds timeout,
                                  const json& arguments) {
    auto pending = std::make_shared<Pending>();
    pending->command = command;
    std::unique_lock lock(mutex_);
    auto it = watched_.find(run);
    if (it == watched_.end() || it->second->control_fd < 0)
        return fault(ErrorKind::Failed, "atoll-vmm is gone (no control connection)");
    auto watched = it->second;
    const uint64_t id = watched->next_id++;
    json request{{"id", id}, {"command", command}};
    if (arguments.is_object()) request["arguments"] = arguments;
    const std::string line = request.dump() + "\n";
    // A short line on a socket that is read all the time: it fits, or the VMM is stuck.
    const ssize_t sent = send(watched->control_fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent != static_cast<ssize_t>(line.size()))
        return fault(ErrorKind::Failed, "atoll-vmm does not take commands (control socket full or closed)");
    watched->pending[id] = pending;
    if (!pending->answered.wait_for(lock, timeout, [&] { return pending->done; })) {
        watched->pending.erase(id);
        return fault(ErrorKind::Timeout, "atoll-vmm did not answer " + command + " in time");
    }
    const json& response = pending->response;
    if (!response.is_object()) return fault(ErrorKind::Failed, "atoll-vmm ended before answering " + command);
    if (response.value("ok", false)) {
        if (response.contains("result") && response["result"].is_object()) return response["result"];
        return json::object();
    }
    std::string code = "internal-error", message = "no message";
    if (response.contains("error") && response["error"].is_object()) {
        const json& error = response["error"];
        if (error.contains("code") && error["code"].is_string()) code = error["code"].get<std::string>();
        if (error.contains("message") && error["message"].is_string()) message = error["message"].get<std::string>();
    }
    return fault(code == "invalid-state" ? ErrorKind::InvalidState : ErrorKind::Failed,
                 "atoll-vmm refused " + command + ": " + message);
}

void Supervisor::add_pending_watches() {
    std::vector<std::shared_ptr<Watched>> adding;
    {
        std::lock_guard lock(mutex_);
        adding.swap(adding_);
    }
    for (auto& watched : adding) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = tag(watched->run, false);
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watched->pidfd, &event);
        if (watched->control_fd >= 0) {
            event.data.u64 = tag(watched->run, true);
            epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watched->control_fd, &event);
            read_control(watched, false);  // lines already buffered
        }
    }
}

void Supervisor::read_control(const std::shared_ptr<Watched>& watched, bool drain) {
    // Non-blocking reads; `drain` empties what the socket already holds (the
    // exit event precedes the process's end).
    bool closed = false;
    if (watched->control_fd >= 0) {
        for (;;) {
            char buffer[8192];
            const ssize_t count = recv(watched->control_fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (count > 0) {
                watched->input.append(buffer, static_cast<size_t>(count));
                if (!drain) break;
                continue;
            }
            if (count < 0 && errno == EINTR) continue;
            if (count < 0 && errno == EAGAIN) break;
            closed = true;  // end of stream or error
            break;
        }
    }
    std::string line;
    while (watched->input.next_line(line)) {
        json message = json::parse(line, nullptr, false);
        if (message.is_discarded() || !message.is_object()) continue;
        if (message.contains("event")) {
            if (message["event"] == "exit") {
                if (message.contains("code") && message["code"].is_number_integer())
                    watched->end.code = message["code"].get<int>();
                if (message.contains("reason") && message["reason"].is_string())
                    watched->end.reason = message["reason"].get<std::string>();
                if (message.contains("message") && message["message"].is_string())
                    watched->end.message = message["message"].get<std::string>();
            } else if (callbacks_.on_event) {
                callbacks_.on_event(watched->run, message);
            }
            continue;
        }
        if (!message.contains("id") || !message["id"].is_number_unsigned()) continue;
        std::shared_ptr<Pending> pending;
        {
            std::lock_guard lock(mutex_);
            auto it = watched->pending.find(message["id"].get<uint64_t>());
            if (it == watched->pending.end()) continue;  // its requester gave up
            pending = it->second;
            watched->pending.erase(it);
        }
        // The owner applies what the reply means before the requester hears it,
        // and before any later event of the stream.
        if (message.value("ok", false) && callbacks_.on_reply) {
            const json result = message.contains("result") && message["result"].is_object() ? message["result"] : json::object();
            callbacks_.on_reply(watched->run, pending->command, result);
        }
        std::lock_guard lock(mutex_);
        pending->response = std::move(message);
        pending->done = true;
        pending->answered.notify_all();
    }
    if (closed) {
        std::lock_guard lock(mutex_);
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched->control_fd, nullptr);
        close(watched->control_fd);
        watched->control_fd = -1;
        for (auto& [id, pending] : watched->pending) {
            pending->done = true;  // response stays null: the VMM went away
            pending->answered.notify_all();
        }
        watched->pending.clear();
    }
}

void Supervisor::finish(uint64_t run) {
    std::shared_ptr<Watched> watched;
    {
        std::lock_guard lock(mutex_);
        auto it = watched_.find(run);
        if (it == watched_.end()) return;
        watched = it->second;
    }
    read_control(watched, true);
    {
        std::lock_guard lock(mutex_);
        watched_.erase(run);
        if (watched->control_fd >= 0) {
            epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched->control_fd, nullptr);
            close(watched->control_fd);
            watched->control_fd = -1;
        }
        for (auto& [id, pending] : watched->pending) {
            pending->done = true;
            pending->answered.notify_all();
        }
        watched->pending.clear();
    }
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched->pidfd, nullptr);
    if (watched->child) {
        if (auto status = reap(watched->pidfd, true)) {
            if (status->signaled) watched->end.signal = status->code;
            else watched->end.exit_status = status->code;
        }
    }
    close(watched->pidfd);
    if (callbacks_.on_end) callbacks_.on_end(run, watched->end);
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
                add_pending_watches();
                continue;
            }
            const uint64_t run = data >> 1;
            std::shared_ptr<Watched> watched;
            {
                std::lock_guard lock(mutex_);
                auto it = watched_.find(run);
                if (it == watched_.end()) continue;
                watched = it->second;
            }
            if (data & 1) read_control(watched, false);
            else finish(run);
        }
    }
}

}  // namespace atl::dom0
