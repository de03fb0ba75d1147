#include "vmm/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <string>

namespace atl::vmm {

EventLoop::EventLoop() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
}

EventLoop::~EventLoop() {
    close(wake_fd_);
    close(epoll_fd_);
}

Result<void> EventLoop::watch(int fd, uint32_t events, Callback callback) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0)
        return make_error(std::string("epoll add: ") + strerror(errno));
    watchers_[fd] = std::make_shared<Callback>(std::move(callback));
    return {};
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0)
        return make_error(std::string("epoll modify: ") + strerror(errno));
    return {};
}

void EventLoop::unwatch(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    watchers_.erase(fd);
}

EventLoop::TimerId EventLoop::add_timer(Clock::time_point deadline, Task task) {
    const TimerId id = next_timer_id_++;
    timers_.emplace(deadline, std::make_pair(id, std::move(task)));
    return id;
}

void EventLoop::cancel_timer(TimerId id) {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.first == id) {
            timers_.erase(it);
            return;
        }
    }
}

void EventLoop::post(Task task) {
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(task));
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto written = write(wake_fd_, &one, sizeof one);
}

bool EventLoop::on_loop_thread() const {
    const auto owner = loop_thread_.load();
    return owner == std::thread::id() || owner == std::this_thread::get_id();
}

void EventLoop::invoke(const Task& task) {
    if (on_loop_thread()) {
        task();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    post([&] {
        task();
        done.set_value();
    });
    finished.wait();
}

void EventLoop::stop() {
    post([this] { stopping_ = true; });
}

void EventLoop::run() {
    loop_thread_ = std::this_thread::get_id();
    while (!stopping_) run_once(std::chrono::milliseconds(-1));
}

void EventLoop::run_once(std::chrono::milliseconds timeout) {
    int timeout_ms = static_cast<int>(timeout.count());
    if (!timers_.empty()) {
        const auto until_first = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - Clock::now());
        const int timer_ms = std::max<int>(0, static_cast<int>(until_first.count()));
        if (timeout_ms < 0 || timer_ms < timeout_ms) timeout_ms = timer_ms;
    }
    epoll_event events[32];
    const int count = epoll_wait(epoll_fd_, events, 32, timeout_ms);
    for (int i = 0; i < count; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) {
            uint64_t value;
            [[maybe_unused]] auto got = read(wake_fd_, &value, sizeof value);
            std::vector<Task> tasks;
            {
                std::lock_guard lock(posted_mutex_);
                tasks.swap(posted_);
            }
            for (auto& task : tasks) task();
            continue;
        }
        auto it = watchers_.find(fd);
        if (it == watchers_.end()) continue;
        auto callback = it->second;  // survives an unwatch from inside the callback
        (*callback)(events[i].events);
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
        auto task = std::move(timers_.begin()->second.second);
        timers_.erase(timers_.begin());
        task();
    }
}

}  // namespace atl::vmm
