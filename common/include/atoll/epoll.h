// What an event loop thread stands on: an epoll set whose events carry the
// caller's tags, and tasks posted from other threads, which wake the wait
// through an eventfd in the same set. atoll-vmm's I/O thread (tags are file
// descriptors; plus timers) and atoll-display's link thread (tags are watch
// ids) build their loops on it.
#pragma once

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

namespace atl {

class Epoll {
public:
    using Task = std::function<void()>;
    // The eventfd's tag; no caller's tag may be this.
    static constexpr uint64_t kWakeTag = std::numeric_limits<uint64_t>::max();

    Epoll() {
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = kWakeTag;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
    }
    ~Epoll() {
        close(wake_fd_);
        close(epoll_fd_);
    }
    Epoll(const Epoll&) = delete;
    Epoll& operator=(const Epoll&) = delete;

    // 0, or the errno of epoll_ctl (EEXIST, ENOENT, EBADF...).
    int add(int fd, uint32_t events, uint64_t tag) { return control(EPOLL_CTL_ADD, fd, events, tag); }
    int modify(int fd, uint32_t events, uint64_t tag) { return control(EPOLL_CTL_MOD, fd, events, tag); }
    void remove(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

    // Any thread: `task` runs on the thread in wait().
    void post(Task task) {
        {
            std::lock_guard lock(posted_mutex_);
            posted_.push_back(std::move(task));
        }
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t written = write(wake_fd_, &one, sizeof one);
    }

    // Waits at most `timeout_ms` (-1: without limit) for events, then, in the
    // order they came, runs the tasks posted so far (at the wake-up's place)
    // and calls ready(tag, epoll_events) for each other event.
    template <class Ready>
    void wait(int timeout_ms, Ready&& ready) {
        epoll_event events[32];
        const int count = epoll_wait(epoll_fd_, events, 32, timeout_ms);
        for (int i = 0; i < count; ++i) {
            if (events[i].data.u64 == kWakeTag) {
                run_posted();
                continue;
            }
            ready(events[i].data.u64, events[i].events);
        }
    }

private:
    int control(int operation, int fd, uint32_t events, uint64_t tag) {
        epoll_event event{};
        event.events = events;
        event.data.u64 = tag;
        return epoll_ctl(epoll_fd_, operation, fd, &event) == 0 ? 0 : errno;
    }

    void run_posted() {
        uint64_t value;
        [[maybe_unused]] ssize_t got = read(wake_fd_, &value, sizeof value);
        std::vector<Task> tasks;
        {
            std::lock_guard lock(posted_mutex_);
            tasks.swap(posted_);
        }
        for (auto& task : tasks) task();
    }

    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::mutex posted_mutex_;
    std::vector<Task> posted_;
};

}  // namespace atl
