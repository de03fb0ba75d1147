// The link thread's loop: epoll over the listening socket and every VMM
// connection, plus tasks posted from other threads (VNC client threads, the
// D-Bus thread) that need to reach a connection.
#pragma once

#include <atoll/epoll.h>
#include <atoll/result.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

namespace atl::display {

class EventLoop {
public:
    using Handler = std::function<void(uint32_t epoll_events)>;
    using Task = std::function<void()>;
    using WatchId = uint64_t;

    EventLoop() = default;
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Loop thread only. Events arrive tagged with the watch, not the fd, so a
    // descriptor number reused after close() never reaches a stale handler.
    Result<WatchId> watch(int fd, uint32_t events, Handler handler);
    void modify(WatchId id, uint32_t events);
    void unwatch(WatchId id);

    // Any thread.
    void post(Task task);
    void stop();

    void run();  // until stop()

private:
    struct Watch {
        int fd;
        std::shared_ptr<Handler> handler;
    };
    bool stopping_ = false;
    WatchId next_id_ = 1;
    std::unordered_map<WatchId, Watch> watches_;
    // Events tagged with the watch id. Last: destroyed first, so its
    // descriptors close and pending tasks go while the watches still exist.
    Epoll epoll_;
};

}  // namespace atl::display
