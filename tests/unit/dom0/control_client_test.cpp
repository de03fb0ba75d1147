// The control-socket client against a scripted server that speaks the
// protocol of hypervisor/docs/control-protocol.md.
#include "control_client.h"

#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

namespace atl::dom0 {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::TempDir;

// Accepts one client, sends `greeting`, then answers each request line with
// what `answer` returns (lines to send; none: stay silent).
class FakeVmm {
public:
    FakeVmm(const std::string& path, std::string greeting, std::function<std::vector<std::string>(const json&)> answer)
        : answer_(std::move(answer)), greeting_(std::move(greeting)) {
        listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        EXPECT_EQ(listen(listen_fd_, 4), 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeVmm() {
        shutdown(listen_fd_, SHUT_RDWR);
        if (client_fd_ >= 0) shutdown(client_fd_, SHUT_RDWR);
        thread_.join();
        close(listen_fd_);
        if (client_fd_ >= 0) close(client_fd_);
    }

private:
    void send_line(const std::string& line) {
        const std::string text = line + "\n";
        (void)!write(client_fd_, text.data(), text.size());
    }
    void serve() {
        client_fd_ = accept(listen_fd_, nullptr, nullptr);
        if (client_fd_ < 0) return;
        if (!greeting_.empty()) send_line(greeting_);
        std::string buffer;
        char chunk[4096];
        for (;;) {
            const ssize_t count = read(client_fd_, chunk, sizeof chunk);
            if (count <= 0) return;
            buffer.append(chunk, static_cast<size_t>(count));
            size_t newline;
            while ((newline = buffer.find('\n')) != std::string::npos) {
                const json request = json::parse(buffer.substr(0, newline));
                buffer.erase(0, newline + 1);
                for (const auto& line : answer_(request)) send_line(line);
            }
        }
    }

    std::function<std::vector<std::string>(const json&)> answer_;
    std::string greeting_;
    int listen_fd_ = -1;
    int client_fd_ = -1;
    std::thread thread_;
};

const std::string kHello = R"({"event":"hello","protocol":1,"name":"web","pid":4242,"state":"running"})";

std::string ok(const json& request, const json& result = json::object()) {
    return json{{"id", request["id"]}, {"ok", true}, {"result", result}}.dump();
}

TEST(ControlClient, ReadsTheGreeting) {
    TempDir dir;
    FakeVmm vmm(dir / "ctl", kHello, [](const json&) { return std::vector<std::string>{}; });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(2000));
    ASSERT_TRUE(client.ok()) << client.error().message;
    EXPECT_EQ((*client)->hello().name, "web");
    EXPECT_EQ((*client)->hello().pid, 4242);
    EXPECT_EQ((*client)->hello().state, "running");
}

TEST(ControlClient, MissingSocketIsNotFound) {
    TempDir dir;
    auto client = ControlClient::connect(dir / "nothing", milliseconds(100));
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.error().kind, ErrorKind::NotFound);
}

TEST(ControlClient, RefusesAnotherProtocol) {
    TempDir dir;
    FakeVmm vmm(dir / "ctl", R"({"event":"hello","protocol":2,"pid":1})", [](const json&) { return std::vector<std::string>{}; });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(2000));
    ASSERT_FALSE(client.ok());
    EXPECT_NE(client.error().message.find("protocol"), std::string::npos);
}

TEST(ControlClient, SilentServerTimesOut) {
    TempDir dir;
    FakeVmm vmm(dir / "ctl", "", [](const json&) { return std::vector<std::string>{}; });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(100));
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.error().kind, ErrorKind::Timeout);
}

TEST(ControlClient, MatchesResponsesAndKeepsEvents) {
    TempDir dir;
    FakeVmm vmm(dir / "ctl", kHello, [](const json& request) {
        // Garbage, a stray error with id null, an event, then the answer.
        return std::vector<std::string>{"not json", R"({"id":null,"ok":false,"error":{"code":"bad-request","message":"x"}})",
                                        R"({"event":"state","state":"paused"})",
                                        ok(request, {{"state", "paused"}, {"boot_count", 1}})};
    });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(2000));
    ASSERT_TRUE(client.ok());
    auto status = (*client)->request("status", milliseconds(2000));
    ASSERT_TRUE(status.ok()) << status.error().message;
    EXPECT_EQ((*status)["state"], "paused");
    ASSERT_EQ((*client)->events().size(), 1u);
    EXPECT_EQ((*client)->events().front()["event"], "state");
    auto again = (*client)->request("status", milliseconds(2000));
    ASSERT_TRUE(again.ok());
}

TEST(ControlClient, MapsErrors) {
    TempDir dir;
    FakeVmm vmm(dir / "ctl", kHello, [](const json& request) {
        const std::string code = request["command"] == "resume" ? "invalid-state" : "internal-error";
        return std::vector<std::string>{
            json{{"id", request["id"]}, {"ok", false}, {"error", {{"code", code}, {"message", "not paused"}}}}.dump()};
    });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(2000));
    ASSERT_TRUE(client.ok());
    auto resumed = (*client)->request("resume", milliseconds(2000));
    ASSERT_FALSE(resumed.ok());
    EXPECT_EQ(resumed.error().kind, ErrorKind::InvalidState);
    EXPECT_NE(resumed.error().message.find("not paused"), std::string::npos);
    EXPECT_EQ((*client)->request("pause", milliseconds(2000)).error().kind, ErrorKind::Failed);
}

TEST(ControlClient, ClosedConnectionFails) {
    TempDir dir;
    auto vmm = std::make_unique<FakeVmm>(dir / "ctl", kHello, [](const json&) { return std::vector<std::string>{}; });
    auto client = ControlClient::connect(dir / "ctl", milliseconds(2000));
    ASSERT_TRUE(client.ok());
    vmm.reset();
    auto status = (*client)->request("status", milliseconds(2000));
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind, ErrorKind::Failed);
}

TEST(LineBuffer, SplitsAndDropsOversizedLines) {
    LineBuffer buffer;
    std::string line;
    buffer.append("ab\ncd", 5);
    ASSERT_TRUE(buffer.next_line(line));
    EXPECT_EQ(line, "ab");
    EXPECT_FALSE(buffer.next_line(line));
    buffer.append("e\n", 2);
    ASSERT_TRUE(buffer.next_line(line));
    EXPECT_EQ(line, "cde");
    const std::string huge(LineBuffer::kMaxLineBytes + 10, 'x');
    buffer.append(huge.data(), huge.size());
    EXPECT_FALSE(buffer.next_line(line));
    buffer.append("tail\nnext\n", 10);
    ASSERT_TRUE(buffer.next_line(line));
    EXPECT_EQ(line, "tail");  // the rest of the dropped line: harmless, not JSON
    ASSERT_TRUE(buffer.next_line(line));
    EXPECT_EQ(line, "next");
}

}  // namespace
}  // namespace atl::dom0
