// The slirp back-end with a real libslirp: the test plays the guest, building
// Ethernet frames by hand (ARP, DHCP, TCP) and reading slirp's answers, while
// the EventLoop drives slirp's sockets and timers.
#include "devices/net_backend.h"
#include "vmm/event_loop.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>

namespace atl::vmm {
namespace {

using namespace std::chrono_literals;
using Frame = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

constexpr Mac kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint32_t kGuestIp = 0x0a00020f;    // 10.0.2.15
constexpr uint32_t kGatewayIp = 0x0a000202;  // 10.0.2.2
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kProtocolTcp = 6;
constexpr uint8_t kProtocolUdp = 17;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpAck = 0x10;

// ---- building frames (network byte order) ---------------------------------

void put16(Frame& frame, uint16_t value) {
    frame.push_back(static_cast<uint8_t>(value >> 8));
    frame.push_back(static_cast<uint8_t>(value));
}
void put32(Frame& frame, uint32_t value) {
    put16(frame, static_cast<uint16_t>(value >> 16));
    put16(frame, static_cast<uint16_t>(value));
}
void put_mac(Frame& frame, const Mac& mac) { frame.insert(frame.end(), mac.begin(), mac.end()); }
uint16_t get16(const Frame& frame, size_t at) { return static_cast<uint16_t>(frame[at] << 8 | frame[at + 1]); }
uint32_t get32(const Frame& frame, size_t at) {
    return static_cast<uint32_t>(get16(frame, at)) << 16 | get16(frame, at + 2);
}
void set16(Frame& frame, size_t at, uint16_t value) {
    frame[at] = static_cast<uint8_t>(value >> 8);
    frame[at + 1] = static_cast<uint8_t>(value);
}

// RFC 1071 ones' complement sum.
uint32_t sum16(const uint8_t* data, size_t length, uint32_t sum = 0) {
    for (size_t i = 0; i + 1 < length; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
    if (length & 1) sum += static_cast<uint32_t>(data[length - 1] << 8);
    return sum;
}
uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

Frame ethernet(const Mac& destination, uint16_t ether_type) {
    Frame frame;
    put_mac(frame, destination);
    put_mac(frame, kGuestMac);
    put16(frame, ether_type);
    return frame;
}

Frame arp(uint16_t operation, const Mac& destination, const Mac& target_mac, uint32_t sender_ip, uint32_t target_ip) {
    Frame frame = ethernet(destination, kEtherTypeArp);
    put16(frame, 1);       // Ethernet
    put16(frame, 0x0800);  // IPv4
    frame.push_back(6);
    frame.push_back(4);
    put16(frame, operation);
    put_mac(frame, kGuestMac);
    put32(frame, sender_ip);
    put_mac(frame, target_mac);
    put32(frame, target_ip);
    return frame;
}

// An IPv4 packet with a transport payload whose checksum (at
// `checksum_offset` inside it) covers the pseudo header.
Frame ipv4(const Mac& destination, uint8_t protocol, uint32_t source_ip, uint32_t destination_ip, Frame payload,
           size_t checksum_offset) {
    uint8_t pseudo[12];
    const uint32_t source_be = htonl(source_ip), destination_be = htonl(destination_ip);
    std::memcpy(pseudo, &source_be, 4);
    std::memcpy(pseudo + 4, &destination_be, 4);
    pseudo[8] = 0;
    pseudo[9] = protocol;
    pseudo[10] = static_cast<uint8_t>(payload.size() >> 8);
    pseudo[11] = static_cast<uint8_t>(payload.size());
    uint16_t checksum = fold(sum16(payload.data(), payload.size(), sum16(pseudo, sizeof pseudo)));
    if (protocol == kProtocolUdp && checksum == 0) checksum = 0xffff;
    set16(payload, checksum_offset, checksum);

    Frame frame = ethernet(destination, kEtherTypeIpv4);
    const size_t ip_start = frame.size();
    frame.push_back(0x45);
    frame.push_back(0);
    put16(frame, static_cast<uint16_t>(20 + payload.size()));
    put16(frame, 0x1234);  // identification
    put16(frame, 0x4000);  // don't fragment
    frame.push_back(64);   // TTL
    frame.push_back(protocol);
    put16(frame, 0);
    put32(frame, source_ip);
    put32(frame, destination_ip);
    set16(frame, ip_start + 10, fold(sum16(frame.data() + ip_start, 20)));
    frame.insert(frame.end(), payload.begin(), payload.end());
    return frame;
}

Frame dhcp_discover(uint32_t transaction) {
    Frame bootp;
    bootp.push_back(1);  // BOOTREQUEST
    bootp.push_back(1);  // Ethernet
    bootp.push_back(6);
    bootp.push_back(0);
    put32(bootp, transaction);
    put16(bootp, 0);       // secs
    put16(bootp, 0x8000);  // broadcast reply
    for (int i = 0; i < 4; ++i) put32(bootp, 0);  // ciaddr, yiaddr, siaddr, giaddr
    put_mac(bootp, kGuestMac);
    bootp.resize(bootp.size() + 10 + 64 + 128, 0);  // chaddr padding, sname, file
    put32(bootp, 0x63825363);                        // magic cookie
    bootp.insert(bootp.end(), {53, 1, 1});           // DHCPDISCOVER
    bootp.push_back(255);
    bootp.resize(300, 0);

    Frame udp;
    put16(udp, 68);
    put16(udp, 67);
    put16(udp, static_cast<uint16_t>(8 + bootp.size()));
    put16(udp, 0);
    udp.insert(udp.end(), bootp.begin(), bootp.end());
    return ipv4(kBroadcastMac, kProtocolUdp, 0, 0xffffffff, udp, 6);
}

Frame tcp_segment(const Mac& destination, uint16_t source_port, uint32_t destination_ip, uint16_t destination_port,
                  uint32_t sequence, uint32_t acknowledgment, uint8_t flags, const std::string& data = {}) {
    const bool syn = flags & kTcpSyn;
    Frame tcp;
    put16(tcp, source_port);
    put16(tcp, destination_port);
    put32(tcp, sequence);
    put32(tcp, acknowledgment);
    tcp.push_back(static_cast<uint8_t>((syn ? 6 : 5) << 4));  // header length in words
    tcp.push_back(flags);
    put16(tcp, 65535);  // window
    put16(tcp, 0);      // checksum
    put16(tcp, 0);      // urgent
    if (syn) tcp.insert(tcp.end(), {2, 4, 0x05, 0xb4});  // MSS 1460
    tcp.insert(tcp.end(), data.begin(), data.end());
    return ipv4(destination, kProtocolTcp, kGuestIp, destination_ip, tcp, 16);
}

Frame tcp_syn(const Mac& destination, uint16_t source_port, uint32_t destination_ip, uint16_t destination_port,
              uint32_t sequence) {
    return tcp_segment(destination, source_port, destination_ip, destination_port, sequence, 0, kTcpSyn);
}

// ---- reading frames -----------------------------------------------------------

struct Ipv4View {
    uint8_t protocol;
    uint32_t source;
    uint32_t destination;
    size_t payload;  // offset of the transport header in the frame
};

std::optional<Ipv4View> parse_ipv4(const Frame& frame) {
    if (frame.size() < 34 || get16(frame, 12) != kEtherTypeIpv4 || (frame[14] >> 4) != 4) return std::nullopt;
    const size_t header_bytes = (frame[14] & 0xf) * 4u;
    if (frame.size() < 14 + header_bytes) return std::nullopt;
    return Ipv4View{frame[23], get32(frame, 26), get32(frame, 30), 14 + header_bytes};
}

bool is_arp_request_for(const Frame& frame, uint32_t ip) {
    return frame.size() >= 42 && get16(frame, 12) == kEtherTypeArp && get16(frame, 20) == 1 && get32(frame, 38) == ip;
}

// ---- the test guest ----------------------------------------------------------------

class SlirpGuest {
public:
    explicit SlirpGuest(const SlirpOptions& options = {}) {
        auto backend = make_slirp_backend(loop_, options);
        if (!backend) {
            error_ = backend.error().message;
            return;
        }
        backend_ = std::move(*backend);
        backend_->set_receive_handler([this](std::span<const uint8_t> frame) { on_frame(Frame(frame.begin(), frame.end())); });
    }

    bool ok() const { return backend_ != nullptr; }
    const std::string& error() const { return error_; }
    NetBackend& backend() { return *backend_; }
    EventLoop& loop() { return loop_; }

    void send(const Frame& frame) { backend_->send(frame); }

    // Runs the loop until a received frame satisfies `match`; returns it.
    std::optional<Frame> wait_for(const std::function<bool(const Frame&)>& match,
                                  std::chrono::milliseconds timeout = 5000ms) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            for (size_t i = 0; i < frames_.size(); ++i) {
                if (match(frames_[i])) {
                    Frame found = frames_[i];
                    frames_.erase(frames_.begin() + static_cast<long>(i));
                    return found;
                }
            }
            if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
            loop_.run_once(20ms);
        }
    }

    // Learns the router's MAC address the way a guest does.
    std::optional<Mac> resolve_gateway() {
        send(arp(1, kBroadcastMac, Mac{}, kGuestIp, kGatewayIp));
        const auto reply = wait_for([](const Frame& frame) {
            return frame.size() >= 42 && get16(frame, 12) == kEtherTypeArp && get16(frame, 20) == 2 &&
                   get32(frame, 28) == kGatewayIp;
        });
        if (!reply) return std::nullopt;
        Mac mac;
        std::copy(reply->begin() + 22, reply->begin() + 28, mac.begin());
        return mac;
    }

private:
    void on_frame(Frame frame) {
        // Answer slirp's ARP requests for our address at once, from inside
        // slirp's callback, as a guest's network stack would (soon) do.
        if (is_arp_request_for(frame, kGuestIp)) {
            Mac requester;
            std::copy(frame.begin() + 22, frame.begin() + 28, requester.begin());
            send(arp(2, requester, requester, kGuestIp, get32(frame, 28)));
        }
        frames_.push_back(std::move(frame));
    }

    EventLoop loop_;
    std::shared_ptr<NetBackend> backend_;
    std::string error_;
    std::vector<Frame> frames_;
};

// A TCP socket listening on 127.0.0.1 with a port the kernel chose.
struct HostListener {
    int fd = -1;
    uint16_t port = 0;

    HostListener() {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 && listen(fd, 4) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
            port = ntohs(address.sin_port);
    }
    ~HostListener() { close(fd); }
};

uint16_t unused_local_port() {
    HostListener probe;
    return probe.port;  // closed on return; a race with other processes is possible but unlikely
}

TEST(SlirpBackend, AnswersArpForTheRouter) {
    SlirpGuest guest;
    ASSERT_TRUE(guest.ok()) << guest.error();
    const auto gateway = guest.resolve_gateway();
    ASSERT_TRUE(gateway.has_value());
    EXPECT_EQ((*gateway)[0] & 1, 0) << "a unicast address";
}

TEST(SlirpBackend, OffersTheFirstDhcpAddress) {
    SlirpGuest guest;
    ASSERT_TRUE(guest.ok()) << guest.error();
    constexpr uint32_t kTransaction = 0x2468ace0;
    guest.send(dhcp_discover(kTransaction));

    const auto offer = guest.wait_for([](const Frame& frame) {
        const auto ip = parse_ipv4(frame);
        return ip && ip->protocol == kProtocolUdp && get16(frame, ip->payload) == 67 &&
               get16(frame, ip->payload + 2) == 68;
    });
    ASSERT_TRUE(offer.has_value());
    const size_t bootp = parse_ipv4(*offer)->payload + 8;
    ASSERT_GE(offer->size(), bootp + 244);
    EXPECT_EQ((*offer)[bootp], 2);  // BOOTREPLY
    EXPECT_EQ(get32(*offer, bootp + 4), kTransaction);
    EXPECT_EQ(get32(*offer, bootp + 16), kGuestIp);  // yiaddr 10.0.2.15
    EXPECT_EQ(get32(*offer, bootp + 236), 0x63825363u);

    // Options: message type 53 must be DHCPOFFER (2).
    std::optional<uint8_t> message_type;
    for (size_t at = bootp + 240; at + 1 < offer->size() && (*offer)[at] != 255;) {
        if ((*offer)[at] == 0) {
            ++at;
            continue;
        }
        if ((*offer)[at] == 53) message_type = (*offer)[at + 2];
        at += 2 + (*offer)[at + 1];
    }
    EXPECT_EQ(message_type, 2);
}

// What a guest fetching http://10.0.2.2:PORT/ from a server on the host's
// 127.0.0.1 goes through: handshake, data both ways.
TEST(SlirpBackend, ATcpConnectionToTheRouterReachesTheHostLoopback) {
    HostListener listener;
    ASSERT_NE(listener.port, 0);
    SlirpGuest guest;
    ASSERT_TRUE(guest.ok()) << guest.error();
    const auto gateway = guest.resolve_gateway();
    ASSERT_TRUE(gateway.has_value());

    constexpr uint16_t kGuestPort = 40000;
    constexpr uint32_t kSequence = 1000;
    guest.send(tcp_syn(*gateway, kGuestPort, kGatewayIp, listener.port, kSequence));

    const auto from_host = [&](const Frame& frame) {
        const auto ip = parse_ipv4(frame);
        return ip && ip->protocol == kProtocolTcp && ip->source == kGatewayIp && ip->destination == kGuestIp &&
               get16(frame, ip->payload) == listener.port && get16(frame, ip->payload + 2) == kGuestPort;
    };
    // slirp connects to 127.0.0.1:port (non-blocking; the loop sees the socket
    // become writable) and only then answers the guest's SYN.
    const auto syn_ack = guest.wait_for(from_host);
    ASSERT_TRUE(syn_ack.has_value());
    const size_t tcp = parse_ipv4(*syn_ack)->payload;
    ASSERT_EQ((*syn_ack)[tcp + 13] & (kTcpSyn | kTcpAck), kTcpSyn | kTcpAck);
    EXPECT_EQ(get32(*syn_ack, tcp + 8), kSequence + 1);
    const uint32_t host_sequence = get32(*syn_ack, tcp + 4);

    // The host side really has a connection.
    int accepted = -1;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (accepted < 0 && std::chrono::steady_clock::now() < deadline) {
        accepted = accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (accepted < 0) guest.loop().run_once(10ms);
    }
    ASSERT_GE(accepted, 0);

    // Guest to host.
    const std::string request = "GET / HTTP/1.0\r\n\r\n";
    guest.send(tcp_segment(*gateway, kGuestPort, kGatewayIp, listener.port, kSequence + 1, host_sequence + 1, kTcpAck));
    guest.send(tcp_segment(*gateway, kGuestPort, kGatewayIp, listener.port, kSequence + 1, host_sequence + 1,
                           kTcpAck | 0x08 /*PSH*/, request));
    std::string received;
    deadline = std::chrono::steady_clock::now() + 2s;
    while (received.size() < request.size() && std::chrono::steady_clock::now() < deadline) {
        char buffer[256];
        const ssize_t got = recv(accepted, buffer, sizeof buffer, 0);
        if (got > 0) received.append(buffer, static_cast<size_t>(got));
        else guest.loop().run_once(10ms);
    }
    EXPECT_EQ(received, request);

    // Host to guest: slirp reads the socket when the loop reports it readable.
    const std::string response = "HTTP/1.0 200 OK\r\n\r\nhello";
    ASSERT_EQ(send(accepted, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
    const auto data = guest.wait_for([&](const Frame& frame) {
        if (!from_host(frame)) return false;
        const size_t at = parse_ipv4(frame)->payload;
        return frame.size() > at + (frame[at + 12] >> 4) * 4u;
    });
    ASSERT_TRUE(data.has_value());
    const size_t payload = parse_ipv4(*data)->payload + ((*data)[parse_ipv4(*data)->payload + 12] >> 4) * 4u;
    const size_t ip_end = 14 + get16(*data, 16);  // frames may carry Ethernet padding
    EXPECT_EQ(std::string(data->begin() + static_cast<long>(payload), data->begin() + static_cast<long>(ip_end)),
              response);

    // With a connection open (and our data unacknowledged) slirp's TCP timers
    // run, but the loop still sleeps between them.
    int wakeups = 0;
    const auto end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end) {
        guest.loop().run_once(100ms);
        ++wakeups;
    }
    EXPECT_LE(wakeups, 20);
    close(accepted);
}

TEST(SlirpBackend, AHostForwardDeliversConnectionsToTheGuest) {
    const uint16_t host_port = unused_local_port();
    ASSERT_NE(host_port, 0);
    SlirpOptions options;
    options.host_forwards = {"tcp:" + std::to_string(host_port) + ":8080"};
    SlirpGuest guest(options);
    ASSERT_TRUE(guest.ok()) << guest.error();
    ASSERT_TRUE(guest.resolve_gateway().has_value());  // slirp learns our MAC, as after DHCP

    const int client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(host_port);
    const int connected = connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address);
    EXPECT_TRUE(connected == 0 || errno == EINPROGRESS) << std::strerror(errno);

    const auto syn = guest.wait_for([](const Frame& frame) {
        const auto ip = parse_ipv4(frame);
        return ip && ip->protocol == kProtocolTcp && ip->destination == kGuestIp &&
               get16(frame, ip->payload + 2) == 8080 && (frame[ip->payload + 13] & (kTcpSyn | kTcpAck)) == kTcpSyn;
    });
    EXPECT_TRUE(syn.has_value());
    close(client);
}

TEST(SlirpBackend, AnIdleStackDoesNotSpin) {
    SlirpGuest guest;
    ASSERT_TRUE(guest.ok()) << guest.error();
    int wakeups = 0;
    const auto end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end) {
        guest.loop().run_once(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()) + 1ms);
        ++wakeups;
    }
    // slirp asks to be woken about once a second when nothing happens; a
    // spinning loop would wake thousands of times.
    EXPECT_LE(wakeups, 3);
}

TEST(SlirpBackend, DropsFramesWithoutAHandlerAndSurvivesGarbage) {
    SlirpGuest guest;
    ASSERT_TRUE(guest.ok()) << guest.error();
    guest.backend().set_receive_handler(nullptr);
    guest.send(arp(1, kBroadcastMac, Mac{}, kGuestIp, kGatewayIp));  // the reply goes nowhere
    guest.send(Frame{});
    guest.send(Frame(5, 0xff));
    Frame truncated = tcp_syn(kBroadcastMac, 1, kGatewayIp, 2, 3);
    truncated.resize(30);
    guest.send(truncated);
    guest.loop().run_once(0ms);
    EXPECT_EQ(guest.backend().description(), "slirp 10.0.2.0/24");
}

TEST(SlirpBackend, RefusesBadOptionsWithClearMessages) {
    EventLoop loop;
    const auto error_for = [&](const SlirpOptions& options) {
        auto backend = make_slirp_backend(loop, options);
        return backend ? std::string() : backend.error().message;
    };
    SlirpOptions options;
    options.network = "10.0.2.0";
    EXPECT_NE(error_for(options).find("expected an IPv4 subnet"), std::string::npos);
    options.network = "10.0.2.1/24";
    EXPECT_NE(error_for(options).find("host bits"), std::string::npos);
    options.network = "10.0.2.0/31";
    EXPECT_NE(error_for(options).find("prefix length"), std::string::npos);

    options = SlirpOptions{};
    options.host_address = "10.0.3.2";
    EXPECT_NE(error_for(options).find("outside the network"), std::string::npos);
    options = SlirpOptions{};
    options.dns_address = "dns";
    EXPECT_NE(error_for(options).find("not an IPv4 address"), std::string::npos);

    for (const char* bad : {"tcp:22", "sctp:2222:22", "tcp:x:22", "tcp:2222:0", "tcp:2222:70000", "tcp:1.2.3:5:6"}) {
        options = SlirpOptions{};
        options.host_forwards = {bad};
        EXPECT_NE(error_for(options).find("expected tcp:HOSTPORT:GUESTPORT"), std::string::npos) << bad;
    }
}

TEST(SlirpBackend, AHostForwardOnAPortInUseIsAnError) {
    HostListener busy;
    ASSERT_NE(busy.port, 0);
    EventLoop loop;
    SlirpOptions options;
    options.host_forwards = {"tcp:" + std::to_string(busy.port) + ":22"};
    auto backend = make_slirp_backend(loop, options);
    ASSERT_FALSE(backend.ok());
    EXPECT_NE(backend.error().message.find("cannot listen on 127.0.0.1:" + std::to_string(busy.port)),
              std::string::npos)
        << backend.error().message;
}

}  // namespace
}  // namespace atl::vmm
