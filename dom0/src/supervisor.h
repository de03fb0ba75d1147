// Follows running atoll-vmm processes on one thread: each by its pidfd (the
// process's end) and by one control connection that carries atolld's commands
// and the VMM's events (state, reset, and exit, which gives the exit code and
// reason even for a process that is not our child).
//
// Commands and events share the connection on purpose: the VMM answers and
// announces in one ordered stream, and the owner hears replies and events in
// that order, so a late "paused" event can never undo a later "resume".
#pragma once

#include <atoll/dom0/error.h>

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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
        // A successful reply to `command`, before request() returns it.
        std::function<void(uint64_t run, const std::string& command, const nlohmann::json& result)> on_reply;
        // The VMM of `run` has ended. Called once per watched run.
        std::function<void(uint64_t run, const VmmEnd& end)> on_end;
    };

    explicit Supervisor(Callbacks callbacks);
    ~Supervisor();  // stops watching; the VMMs keep running
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Takes ownership of `pidfd` and `control_fd`. `unread`: bytes already read
    // from control_fd beyond the greeting. `child`: whether the VMM is our child
    // (reaped here) or adopted.
    void watch(uint64_t run, int pidfd, bool child, int control_fd, std::string unread);

    // Sends a command on the run's connection and waits for its reply: the
    // result object, or InvalidState (the VMM's invalid-state), Timeout, or
    // Failed (any other refusal, or the VMM gone).
    Outcome<nlohmann::json> request(uint64_t run, const std::string& command, std::chrono::milliseconds timeout,
                                    const nlohmann::json& arguments = nullptr);

private:
    struct Pending;
    struct Watched;
    void loop();
    void add_pending_watches();
    void read_control(const std::shared_ptr<Watched>& watched, bool drain);
    void finish(uint64_t run);

    Callbacks callbacks_;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::mutex mutex_;  // watched_, each Watched's pending requests and socket writes
    std::vector<std::shared_ptr<Watched>> adding_;
    std::map<uint64_t, std::shared_ptr<Watched>> watched_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace atl::dom0
