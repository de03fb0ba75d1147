// The per-VM control socket (hypervisor/docs/control-protocol.md): JSON lines
// over a unix stream socket, served on a thread of its own so that it outlives
// each boot of the machine and keeps answering while vCPUs are paused.
#pragma once

#include "vmm/event_loop.h"

#include <atoll/result.h>

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <thread>

namespace atl::vmm {

class ControlHandler {
public:
    struct Reply {
        bool ok = true;
        std::string error_code;  // bad-request, unknown-command, invalid-state, internal-error
        std::string error_message;
        std::shared_ptr<nlohmann::json> result;  // null: {}
    };
    virtual ~ControlHandler() = default;
    // Called on the control thread. `arguments` is an object (possibly empty).
    virtual Reply handle(const std::string& command, const nlohmann::json& arguments) = 0;
    // The greeting's fields besides "event" and "protocol".
    virtual nlohmann::json greeting() = 0;
};

class ControlServer {
public:
    static Result<std::unique_ptr<ControlServer>> start(const std::string& socket_path, ControlHandler& handler);
    ~ControlServer();  // stops the thread and removes the socket

    // Sends an event (an object with "event") to every client. Safe from any thread.
    void broadcast(const nlohmann::json& event);
    // Sends an event and waits until it has been handed to every client's socket.
    void broadcast_and_flush(const nlohmann::json& event);

    static constexpr size_t kMaxLineBytes = 64 * 1024;

private:
    struct Client;
    ControlServer(std::string path, int listen_fd, ControlHandler& handler);
    void accept_clients();
    void read_from(const std::shared_ptr<Client>& client);
    void reject_long_line(const std::shared_ptr<Client>& client);
    void handle_line(const std::shared_ptr<Client>& client, const std::string& line);
    void send(const std::shared_ptr<Client>& client, const std::string& text);
    void flush(const std::shared_ptr<Client>& client);
    void drop(const std::shared_ptr<Client>& client);

    std::string path_;
    int listen_fd_;
    ControlHandler& handler_;
    EventLoop loop_;
    std::thread thread_;
    std::vector<std::shared_ptr<Client>> clients_;  // loop thread only
};

}  // namespace atl::vmm
