#include "vmm/event_loop.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <string>

namespace atl::vmm {

Result<void> EventLoop::watch(int fd, uint32_t events, Callback callback) {
    if (const int error = epoll_.add(fd, events, static_cast<uint64_t>(fd)))
        return make_error(std::string("epoll add: ") + strerror(error));
    watchers_[fd] = std::make_shared<Callback>(std::move(callback));
    return {};
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
    if (const int error = epoll_.modify(fd, events, static_cast<uint64_t>(fd)))
        return make_error(std::string("epoll modify: ") + strerror(error));
    return {};
}

void EventLoop::unwatch(int fd) {
    epoll_.remove(fd);
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

void EventLoop::post(Task task) { epoll_.post(std::move(task)); }

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
    epoll_.wait(timeout_ms, [this](uint64_t fd, uint32_t events) {
        auto it = watchers_.find(static_cast<int>(fd));
        if (it == watchers_.end()) return;
        auto callback = it->second;  // survives an unwatch from inside the callback
        (*callback)(events);
    });
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
        auto task = std::move(timers_.begin()->second.second);
        timers_.erase(timers_.begin());
        task();
    }
}

}  // namespace atl::vmm
