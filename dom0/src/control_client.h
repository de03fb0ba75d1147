// A client of atoll-vmm's control socket (hypervisor/docs/control-protocol.md):
// JSON objects, one per line, over a unix stream socket. Blocking, with
// deadlines; one request at a time per connection.
#pragma once

#include <atoll/dom0/error.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

namespace atl::dom0 {

struct VmmHello {
    std::string name;
    int64_t pid = 0;
    std::string state;  // running, paused, shutting-down
    nlohmann::json audio;  // as in "status"; null without a sound device
};

// Splits a byte stream into lines, refusing lines longer than the protocol allows.
class LineBuffer {
public:
    static constexpr size_t kMaxLineBytes = 64 * 1024;
    void append(const char* data, size_t size) { buffer_.append(data, size); }
    // The next complete line (without '\n'), or false. An oversized line is dropped.
    bool next_line(std::string& line);
    std::string take_rest() { return std::move(buffer_); }

private:
    std::string buffer_;
};

class ControlClient {
public:
    using Clock = std::chrono::steady_clock;

    // Connects to `socket_path` and reads the greeting. NotFound when there is
    // no socket or nobody listens on it (the VMM is gone); Failed otherwise.
    static Outcome<std::unique_ptr<ControlClient>> connect(const std::string& socket_path,
                                                           std::chrono::milliseconds timeout);
    ~ControlClient();
    ControlClient(const ControlClient&) = delete;
    ControlClient& operator=(const ControlClient&) = delete;

    const VmmHello& hello() const { return hello_; }

    // Sends a command and waits for its response; events that arrive meanwhile
    // are kept (events()). An `invalid-state` error becomes InvalidState, the
    // connection closing before the answer Failed, the deadline Timeout.
    Outcome<nlohmann::json> request(const std::string& command, std::chrono::milliseconds timeout,
                                    const nlohmann::json& arguments = nlohmann::json::object());

    std::deque<nlohmann::json>& events() { return events_; }

    // Hands the connection over (to the supervisor): the socket and whatever
    // was read past the last line handled.
    int release(std::string& unread);

private:
    ControlClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    // Reads one JSON line before the deadline.
    Outcome<nlohmann::json> read_message(Clock::time_point deadline);

    int fd_;
    std::string path_;
    LineBuffer input_;
    VmmHello hello_;
    std::deque<nlohmann::json> events_;
    uint64_t next_id_ = 1;
};

}  // namespace atl::dom0
