// Follows running atoll-vmm processes on one thread: each by its pidfd (the
// process's end) and its control connection (events: state, reset, and exit,
// which carries the exit code and reason even for a process that is not our
// child). Tells the owner when a VMM's state changes and when it has ended.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace atl::dom0 {

struct VmmEnd {
    // From the VMM's "exit" event, when it got out.
    std::optional<int> code;
    std::string reason;   // poweroff, stopped, triple-fault, internal-error, host-error, bad-input
    std::string message;
    // From waitid, when the VMM was our child.
    std::optional<int> exit_status;
    std::optional<int> signal;
};

class Supervisor {
public:
    struct Callbacks {
        // An event other than "exit" from the VMM of `run`.
        std::function<void(uint64_t run, const nlohmann::json& event)> on_event;
        // The VMM of `run` has ended. Called once per watched run.
        std::function<void(uint64_t run, const VmmEnd& end)> on_end;
    };

    explicit Supervisor(Callbacks callbacks);
    ~Supervisor();  // stops watching; the VMMs keep running
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Takes ownership of `pidfd` and `control_fd` (which may be -1). `unread`:
    // bytes already read from control_fd beyond the last line handled.
    // `child`: whether the VMM is our child (reaped here) or adopted.
    void watch(uint64_t run, int pidfd, bool child, int control_fd, std::string unread);

private:
    struct Watched;
    void loop();
    void add_pending();
    void read_control(Watched& watched, bool until_eof);
    void finish(uint64_t run);

    Callbacks callbacks_;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::mutex mutex_;
    std::vector<Watched*> pending_;   // added by watch(), taken by the loop
    bool stopping_ = false;
    std::map<uint64_t, Watched*> watched_;  // loop thread only
    std::thread thread_;
};

}  // namespace atl::dom0
