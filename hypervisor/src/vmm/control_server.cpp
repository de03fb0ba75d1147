#include "vmm/control_server.h"

#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace atl::vmm {

using nlohmann::json;

struct ControlServer::Client {
    int fd = -1;
    std::string input;
    std::string output;
    bool watching_output = false;
    bool discarding_long_line = false;  // the rest of an oversized line is skipped
};

namespace {
// A client that does not read its events is dropped rather than buffered forever.
constexpr size_t kMaxOutputBytes = 1 << 20;
}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::start(const std::string& socket_path, ControlHandler& handler) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path)
        return make_error("control socket " + socket_path + ": path empty or longer than 107 bytes");
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    // Replace a stale socket a dead VMM left behind, but never another kind of file.
    struct stat existing {};
    if (lstat(socket_path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode))
            return make_error("control socket " + socket_path + ": exists and is not a socket");
        unlink(socket_path.c_str());
    }
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error("control socket: " + std::string(strerror(errno)));
    const mode_t old_mask = umask(0077);
    const int bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    umask(old_mask);
    if (bound != 0 || listen(fd, 16) != 0) {
        const std::string why = strerror(errno);
        close(fd);
        return make_error("control socket " + socket_path + ": " + why);
    }
    std::unique_ptr<ControlServer> server(new ControlServer(socket_path, fd, handler));
    ATOLL_TRY(server->loop_.watch(fd, EPOLLIN, [raw = server.get()](uint32_t) { raw->accept_clients(); }));
    server->thread_ = std::thread([raw = server.get()] { raw->loop_.run(); });
    return server;
}

ControlServer::ControlServer(std::string path, int listen_fd, ControlHandler& handler)
    : path_(std::move(path)), listen_fd_(listen_fd), handler_(handler) {}

ControlServer::~ControlServer() {
    loop_.invoke([this] {
        for (auto& client : std::vector(clients_)) drop(client);
        loop_.unwatch(listen_fd_);
    });
    loop_.stop();
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
}

void ControlServer::accept_clients() {
    for (;;) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        auto client = std::make_shared<Client>();
        client->fd = fd;
        clients_.push_back(client);
        std::weak_ptr<Client> weak = client;
        (void)loop_.watch(fd, EPOLLIN, [this, weak](uint32_t events) {
            auto client = weak.lock();
            if (!client) return;
            if (events & EPOLLOUT) flush(client);
            if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_from(client);
        });
        json hello = handler_.greeting();
        hello["event"] = "hello";
        hello["protocol"] = 1;
        send(client, hello.dump());
    }
}

void ControlServer::read_from(const std::shared_ptr<Client>& client) {
    char buffer[4096];
    for (;;) {
        const ssize_t count = read(client->fd, buffer, sizeof buffer);
        if (count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(client);
            return;
        }
        if (count < 0) return;
        client->input.append(buffer, static_cast<size_t>(count));
        size_t newline;
        while ((newline = client->input.find('\n')) != std::string::npos) {
            const std::string line = client->input.substr(0, newline);
            client->input.erase(0, newline + 1);
            if (client->fd < 0) return;
            if (client->discarding_long_line) {
                client->discarding_long_line = false;
                continue;
            }
            if (line.size() > kMaxLineBytes) {
                reject_long_line(client);
                continue;
            }
            handle_line(client, line);
        }
        if (client->input.size() > kMaxLineBytes) {
            // Answer once and skip the rest of the line when its end arrives.
            client->input.clear();
            if (!client->discarding_long_line) reject_long_line(client);
            client->discarding_long_line = true;
        }
    }
}

void ControlServer::reject_long_line(const std::shared_ptr<Client>& client) {
    send(client, json{{"id", nullptr},
                      {"ok", false},
                      {"error", {{"code", "bad-request"}, {"message", "request longer than 64 KiB"}}}}
                     .dump());
}

void ControlServer::handle_line(const std::shared_ptr<Client>& client, const std::string& line) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;
    json response{{"id", nullptr}};
    auto fail = [&](const char* code, const std::string& message) {
        response["ok"] = false;
        response["error"] = {{"code", code}, {"message", message}};
        send(client, response.dump());
    };
    json request = json::parse(line, nullptr, false);
    if (request.is_discarded() || !request.is_object()) return fail("bad-request", "not a JSON object");
    if (request.contains("id")) {
        const auto& id = request["id"];
        if (!id.is_number() && !id.is_string() && !id.is_null()) return fail("bad-request", "id must be a number or a string");
        response["id"] = id;
    }
    if (!request.contains("command") || !request["command"].is_string())
        return fail("bad-request", "command missing or not a string");
    json arguments = json::object();
    if (request.contains("arguments")) {
        if (!request["arguments"].is_object()) return fail("bad-request", "arguments must be an object");
        arguments = request["arguments"];
    }
    const auto reply = handler_.handle(request["command"].get<std::string>(), arguments);
    if (!reply.ok) return fail(reply.error_code.c_str(), reply.error_message);
    response["ok"] = true;
    response["result"] = reply.result ? *reply.result : json::object();
    send(client, response.dump());
}

void ControlServer::send(const std::shared_ptr<Client>& client, const std::string& text) {
    if (client->fd < 0) return;
    if (client->output.size() + text.size() > kMaxOutputBytes) {
        drop(client);
        return;
    }
    client->output += text;
    client->output += '\n';
    flush(client);
}

void ControlServer::flush(const std::shared_ptr<Client>& client) {
    while (!client->output.empty()) {
        const ssize_t written = ::send(client->fd, client->output.data(), client->output.size(), MSG_NOSIGNAL);
        if (written < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            drop(client);
            return;
        }
        client->output.erase(0, static_cast<size_t>(written));
    }
    const bool want_output = !client->output.empty();
    if (want_output != client->watching_output) {
        client->watching_output = want_output;
        (void)loop_.modify(client->fd, want_output ? (EPOLLIN | EPOLLOUT) : static_cast<uint32_t>(EPOLLIN));
    }
}

void ControlServer::drop(const std::shared_ptr<Client>& client) {
    if (client->fd < 0) return;
    loop_.unwatch(client->fd);
    close(client->fd);
    client->fd = -1;
    std::erase(clients_, client);
}

void ControlServer::broadcast(const json& event) {
    const std::string text = event.dump();
    auto send_to_all = [this, text] {
        for (auto& client : std::vector(clients_)) send(client, text);
    };
    // From a command's handler (the loop thread) the event goes out at once, so
    // it precedes the command's reply, as a client reading in order expects.
    if (loop_.on_loop_thread()) send_to_all();
    else loop_.post(send_to_all);
}

void ControlServer::broadcast_and_flush(const json& event) {
    const std::string text = event.dump();
    loop_.invoke([this, &text] {
        for (auto& client : std::vector(clients_)) {
            send(client, text);
            // The process is about to exit: give a slow reader a moment.
            for (int attempt = 0; attempt < 50 && client->fd >= 0 && !client->output.empty(); ++attempt) {
                usleep(2000);
                flush(client);
            }
        }
    });
}

}  // namespace atl::vmm
