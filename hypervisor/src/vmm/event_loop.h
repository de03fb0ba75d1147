// The VMM's I/O thread: one epoll loop that serves ioeventfds, back-end file
// descriptors (tap, slirp, sockets) and timers. Device models run here.
#pragma once

#include <atoll/epoll.h>
#include <atoll/result.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>

namespace atl::vmm {

class EventLoop {
public:
    using Callback = std::function<void(uint32_t epoll_events)>;
    using Task = std::function<void()>;
    using Clock = std::chrono::steady_clock;
    using TimerId = uint64_t;

    EventLoop() = default;
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Calls `callback` from the loop thread whenever `fd` is ready for `events`
    // (EPOLLIN, EPOLLOUT...). The loop does not own the fd.
    Result<void> watch(int fd, uint32_t events, Callback callback);
    Result<void> modify(int fd, uint32_t events);
    void unwatch(int fd);

    TimerId add_timer(Clock::time_point deadline, Task task);
    void cancel_timer(TimerId id);

    // Runs `task` on the loop thread. Safe from any thread.
    void post(Task task);
    // Runs `task` on the loop thread and waits for it; runs it inline when
    // called from the loop thread (or before the loop runs). This is how vCPU
    // threads reach device models, which live on the loop thread.
    void invoke(const Task& task);
    bool on_loop_thread() const;

    // Runs until stop(). Call from the thread that owns the loop.
    void run();
    // Runs ready callbacks once, waiting at most `timeout`.
    void run_once(std::chrono::milliseconds timeout);
    void stop();  // Safe from any thread.

private:
    std::atomic<std::thread::id> loop_thread_{};
    bool stopping_ = false;
    std::unordered_map<int, std::shared_ptr<Callback>> watchers_;
    std::multimap<Clock::time_point, std::pair<TimerId, Task>> timers_;
    TimerId next_timer_id_ = 1;
    // Events tagged with their fd. Last: destroyed first, so its descriptors
    // close and pending tasks go while the watchers and timers still exist.
    Epoll epoll_;
};

}  // namespace atl::vmm
