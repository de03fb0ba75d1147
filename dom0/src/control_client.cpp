#include "control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace atl::dom0 {

using nlohmann::json;

bool LineBuffer::next_line(std::string& line) {
    for (;;) {
        const size_t newline = buffer_.find('\n');
        if (newline == std::string::npos) {
            // A line that cannot end within the limit is garbage: drop what we have.
            if (buffer_.size() > kMaxLineBytes) buffer_.clear();
            return false;
        }
        if (newline > kMaxLineBytes) {
            buffer_.erase(0, newline + 1);
            continue;
        }
        line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return true;
    }
}

Outcome<std::unique_ptr<ControlClient>> ControlClient::connect(const std::string& socket_path,
                                                                std::chrono::milliseconds timeout) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof address.sun_path)
        return fault(ErrorKind::Failed, "control socket " + socket_path + ": path too long");
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fault(ErrorKind::Failed, std::string("control socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        close(fd);
        if (error == ENOENT || error == ECONNREFUSED)
            return fault(ErrorKind::NotFound, "control socket " + socket_path + ": nobody answers");
        return fault(ErrorKind::Failed, "control socket " + socket_path + ": " + std::strerror(error));
    }
    std::unique_ptr<ControlClient> client(new ControlClient(fd, socket_path));
    auto greeting = client->read_message(Clock::now() + timeout);
    if (!greeting) return greeting.error();
    const json& hello = *greeting;
    if (hello.value("event", "") != "hello" || !hello.contains("pid") || !hello["pid"].is_number_integer())
        return fault(ErrorKind::Failed, "control socket " + socket_path + ": no greeting from atoll-vmm");
    if (hello.value("protocol", 0) != 1)
        return fault(ErrorKind::Failed, "control socket " + socket_path + ": protocol version " +
                                            hello.value("protocol", json(nullptr)).dump() + " is not 1");
    client->hello_.pid = hello["pid"].get<int64_t>();
    if (hello.contains("name") && hello["name"].is_string()) client->hello_.name = hello["name"].get<std::string>();
    if (hello.contains("state") && hello["state"].is_string()) client->hello_.state = hello["state"].get<std::string>();
    if (hello.contains("audio")) client->hello_.audio = hello["audio"];
    return client;
}

ControlClient::~ControlClient() {
    if (fd_ >= 0) close(fd_);
}

int ControlClient::release(std::string& unread) {
    unread = input_.take_rest();
    const int fd = fd_;
    fd_ = -1;
    return fd;
}

Outcome<json> ControlClient::read_message(Clock::time_point deadline) {
    std::string line;
    for (;;) {
        while (input_.next_line(line)) {
            json message = json::parse(line, nullptr, false);
            if (!message.is_discarded() && message.is_object()) return message;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return fault(ErrorKind::Timeout, "control socket " + path_ + ": atoll-vmm did not answer in time");
        pollfd waiting{fd_, POLLIN, 0};
        const int ready = poll(&waiting, 1, static_cast<int>(left));
        if (ready < 0 && errno != EINTR) return fault(ErrorKind::Failed, std::string("poll: ") + std::strerror(errno));
        if (ready <= 0) continue;
        char buffer[8192];
        const ssize_t count = read(fd_, buffer, sizeof buffer);
        if (count == 0) return fault(ErrorKind::Failed, "control socket " + path_ + ": atoll-vmm closed the connection");
        if (count < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return fault(ErrorKind::Failed, "control socket " + path_ + ": " + std::strerror(errno));
        }
        input_.append(buffer, static_cast<size_t>(count));
    }
}

Outcome<json> ControlClient::request(const std::string& command, std::chrono::milliseconds timeout,
                                     const json& arguments) {
    const auto deadline = Clock::now() + timeout;
    const uint64_t id = next_id_++;
    json message{{"id", id}, {"command", command}};
    if (!arguments.empty()) message["arguments"] = arguments;
    const std::string text = message.dump() + "\n";
    size_t sent = 0;
    while (sent < text.size()) {
        const ssize_t count = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
        if (count < 0) {
            if (errno == EINTR) continue;
            return fault(ErrorKind::Failed, "control socket " + path_ + ": " + std::strerror(errno));
        }
        sent += static_cast<size_t>(count);
    }
    for (;;) {
        auto reply = read_message(deadline);
        if (!reply) return reply.error();
        json& response = *reply;
        if (response.contains("event")) {
            events_.push_back(std::move(response));
            continue;
        }
        if (!response.contains("id") || response["id"] != json(id)) continue;  // not ours (id null: a protocol error)
        if (response.value("ok", false)) {
            if (response.contains("result") && response["result"].is_object()) return response["result"];
            return json::object();
        }
        std::string code = "internal-error", text_message = "no message";
        if (response.contains("error") && response["error"].is_object()) {
            const json& error = response["error"];
            if (error.contains("code") && error["code"].is_string()) code = error["code"].get<std::string>();
            if (error.contains("message") && error["message"].is_string())
                text_message = error["message"].get<std::string>();
        }
        const ErrorKind kind = code == "invalid-state" ? ErrorKind::InvalidState : ErrorKind::Failed;
        return fault(kind, "atoll-vmm refused " + command + ": " + text_message);
    }
}

}  // namespace atl::dom0
