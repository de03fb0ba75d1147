// virtio-net (virtio 1.2 section 5.1): one receive queue, one transmit queue,
// frames to and from a NetBackend. No control queue, no multiqueue, no
// checksum or segmentation offloads: every frame is a complete Ethernet frame
// with valid checksums, which is what slirp and a plain tap expect.
#pragma once

#include "devices/net_backend.h"
#include "devices/virtio/device.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atl::vmm::virtio {

// Device feature bits (section 5.1.3).
constexpr uint64_t kNetFeatureMtu = 1ull << 3;
constexpr uint64_t kNetFeatureMac = 1ull << 5;
constexpr uint64_t kNetFeatureMergeableRxBuffers = 1ull << 15;
constexpr uint64_t kNetFeatureStatus = 1ull << 16;

struct MacAddress {
    std::array<uint8_t, 6> bytes{};

    std::string to_string() const;  // "52:54:00:12:34:56"
    friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

// Accepts "52:54:00:12:34:56" (also with '-'); rejects multicast addresses,
// which a network card cannot own.
Result<MacAddress> parse_mac_address(std::string_view text);

struct NetDeviceConfig {
    std::string id = "net0";  // for logs
    MacAddress mac;
    // Offered with VIRTIO_NET_F_MTU when set (68..65535): the guest then
    // keeps its frames within it.
    std::optional<uint16_t> mtu;
};

class NetDevice final : public Device {
public:
    static constexpr uint16_t kReceiveQueue = 0;
    static constexpr uint16_t kTransmitQueue = 1;
    // struct virtio_net_hdr including num_buffers: with VERSION_1 the header
    // has this size whether or not MRG_RXBUF is negotiated (section 5.1.6).
    static constexpr uint32_t kHeaderBytes = 12;
    // Largest frame either way (without TSO a guest's frames are far smaller;
    // anything above this is a broken or hostile chain).
    static constexpr uint32_t kMaxFrameBytes = 65536;
    // Frames kept while the guest has posted no receive buffers; later ones
    // are dropped (TCP recovers, the guest's memory is not ours to fill).
    static constexpr size_t kMaxBacklogFrames = 256;
    // Transmit chains handled per turn of the event loop, so that a guest
    // refilling its queue as fast as we drain it cannot starve other devices.
    static constexpr int kTransmitBudget = 256;

    struct Statistics {
        uint64_t transmitted_frames = 0;
        uint64_t transmitted_bytes = 0;
        uint64_t transmit_errors = 0;  // malformed chains, dropped
        uint64_t received_frames = 0;
        uint64_t received_bytes = 0;
        uint64_t receive_dropped = 0;  // backlog full, too large, device inactive or link down
    };

    NetDevice(NetDeviceConfig config, std::shared_ptr<NetBackend> backend);
    ~NetDevice() override;
    NetDevice(const NetDevice&) = delete;
    NetDevice& operator=(const NetDevice&) = delete;

    DeviceType type() const override { return kDeviceNet; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 2; }
    uint16_t max_queue_size() const override { return 256; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    void reset() override;
    std::string name() const override { return "virtio-net " + config_.id; }

    // Link state as the guest sees it (VIRTIO_NET_F_STATUS); a change raises a
    // configuration change interrupt. While down, frames are dropped both ways.
    void set_link_up(bool up);

    const Statistics& statistics() const { return statistics_; }
    size_t backlog_frames() const { return backlog_.size(); }

private:
    enum class Delivery { kDelivered, kNoBuffers, kDropped, kDeviceFailed };

    void process_transmit_queue();
    void transmit(const DescriptorChain& chain);
    void on_frame_from_backend(std::span<const uint8_t> frame);
    Delivery deliver(std::span<const uint8_t> frame);
    void flush_backlog();
    void signal_used(uint16_t queue);
    void fail(const std::string& why);

    bool running() const { return active_ && !failed_; }

    const NetDeviceConfig config_;
    const std::shared_ptr<NetBackend> backend_;
    std::atomic<uint16_t> status_;  // read by the transport, set from the I/O thread

    // Valid between activate() and reset().
    bool active_ = false;
    bool failed_ = false;  // reported NEEDS_RESET; idle until reset
    std::shared_ptr<GuestMemory> memory_;
    std::vector<Virtqueue> queues_;
    bool receive_enabled_ = false;
    bool transmit_enabled_ = false;
    bool mergeable_rx_buffers_ = false;
    Interrupt* interrupt_ = nullptr;
    EventLoop* event_loop_ = nullptr;

    // Receive chains popped but not yet filled: a frame that needs more
    // buffers than the guest has posted keeps the ones it got here until the
    // guest adds more (section 5.1.6.4: a merged frame's buffers are
    // consecutive in the used ring).
    std::deque<DescriptorChain> reserved_rx_chains_;
    std::deque<std::vector<uint8_t>> backlog_;
    std::vector<uint8_t> transmit_scratch_;

    bool transmit_continuation_posted_ = false;
    // Tasks posted to the event loop hold a weak reference: they do nothing
    // once the device is gone.
    std::shared_ptr<NetDevice*> lifetime_ = std::make_shared<NetDevice*>(this);

    Statistics statistics_;
};

}  // namespace atl::vmm::virtio
