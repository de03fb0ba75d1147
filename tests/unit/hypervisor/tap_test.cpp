// The tap back-end against a real tap interface, when this machine allows one
// (/dev/net/tun and CAP_NET_ADMIN); otherwise the tests skip and say why.
// Frames are exchanged with the interface through an AF_PACKET socket bound
// to it: what the back-end sends appears there, what is sent there reaches
// the back-end's receive handler.
#include "devices/net_backend.h"
#include "vmm/event_loop.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace atl::vmm {
namespace {

using namespace std::chrono_literals;
using Frame = std::vector<uint8_t>;

// IEEE 802 "local experimental" EtherType: nothing else on the interface uses it.
constexpr uint16_t kTestEtherType = 0x88b5;

Frame test_frame(uint8_t marker) {
    Frame frame = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc,   // destination
                   0x52, 0x54, 0x00, 0x11, 0x22, 0x33,   // source
                   kTestEtherType >> 8, kTestEtherType & 0xff};
    for (int i = 0; i < 50; ++i) frame.push_back(static_cast<uint8_t>(marker + i));
    return frame;
}

bool set_interface_up(const std::string& name) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    bool ok = ioctl(fd, SIOCGIFFLAGS, &request) == 0;
    request.ifr_flags |= IFF_UP;
    ok = ok && ioctl(fd, SIOCSIFFLAGS, &request) == 0;
    close(fd);
    return ok;
}

class TapBackendTest : public ::testing::Test {
protected:
    void SetUp() override {
        // The kernel picks a free name from the pattern.
        auto backend = make_tap_backend(loop_, "atolltest%d");
        if (!backend) GTEST_SKIP() << "no tap device here: " << backend.error().message;
        backend_ = std::move(*backend);
        const std::string description = backend_->description();
        ASSERT_EQ(description.rfind("tap ", 0), 0u);
        name_ = description.substr(4);
    }

    EventLoop loop_;
    std::shared_ptr<NetBackend> backend_;
    std::string name_;
};

TEST_F(TapBackendTest, ExchangesFramesWithTheInterface) {
    if (!set_interface_up(name_)) GTEST_SKIP() << "cannot bring " << name_ << " up";
    const int packet = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(kTestEtherType));
    if (packet < 0) GTEST_SKIP() << "no AF_PACKET socket: " << std::strerror(errno);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(kTestEtherType);
    address.sll_ifindex = static_cast<int>(if_nametoindex(name_.c_str()));
    ASSERT_EQ(bind(packet, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);

    // Guest to host: the back-end writes, the interface receives.
    const Frame outgoing = test_frame(1);
    backend_->send(outgoing);
    Frame seen(2048);
    ssize_t length = -1;
    for (auto deadline = std::chrono::steady_clock::now() + 2s;
         length < 0 && std::chrono::steady_clock::now() < deadline;) {
        length = recv(packet, seen.data(), seen.size(), 0);
        if (length < 0) loop_.run_once(10ms);
    }
    ASSERT_GT(length, 0);
    seen.resize(static_cast<size_t>(length));
    EXPECT_EQ(seen, outgoing);

    // Host to guest: sent out of the interface, read by the back-end.
    std::vector<Frame> received;
    backend_->set_receive_handler([&](std::span<const uint8_t> frame) {
        if (frame.size() >= 14 && frame[12] == (kTestEtherType >> 8) && frame[13] == (kTestEtherType & 0xff))
            received.emplace_back(frame.begin(), frame.end());
    });
    const Frame incoming = test_frame(100);
    ASSERT_EQ(sendto(packet, incoming.data(), incoming.size(), 0, reinterpret_cast<sockaddr*>(&address),
                     sizeof address),
              static_cast<ssize_t>(incoming.size()))
        << std::strerror(errno);
    for (auto deadline = std::chrono::steady_clock::now() + 2s;
         received.empty() && std::chrono::steady_clock::now() < deadline;)
        loop_.run_once(10ms);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0], incoming);
    close(packet);
}

TEST_F(TapBackendTest, SendingWhileTheInterfaceIsDownDoesNotBlockOrFail) {
    // The interface was never brought up: the kernel refuses the write, the
    // frame is lost as on an unplugged cable, and the caller carries on.
    backend_->send(test_frame(1));
    loop_.run_once(0ms);
}

TEST(TapBackendNames, RefusesNamesTheKernelCannotTake) {
    EventLoop loop;
    for (const std::string& name : {std::string(), std::string("a-name-far-too-long-for-linux")}) {
        auto backend = make_tap_backend(loop, name);
        ASSERT_FALSE(backend.ok());
        EXPECT_NE(backend.error().message.find("must be 1 to 15 characters"), std::string::npos);
    }
}

}  // namespace
}  // namespace atl::vmm
