// Where a guest's network card sends and receives Ethernet frames on the host:
// a user-mode network stack (libslirp), a tap interface, or nothing.
//
// Back-ends live on the VMM's I/O thread: create, use and destroy them on the
// thread that runs the EventLoop (or before it runs / after it stopped).
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace atl::vmm {

class EventLoop;

class NetBackend {
public:
    // Called on the event loop thread with one Ethernet frame (destination MAC
    // first, no virtio header, no frame check sequence).
    using ReceiveHandler = std::function<void(std::span<const uint8_t> frame)>;

    virtual ~NetBackend() = default;

    // One Ethernet frame from the guest. Never blocks: when the host side
    // cannot take it, the frame is dropped (TCP in the guest retransmits).
    virtual void send(std::span<const uint8_t> frame) = 0;
    // Frames for the guest. Until a handler is set (or after it is cleared
    // with nullptr), frames for the guest are dropped.
    virtual void set_receive_handler(ReceiveHandler handler) = 0;
    // For logs: "slirp 10.0.2.0/24", "tap atoll0".
    virtual std::string description() const = 0;
};

// The user-mode network: the guest sees a router, a DHCP server and a DNS
// forwarder; its connections leave through ordinary host sockets.
struct SlirpOptions {
    std::string network = "10.0.2.0/24";  // the guest's subnet, CIDR
    std::string host_address = "10.0.2.2";  // the router; also reaches the host's 127.0.0.1
    std::string dns_address = "10.0.2.3";
    std::string dhcp_start = "10.0.2.15";  // first address DHCP hands out
    // Host ports forwarded into the guest (to dhcp_start):
    //   "tcp:HOSTPORT:GUESTPORT", "udp:HOSTPORT:GUESTPORT",
    //   "tcp:HOSTADDR:HOSTPORT:GUESTPORT".
    // Without HOSTADDR the host side listens on 127.0.0.1 only, so a forward
    // never exposes the guest to the outside network by accident.
    std::vector<std::string> host_forwards;
    // Isolates the guest: only host forwards reach it, it reaches nothing.
    bool restricted = false;
    std::string hostname;  // offered by DHCP when not empty
};

Result<std::shared_ptr<NetBackend>> make_slirp_backend(EventLoop& loop, const SlirpOptions& options);

// An existing or new tap interface (IFF_TAP | IFF_NO_PI, no vnet header).
// Needs CAP_NET_ADMIN, or a persistent tap owned by this user. The interface
// is left as the host configured it (bring it up and bridge it outside Atoll).
Result<std::shared_ptr<NetBackend>> make_tap_backend(EventLoop& loop, const std::string& interface_name);

// Drops everything the guest sends and never receives.
std::shared_ptr<NetBackend> make_null_net_backend();

}  // namespace atl::vmm
