// A real atoll-vmm (a tiny guest on this machine's /dev/kvm) shown by the real
// atoll-display to a real VNC client (libvncclient): the guest reboots through
// the VMM's control socket, and the viewer stays connected, the server keeps
// the VM (same port, state file, no dropped link) and the VMM never
// reconnects (issue 4: the display link outlives a boot).
#include "harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#ifndef ATOLL_DISPLAY_BINARY
#error "ATOLL_DISPLAY_BINARY: path of the atoll-display executable"
#endif
#ifndef ATOLL_VMM_BINARY
#error "ATOLL_VMM_BINARY: path of the atoll-vmm executable"
#endif
#ifndef ATOLL_TINY_GUEST_DIR
#error "ATOLL_TINY_GUEST_DIR: where tests/guests put the tiny guests"
#endif

namespace atl::display::testing {
namespace {

using nlohmann::json;

// A client of atoll-vmm's control socket (hypervisor/docs/control-protocol.md):
// one JSON object per line each way.
class ControlClient {
public:
    static std::unique_ptr<ControlClient> connect(const std::string& path, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un address{};
            address.sun_family = AF_UNIX;
            std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
                auto client = std::unique_ptr<ControlClient>(new ControlClient(fd));
                if (client->read_line(5s)) return client;  // the greeting
                return nullptr;
            }
            close(fd);
            std::this_thread::sleep_for(20ms);
        }
        return nullptr;
    }
    ~ControlClient() { close(fd_); }

    bool send(const json& request) {
        const std::string line = request.dump() + "\n";
        return ::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
    }
    // Lines until `done(message)` holds or the timeout.
    bool read_until(const std::function<bool(const json&)>& done, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto line = read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now()));
            if (!line) return false;
            const json message = json::parse(*line, nullptr, false);
            if (!message.is_discarded() && done(message)) return true;
        }
        return false;
    }

private:
    explicit ControlClient(int fd) : fd_(fd) {}
    std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto end = buffer_.find('\n'); end != std::string::npos) {
                std::string line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd entry{fd_, POLLIN, 0};
            if (poll(&entry, 1, static_cast<int>(left.count())) != 1) return std::nullopt;
            char chunk[4096];
            const ssize_t got = recv(fd_, chunk, sizeof chunk, 0);
            if (got <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<size_t>(got));
        }
    }
    int fd_;
    std::string buffer_;
};

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

TEST(VmmReboot, VncViewerStaysConnectedWhileTheGuestReboots) {
    if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this machine";
    TempDir dir;
    const std::string display_socket = dir.path() + "/display.sock";
    const std::string control_socket = dir.path() + "/vm.ctl";
    const std::string state_file = dir.path() + "/state/tiny.json";
    const std::string display_log = dir.path() + "/atoll-display.log";
    const std::string vmm_log = dir.path() + "/atoll-vmm.log";
    const uint16_t port = free_tcp_port();
    auto server = Process::start({ATOLL_DISPLAY_BINARY, "--listen", display_socket, "--state-dir", dir.path() + "/state",
                                  "--vnc-port", "tiny=" + std::to_string(port), "--dbus", "none"},
                                 display_log);
    ASSERT_TRUE(server);
    for (int i = 0; i < 250 && access(display_socket.c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(20ms);
    auto vmm = Process::start({ATOLL_VMM_BINARY, "--name", "tiny", "--kernel",
                               std::string(ATOLL_TINY_GUEST_DIR) + "/tiny-poweroff-on-button.bzImage", "--memory", "64",
                               "--cpus", "1", "--no-net", "--serial", "none", "--display", display_socket,
                               "--control-socket", control_socket},
                              vmm_log);
    ASSERT_TRUE(vmm);
    auto logs = [&] { return "atoll-display:\n" + read_file(display_log) + "atoll-vmm:\n" + read_file(vmm_log); };

    for (int i = 0; i < 250 && read_file(state_file).empty(); ++i) std::this_thread::sleep_for(20ms);
    const json state_before = json::parse(read_file(state_file), nullptr, false);
    ASSERT_FALSE(state_before.is_discarded()) << logs();
    ASSERT_EQ(state_before["vnc"]["port"], port);
    auto viewer = VncClient::connect(port);
    ASSERT_TRUE(viewer) << logs();
    auto control = ControlClient::connect(control_socket, 10s);
    ASSERT_TRUE(control) << logs();

    // Two reboots: the second proves the first boot's hand-over left the link whole.
    for (int boot = 2; boot <= 3; ++boot) {
        ASSERT_TRUE(control->send({{"id", boot}, {"command", "reboot"}}));
        ASSERT_TRUE(control->read_until(
            [&](const json& message) { return message.value("event", "") == "reset" && message.value("boot_count", 0) == boot; },
            30s))
            << "no reset event for boot " << boot << "\n" << logs();
        // The viewer is still served: a full update request is answered.
        const int before = viewer->updates;
        ASSERT_TRUE(SendFramebufferUpdateRequest(viewer->raw(), 0, 0, viewer->width(), viewer->height(), FALSE));
        EXPECT_TRUE(viewer->pump_until([&] { return viewer->updates > before; }, 5s))
            << "the VNC client lost the server across boot " << boot << "\n" << logs();
    }

    const json state_after = json::parse(read_file(state_file), nullptr, false);
    ASSERT_FALSE(state_after.is_discarded()) << "the display server keeps the VM\n" << logs();
    EXPECT_EQ(state_after["vnc"]["port"], port);
    EXPECT_EQ(state_after["pid"], state_before["pid"]);
    const std::string display_text = read_file(display_log);
    EXPECT_EQ(display_text.find("link dropped"), std::string::npos) << logs();
    EXPECT_EQ(count_of(read_file(vmm_log), ": connected"), 1u) << "one connection for all boots\n" << logs();

    // The VMM's exit is what ends the link.
    ASSERT_TRUE(control->send({{"id", 9}, {"command", "stop"}}));
    for (int i = 0; i < 1000 && vmm->running(); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(vmm->running()) << logs();
    EXPECT_EQ(vmm->stop(), 0) << logs();
    for (int i = 0; i < 250 && !read_file(state_file).empty(); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_TRUE(read_file(state_file).empty()) << "the VM's state file goes with its link\n" << logs();
    EXPECT_EQ(server->stop(), 0) << logs();
}

}  // namespace
}  // namespace atl::display::testing
