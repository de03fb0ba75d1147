#include "event_loop.h"

#include <cstring>
#include <string>

namespace atl::display {

Result<EventLoop::WatchId> EventLoop::watch(int fd, uint32_t events, Handler handler) {
    const WatchId id = next_id_++;
    if (const int error = epoll_.add(fd, events, id)) return make_error(std::string("epoll: ") + strerror(error));
    watches_.emplace(id, Watch{fd, std::make_shared<Handler>(std::move(handler))});
    return id;
}

void EventLoop::modify(WatchId id, uint32_t events) {
    auto found = watches_.find(id);
    if (found == watches_.end()) return;
    epoll_.modify(found->second.fd, events, id);
}

void EventLoop::unwatch(WatchId id) {
    auto found = watches_.find(id);
    if (found == watches_.end()) return;
    epoll_.remove(found->second.fd);
    watches_.erase(found);
}

void EventLoop::post(Task task) { epoll_.post(std::move(task)); }

void EventLoop::stop() {
    post([this] { stopping_ = true; });
}

void EventLoop::run() {
    while (!stopping_) {
        epoll_.wait(-1, [this](WatchId id, uint32_t events) {
            auto found = watches_.find(id);
            if (found == watches_.end()) return;  // unwatched earlier in this batch
            auto handler = found->second.handler;  // outlives an unwatch from inside
            (*handler)(events);
        });
    }
}

}  // namespace atl::display
