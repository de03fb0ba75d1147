#include "event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace atl::display {

namespace {
constexpr uint64_t kWakeId = 0;
}

EventLoop::EventLoop() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kWakeId;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
}

EventLoop::~EventLoop() {
    close(wake_fd_);
    close(epoll_fd_);
}

Result<EventLoop::WatchId> EventLoop::watch(int fd, uint32_t events, Handler handler) {
    const WatchId id = next_id_++;
    epoll_event event{};
    event.events = events;
    event.data.u64 = id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0)
        return make_error(std::string("epoll: ") + strerror(errno));
    watches_.emplace(id, Watch{fd, std::make_shared<Handler>(std::move(handler))});
    return id;
}

void EventLoop::modify(WatchId id, uint32_t events) {
    auto found = watches_.find(id);
    if (found == watches_.end()) return;
    epoll_event event{};
    event.events = events;
    event.data.u64 = id;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, found->second.fd, &event);
}

void EventLoop::unwatch(WatchId id) {
    auto found = watches_.find(id);
    if (found == watches_.end()) return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, found->second.fd, nullptr);
    watches_.erase(found);
}

void EventLoop::post(Task task) {
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(task));
    }
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t written = write(wake_fd_, &one, sizeof one);
}

void EventLoop::stop() {
    post([this] { stopping_ = true; });
}

void EventLoop::run() {
    while (!stopping_) {
        epoll_event events[32];
        const int count = epoll_wait(epoll_fd_, events, 32, -1);
        for (int i = 0; i < count; ++i) {
            const WatchId id = events[i].data.u64;
            if (id == kWakeId) {
                uint64_t value;
                [[maybe_unused]] ssize_t got = read(wake_fd_, &value, sizeof value);
                std::vector<Task> tasks;
                {
                    std::lock_guard lock(posted_mutex_);
                    tasks.swap(posted_);
                }
                for (auto& task : tasks) task();
                continue;
            }
            auto found = watches_.find(id);
            if (found == watches_.end()) continue;  // unwatched earlier in this batch
            auto handler = found->second.handler;  // outlives an unwatch from inside
            (*handler)(events[i].events);
        }
    }
}

}  // namespace atl::display
