// virtio-net driven the way a guest driver drives it: both queues laid out in
// one flat guest memory, chains added to the available rings, results read
// back from the used rings. The back-end is a fake that records frames.
#include "devices/net_backend.h"
#include "devices/virtio/net.h"
#include "vmm/event_loop.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

namespace atl::vmm::virtio {
namespace {

using testing::DriverBuffer;
using testing::kDescIndirect;
using testing::kDescNext;
using testing::kDescWrite;
using testing::UsedElement;

constexpr uint64_t kAllFeatures = kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc |
                                  kNetFeatureMac | kNetFeatureStatus | kNetFeatureMergeableRxBuffers;
constexpr uint32_t kHeader = NetDevice::kHeaderBytes;

// One split queue inside a memory shared with other queues (TestDriver owns a
// memory per queue; a device with two queues needs both in one).
class GuestQueue {
public:
    GuestQueue(GuestMemory& memory, uint64_t base, uint16_t size) : memory_(memory), size_(size) {
        descriptor_table_ = base;
        available_ring_ = base + 16ull * size;
        used_ring_ = (available_ring_ + 6 + 2ull * size + 3) & ~3ull;
    }

    QueueLayout layout() const {
        return {size_, GuestAddress{descriptor_table_}, GuestAddress{available_ring_}, GuestAddress{used_ring_}};
    }

    uint16_t add_chain(const std::vector<DriverBuffer>& buffers) {
        const uint16_t head = next_descriptor_;
        for (size_t i = 0; i < buffers.size(); ++i) {
            const uint16_t index = next_descriptor_;
            next_descriptor_ = static_cast<uint16_t>((next_descriptor_ + 1) % size_);
            const bool last = i + 1 == buffers.size();
            write_descriptor(descriptor_table_ + 16ull * index, buffers[i], last ? 0 : kDescNext,
                             last ? 0 : next_descriptor_);
        }
        offer(head);
        return head;
    }

    // The buffers go in a table at `table_address` (section 2.7.5.3).
    uint16_t add_indirect_chain(const std::vector<DriverBuffer>& buffers, uint64_t table_address) {
        for (size_t i = 0; i < buffers.size(); ++i) {
            const bool last = i + 1 == buffers.size();
            write_descriptor(table_address + 16 * i, buffers[i], last ? 0 : kDescNext,
                             last ? 0 : static_cast<uint16_t>(i + 1));
        }
        const uint16_t head = next_descriptor_;
        next_descriptor_ = static_cast<uint16_t>((next_descriptor_ + 1) % size_);
        write_descriptor(descriptor_table_ + 16ull * head,
                         DriverBuffer{table_address, static_cast<uint32_t>(16 * buffers.size()), false}, kDescIndirect,
                         0);
        offer(head);
        return head;
    }

    void set_available_index(uint16_t index) {
        available_index_ = index;
        write_u16(available_ring_ + 2, index);
    }
    void set_available_flags(uint16_t flags) { write_u16(available_ring_, flags); }
    void set_used_event(uint16_t value) { write_u16(available_ring_ + 4 + 2ull * size_, value); }
    uint16_t avail_event() const { return read_u16(used_ring_ + 4 + 8ull * size_); }
    uint16_t used_index() const { return read_u16(used_ring_ + 2); }
    UsedElement used_element(uint16_t position) const {
        UsedElement element;
        memory_.read_object(GuestAddress{used_ring_ + 4 + 8ull * (position % size_)}, element);
        return element;
    }

private:
    void write_descriptor(uint64_t where, const DriverBuffer& buffer, uint16_t chain_flags, uint16_t next) {
        const uint16_t flags = static_cast<uint16_t>((buffer.device_writable ? kDescWrite : 0) | chain_flags);
        uint8_t raw[16];
        std::memcpy(raw, &buffer.address, 8);
        std::memcpy(raw + 8, &buffer.length, 4);
        std::memcpy(raw + 12, &flags, 2);
        std::memcpy(raw + 14, &next, 2);
        memory_.write(GuestAddress{where}, raw, sizeof raw);
    }
    void offer(uint16_t head) {
        write_u16(available_ring_ + 4 + 2ull * (available_index_ % size_), head);
        set_available_index(static_cast<uint16_t>(available_index_ + 1));
    }
    void write_u16(uint64_t address, uint16_t value) { memory_.write_object(GuestAddress{address}, value); }
    uint16_t read_u16(uint64_t address) const {
        uint16_t value = 0;
        memory_.read_object(GuestAddress{address}, value);
        return value;
    }

    GuestMemory& memory_;
    uint16_t size_;
    uint64_t descriptor_table_ = 0, available_ring_ = 0, used_ring_ = 0;
    uint16_t available_index_ = 0;
    uint16_t next_descriptor_ = 0;
};

class FakeBackend final : public NetBackend {
public:
    void send(std::span<const uint8_t> frame) override {
        sent.emplace_back(frame.begin(), frame.end());
        if (echo && handler_) handler_(frame);
    }
    void set_receive_handler(ReceiveHandler handler) override { handler_ = std::move(handler); }
    std::string description() const override { return "fake"; }

    // A frame arriving from the network.
    void inject(const std::vector<uint8_t>& frame) {
        if (handler_) handler_(frame);
    }
    bool has_handler() const { return static_cast<bool>(handler_); }

    std::vector<std::vector<uint8_t>> sent;
    bool echo = false;  // answer each frame from inside send(), as slirp may

private:
    ReceiveHandler handler_;
};

class FakeInterrupt final : public Interrupt {
public:
    void notify_queue(uint16_t queue) override { ++queue_notifications[queue]; }
    void notify_config_change() override { ++config_changes; }
    void report_device_error(const std::string& why) override { errors.push_back(why); }

    int queue_notifications[2] = {0, 0};
    int config_changes = 0;
    std::vector<std::string> errors;
};

std::vector<uint8_t> make_frame(size_t length, uint8_t seed) {
    std::vector<uint8_t> frame(length);
    for (size_t i = 0; i < length; ++i) frame[i] = static_cast<uint8_t>(seed + i * 7);
    return frame;
}

// A transmit chain starts with struct virtio_net_hdr (section 5.1.6).
std::vector<uint8_t> header_bytes(uint8_t gso_type = 0) {
    std::vector<uint8_t> header(kHeader, 0);
    header[1] = gso_type;
    return header;
}

class NetDeviceTest : public ::testing::Test {
protected:
    static constexpr uint16_t kQueueSize = 256;

    NetDeviceTest()
        : memory_(GuestMemory::create_flat(4 << 20)),
          rx_(*memory_, 0x1000, kQueueSize),
          tx_(*memory_, 0x4000, kQueueSize),
          backend_(std::make_shared<FakeBackend>()) {
        NetDeviceConfig config;
        config.mac = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
        config.mtu = 1500;
        device_ = std::make_unique<NetDevice>(config, backend_);
    }

    void activate(uint64_t features = kAllFeatures, EventLoop* event_loop = nullptr) {
        ActivationContext context;
        context.memory = memory_;
        context.interrupt = &interrupt_;
        context.event_loop = event_loop;
        context.acked_features = features;
        const bool event_index = features & kFeatureRingEventIdx;
        context.queues.emplace_back(*memory_, rx_.layout(), event_index);
        context.queues.emplace_back(*memory_, tx_.layout(), event_index);
        context.queue_enabled = {true, true};
        ASSERT_TRUE(device_->activate(std::move(context)).ok());
    }

    uint64_t allocate(uint64_t bytes) {
        const uint64_t address = next_data_;
        next_data_ += (bytes + 15) & ~15ull;
        return address;
    }
    uint64_t put(const std::vector<uint8_t>& bytes) {
        const uint64_t address = allocate(bytes.size());
        memory_->write(GuestAddress{address}, bytes.data(), bytes.size());
        return address;
    }
    std::vector<uint8_t> get(uint64_t address, uint64_t length) const {
        std::vector<uint8_t> bytes(length);
        memory_->read(GuestAddress{address}, bytes.data(), length);
        return bytes;
    }

    // Posts one receive chain of one writable buffer; returns its address.
    uint64_t post_receive_buffer(uint32_t length) {
        const uint64_t address = allocate(length);
        rx_.add_chain({{address, length, true}});
        return address;
    }

    void transmit(const std::vector<uint8_t>& frame) {
        const uint64_t header = put(header_bytes());
        const uint64_t data = put(frame);
        tx_.add_chain({{header, kHeader, false}, {data, static_cast<uint32_t>(frame.size()), false}});
    }

    std::shared_ptr<GuestMemory> memory_;
    GuestQueue rx_;
    GuestQueue tx_;
    std::shared_ptr<FakeBackend> backend_;
    FakeInterrupt interrupt_;
    std::unique_ptr<NetDevice> device_;
    uint64_t next_data_ = 0x10000;
};

// ---- features and configuration -----------------------------------------

TEST_F(NetDeviceTest, OffersTheNegotiableFeaturesAndNoOffloads) {
    const uint64_t features = device_->offered_features();
    EXPECT_EQ(features & kAllFeatures, kAllFeatures);
    EXPECT_TRUE(features & kNetFeatureMtu);
    EXPECT_FALSE(features & (1ull << 0));   // CSUM
    EXPECT_FALSE(features & (1ull << 1));   // GUEST_CSUM
    EXPECT_FALSE(features & (1ull << 11));  // HOST_TSO4
    EXPECT_FALSE(features & (1ull << 17));  // CTRL_VQ
    EXPECT_FALSE(features & (1ull << 22));  // MQ
    EXPECT_EQ(device_->type(), kDeviceNet);
    EXPECT_EQ(device_->queue_count(), 2);

    NetDevice without_mtu(NetDeviceConfig{}, backend_);
    EXPECT_FALSE(without_mtu.offered_features() & kNetFeatureMtu);
}

TEST_F(NetDeviceTest, ConfigurationSpaceHoldsMacStatusPairsAndMtu) {
    std::vector<uint8_t> config(12);
    device_->read_config(0, config);
    EXPECT_EQ(config, (std::vector<uint8_t>{0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // mac
                                            1, 0,                                 // status: LINK_UP
                                            1, 0,                                 // max_virtqueue_pairs
                                            0xdc, 0x05}));                        // mtu 1500

    // A read straddling the end returns zeros past it; one beyond it only zeros.
    std::vector<uint8_t> tail(8, 0xaa);
    device_->read_config(20, tail);
    EXPECT_EQ(std::vector<uint8_t>(tail.begin() + 4, tail.end()), std::vector<uint8_t>(4, 0));
    std::vector<uint8_t> beyond(4, 0xaa);
    device_->read_config(1ull << 62, beyond);
    EXPECT_EQ(beyond, std::vector<uint8_t>(4, 0));
}

TEST_F(NetDeviceTest, LinkDownIsVisibleAndRaisesAConfigChange) {
    activate();
    device_->set_link_up(false);
    uint8_t status[2];
    device_->read_config(6, status);
    EXPECT_EQ(status[0], 0);
    EXPECT_EQ(interrupt_.config_changes, 1);
    device_->set_link_up(false);  // no change, no interrupt
    EXPECT_EQ(interrupt_.config_changes, 1);

    // While down, frames go nowhere in either direction, but chains are still returned.
    post_receive_buffer(2048);
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(rx_.used_index(), 0);
    transmit(make_frame(60, 2));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_TRUE(backend_->sent.empty());
    EXPECT_EQ(tx_.used_index(), 1);

    device_->set_link_up(true);
    backend_->inject(make_frame(60, 3));
    EXPECT_EQ(rx_.used_index(), 1);
}

TEST_F(NetDeviceTest, ActivationRequiresVersion1) {
    ActivationContext context;
    context.memory = memory_;
    context.interrupt = &interrupt_;
    context.acked_features = kNetFeatureMac;
    context.queues.emplace_back(*memory_, rx_.layout(), false);
    context.queues.emplace_back(*memory_, tx_.layout(), false);
    context.queue_enabled = {true, true};
    const auto activated = device_->activate(std::move(context));
    ASSERT_FALSE(activated.ok());
    EXPECT_NE(activated.error().message.find("VERSION_1"), std::string::npos);
}

// ---- transmit --------------------------------------------------------------

TEST_F(NetDeviceTest, TransmitStripsTheHeaderAndHandsTheFrameToTheBackend) {
    activate();
    const auto frame = make_frame(1514, 9);
    // Header and frame split unevenly over three buffers, as a guest may do.
    const std::vector<uint8_t> first(frame.begin(), frame.begin() + 4);
    std::vector<uint8_t> header_and_start = header_bytes();
    header_and_start.insert(header_and_start.end(), first.begin(), first.end());
    const uint64_t a = put(header_and_start);
    const uint64_t b = put(std::vector<uint8_t>(frame.begin() + 4, frame.begin() + 1000));
    const uint64_t c = put(std::vector<uint8_t>(frame.begin() + 1000, frame.end()));
    const uint16_t head = tx_.add_chain({{a, kHeader + 4, false}, {b, 996, false}, {c, 514, false}});

    device_->queue_notify(NetDevice::kTransmitQueue);

    ASSERT_EQ(backend_->sent.size(), 1u);
    EXPECT_EQ(backend_->sent[0], frame);
    ASSERT_EQ(tx_.used_index(), 1);
    EXPECT_EQ(tx_.used_element(0).id, head);
    EXPECT_EQ(tx_.used_element(0).length, 0u);  // the device wrote nothing
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 1);
    EXPECT_EQ(device_->statistics().transmitted_frames, 1u);
    EXPECT_EQ(device_->statistics().transmitted_bytes, 1514u);
}

TEST_F(NetDeviceTest, TransmitsSeveralFramesAndIndirectChainsInOrder) {
    activate();
    transmit(make_frame(60, 1));
    const auto second = make_frame(100, 2);
    const uint64_t header = put(header_bytes());
    const uint64_t data = put(second);
    tx_.add_indirect_chain({{header, kHeader, false}, {data, 100, false}}, allocate(32));
    transmit(make_frame(70, 3));

    device_->queue_notify(NetDevice::kTransmitQueue);

    ASSERT_EQ(backend_->sent.size(), 3u);
    EXPECT_EQ(backend_->sent[0], make_frame(60, 1));
    EXPECT_EQ(backend_->sent[1], second);
    EXPECT_EQ(backend_->sent[2], make_frame(70, 3));
    EXPECT_EQ(tx_.used_index(), 3);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 1);  // one per batch
}

TEST_F(NetDeviceTest, MalformedTransmitChainsAreDroppedAndReturned) {
    activate();
    // Shorter than the header.
    tx_.add_chain({{put(std::vector<uint8_t>(10, 0)), 10, false}});
    // A header and no frame.
    tx_.add_chain({{put(header_bytes()), kHeader, false}});
    // Longer than any frame.
    const uint64_t huge = allocate(kHeader + NetDevice::kMaxFrameBytes + 1);
    tx_.add_chain({{huge, kHeader + NetDevice::kMaxFrameBytes + 1, false}});
    // Asks for segmentation offload, which was not negotiated.
    const uint64_t gso_header = put(header_bytes(/*gso_type TCPV4*/ 1));
    tx_.add_chain({{gso_header, kHeader, false}, {put(make_frame(60, 1)), 60, false}});
    // Only device-writable buffers: nothing to send.
    tx_.add_chain({{allocate(100), 100, true}});
    // And a good one after them all.
    transmit(make_frame(60, 7));

    device_->queue_notify(NetDevice::kTransmitQueue);

    ASSERT_EQ(backend_->sent.size(), 1u);
    EXPECT_EQ(backend_->sent[0], make_frame(60, 7));
    EXPECT_EQ(tx_.used_index(), 6);
    for (uint16_t i = 0; i < 6; ++i) EXPECT_EQ(tx_.used_element(i).length, 0u);
    EXPECT_EQ(device_->statistics().transmit_errors, 5u);
    EXPECT_TRUE(interrupt_.errors.empty());  // a bad chain is not a broken ring
}

TEST_F(NetDeviceTest, ABackendMayAnswerFromInsideSend) {
    activate();
    backend_->echo = true;
    const uint64_t buffer = post_receive_buffer(2048);
    transmit(make_frame(60, 1));
    transmit(make_frame(70, 2));  // no receive buffer left for its echo: backlog
    device_->queue_notify(NetDevice::kTransmitQueue);

    EXPECT_EQ(backend_->sent.size(), 2u);
    EXPECT_EQ(tx_.used_index(), 2);
    ASSERT_EQ(rx_.used_index(), 1);
    EXPECT_EQ(get(buffer + kHeader, 60), make_frame(60, 1));
    EXPECT_EQ(device_->backlog_frames(), 1u);
}

TEST_F(NetDeviceTest, ABrokenTransmitRingReportsADeviceErrorAndStops) {
    activate();
    // A descriptor pointing past the end of guest RAM.
    tx_.add_chain({{memory_->total_size_bytes() - 4, 64, false}});
    device_->queue_notify(NetDevice::kTransmitQueue);
    ASSERT_EQ(interrupt_.errors.size(), 1u);
    EXPECT_EQ(tx_.used_index(), 0);

    // Until reset nothing more is processed, in either direction.
    transmit(make_frame(60, 1));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_TRUE(backend_->sent.empty());
    post_receive_buffer(2048);
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(rx_.used_index(), 0);
    EXPECT_EQ(interrupt_.errors.size(), 1u);
}

TEST_F(NetDeviceTest, AnAvailableIndexJumpIsADeviceError) {
    activate();
    tx_.set_available_index(kQueueSize + 5);
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(interrupt_.errors.size(), 1u);
}

TEST_F(NetDeviceTest, ALongTransmitBatchYieldsToTheEventLoopAndResumes) {
    EventLoop loop;
    activate(kAllFeatures, &loop);
    for (int i = 0; i < NetDevice::kTransmitBudget; ++i) transmit(make_frame(60, static_cast<uint8_t>(i)));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(backend_->sent.size(), static_cast<size_t>(NetDevice::kTransmitBudget));

    // More arrive while the continuation is pending: it picks them up
    // without a notification.
    for (int i = 0; i < 3; ++i) transmit(make_frame(60, 1));
    loop.run_once(std::chrono::milliseconds(0));
    EXPECT_EQ(backend_->sent.size(), NetDevice::kTransmitBudget + 3u);
    EXPECT_EQ(tx_.used_index(), NetDevice::kTransmitBudget + 3);
}

TEST_F(NetDeviceTest, TransmitInterruptsRespectNoInterruptWithoutEventIndex) {
    activate(kAllFeatures & ~kFeatureRingEventIdx);
    tx_.set_available_flags(1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
    transmit(make_frame(60, 1));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(backend_->sent.size(), 1u);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 0);
}

TEST_F(NetDeviceTest, TransmitInterruptsRespectUsedEvent) {
    activate();
    transmit(make_frame(60, 1));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 1);

    // The driver wants an interrupt only once the used index passes 2 (section 2.7.10).
    tx_.set_used_event(2);
    transmit(make_frame(60, 2));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(tx_.used_index(), 2);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 1);
    transmit(make_frame(60, 3));
    device_->queue_notify(NetDevice::kTransmitQueue);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kTransmitQueue], 2);
    // After draining, avail_event tells the driver to notify for its next buffer.
    EXPECT_EQ(tx_.avail_event(), 3);
}

// ---- receive ---------------------------------------------------------------

TEST_F(NetDeviceTest, ReceiveMergesAFrameAcrossSmallBuffers) {
    activate();
    uint64_t buffers[4];
    for (auto& address : buffers) address = post_receive_buffer(256);

    const auto frame = make_frame(600, 5);  // 612 bytes with the header: 3 buffers
    backend_->inject(frame);

    ASSERT_EQ(rx_.used_index(), 3);
    EXPECT_EQ(rx_.used_element(0).length, 256u);
    EXPECT_EQ(rx_.used_element(1).length, 256u);
    EXPECT_EQ(rx_.used_element(2).length, 612u - 512u);
    EXPECT_EQ(rx_.used_element(0).id, 0u);
    EXPECT_EQ(rx_.used_element(1).id, 1u);
    EXPECT_EQ(rx_.used_element(2).id, 2u);

    const auto header = get(buffers[0], kHeader);
    EXPECT_EQ(header, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0}));  // num_buffers = 3
    std::vector<uint8_t> received = get(buffers[0] + kHeader, 256 - kHeader);
    const auto second = get(buffers[1], 256);
    const auto third = get(buffers[2], 612 - 512);
    received.insert(received.end(), second.begin(), second.end());
    received.insert(received.end(), third.begin(), third.end());
    EXPECT_EQ(received, frame);
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kReceiveQueue], 1);

    // The fourth buffer takes the next small frame on its own.
    backend_->inject(make_frame(60, 6));
    ASSERT_EQ(rx_.used_index(), 4);
    EXPECT_EQ(rx_.used_element(3).length, kHeader + 60);
    EXPECT_EQ(get(buffers[3] + 10, 2), (std::vector<uint8_t>{1, 0}));
    EXPECT_EQ(device_->statistics().received_frames, 2u);
}

TEST_F(NetDeviceTest, ReceiveFillsMultiBufferChains) {
    activate();
    // One chain of three writable buffers, the first exactly the header.
    const uint64_t header = allocate(kHeader);
    const uint64_t part1 = allocate(40);
    const uint64_t part2 = allocate(1000);
    rx_.add_chain({{header, kHeader, true}, {part1, 40, true}, {part2, 1000, true}});

    const auto frame = make_frame(100, 8);
    backend_->inject(frame);

    ASSERT_EQ(rx_.used_index(), 1);
    EXPECT_EQ(rx_.used_element(0).length, kHeader + 100);
    EXPECT_EQ(get(header + 10, 2), (std::vector<uint8_t>{1, 0}));
    auto received = get(part1, 40);
    const auto rest = get(part2, 60);
    received.insert(received.end(), rest.begin(), rest.end());
    EXPECT_EQ(received, frame);
}

TEST_F(NetDeviceTest, WithoutMergeableBuffersAFrameNeedsOneChainThatHoldsIt) {
    activate(kAllFeatures & ~kNetFeatureMergeableRxBuffers);
    const uint64_t small = post_receive_buffer(64);

    // 100 + 12 bytes do not fit in 64: the frame is dropped, the buffer kept.
    backend_->inject(make_frame(100, 1));
    EXPECT_EQ(rx_.used_index(), 0);
    EXPECT_EQ(device_->statistics().receive_dropped, 1u);

    // A frame that fits uses it, with num_buffers 1 (section 5.1.6.4).
    backend_->inject(make_frame(40, 2));
    ASSERT_EQ(rx_.used_index(), 1);
    EXPECT_EQ(rx_.used_element(0).length, kHeader + 40);
    EXPECT_EQ(get(small + 10, 2), (std::vector<uint8_t>{1, 0}));
    EXPECT_EQ(get(small + kHeader, 40), make_frame(40, 2));
}

TEST_F(NetDeviceTest, FramesWaitInABacklogUntilTheGuestPostsBuffers) {
    activate();
    for (uint8_t i = 0; i < 3; ++i) backend_->inject(make_frame(60 + i, i));
    EXPECT_EQ(device_->backlog_frames(), 3u);
    EXPECT_EQ(rx_.used_index(), 0);
    // The device asked to be told about the next buffer (avail_event at 0).
    EXPECT_EQ(rx_.avail_event(), 0);

    uint64_t buffers[3];
    for (auto& address : buffers) address = post_receive_buffer(2048);
    device_->queue_notify(NetDevice::kReceiveQueue);

    EXPECT_EQ(device_->backlog_frames(), 0u);
    ASSERT_EQ(rx_.used_index(), 3);
    for (uint8_t i = 0; i < 3; ++i) {
        EXPECT_EQ(rx_.used_element(i).length, kHeader + 60u + i);
        EXPECT_EQ(get(buffers[i] + kHeader, 60 + i), make_frame(60 + i, i)) << "frame " << int(i);
    }
    EXPECT_EQ(interrupt_.queue_notifications[NetDevice::kReceiveQueue], 1);
}

TEST_F(NetDeviceTest, TheBacklogIsBounded) {
    activate();
    const size_t extra = 44;
    for (size_t i = 0; i < NetDevice::kMaxBacklogFrames + extra; ++i) backend_->inject(make_frame(60, 0));
    EXPECT_EQ(device_->backlog_frames(), NetDevice::kMaxBacklogFrames);
    EXPECT_EQ(device_->statistics().receive_dropped, extra);
}

TEST_F(NetDeviceTest, AFrameWaitingForMoreBuffersKeepsItsPlaceInLine) {
    activate();
    const uint64_t first = post_receive_buffer(256);
    backend_->inject(make_frame(600, 1));  // needs three 256-byte buffers, has one
    backend_->inject(make_frame(60, 2));   // must not overtake it
    EXPECT_EQ(rx_.used_index(), 0);
    EXPECT_EQ(device_->backlog_frames(), 2u);

    const uint64_t second = post_receive_buffer(256);
    const uint64_t third = post_receive_buffer(256);
    const uint64_t fourth = post_receive_buffer(256);
    device_->queue_notify(NetDevice::kReceiveQueue);

    ASSERT_EQ(rx_.used_index(), 4);
    EXPECT_EQ(get(first + 10, 2), (std::vector<uint8_t>{3, 0}));
    const auto big = make_frame(600, 1);
    std::vector<uint8_t> received = get(first + kHeader, 256 - kHeader);
    for (const uint64_t address : {second, third}) {
        const auto piece = get(address, 256);
        received.insert(received.end(), piece.begin(), piece.end());
    }
    received.resize(big.size());
    EXPECT_EQ(received, big);
    EXPECT_EQ(get(fourth + 10, 2), (std::vector<uint8_t>{1, 0}));
    EXPECT_EQ(get(fourth + kHeader, 60), make_frame(60, 2));
}

TEST_F(NetDeviceTest, BuffersAddedWithoutANotificationAreStillFound) {
    activate();
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(device_->backlog_frames(), 1u);
    // The guest adds a buffer but (racing) its notification has not arrived
    // yet; the next frame from the network finds the buffer anyway.
    post_receive_buffer(2048);
    post_receive_buffer(2048);
    backend_->inject(make_frame(60, 2));
    EXPECT_EQ(device_->backlog_frames(), 0u);
    EXPECT_EQ(rx_.used_index(), 2);
}

TEST_F(NetDeviceTest, AReceiveBufferSmallerThanTheHeaderIsADeviceError) {
    activate();
    post_receive_buffer(8);
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(interrupt_.errors.size(), 1u);
    EXPECT_EQ(rx_.used_index(), 0);
}

TEST_F(NetDeviceTest, AReadOnlyReceiveChainIsADeviceError) {
    activate();
    rx_.add_chain({{allocate(2048), 2048, false}});
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(interrupt_.errors.size(), 1u);
}

TEST_F(NetDeviceTest, FramesBeforeActivationOrAfterResetAreDropped) {
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(device_->statistics().receive_dropped, 1u);

    activate();
    backend_->inject(make_frame(60, 2));  // no buffers yet: backlog
    EXPECT_EQ(device_->backlog_frames(), 1u);
    device_->reset();
    EXPECT_EQ(device_->backlog_frames(), 0u);
    backend_->inject(make_frame(60, 3));
    EXPECT_EQ(device_->statistics().receive_dropped, 2u);
    device_->queue_notify(NetDevice::kTransmitQueue);  // ignored, no crash
}

TEST_F(NetDeviceTest, ADisabledReceiveQueueDropsFrames) {
    ActivationContext context;
    context.memory = memory_;
    context.interrupt = &interrupt_;
    context.acked_features = kAllFeatures;
    context.queues.emplace_back(*memory_, QueueLayout{}, true);  // the driver left it disabled
    context.queues.emplace_back(*memory_, tx_.layout(), true);
    context.queue_enabled = {false, true};
    ASSERT_TRUE(device_->activate(std::move(context)).ok());
    backend_->inject(make_frame(60, 1));
    EXPECT_EQ(device_->statistics().receive_dropped, 1u);
    device_->queue_notify(NetDevice::kReceiveQueue);
    EXPECT_TRUE(interrupt_.errors.empty());
}

TEST_F(NetDeviceTest, TheDeviceLetsGoOfTheBackendWhenDestroyed) {
    EXPECT_TRUE(backend_->has_handler());
    device_.reset();
    EXPECT_FALSE(backend_->has_handler());
    backend_->inject(make_frame(60, 1));  // nobody listening, no crash
}

// ---- MAC addresses -----------------------------------------------------------

TEST(MacAddress, ParsesAndFormats) {
    auto mac = parse_mac_address("52:54:00:AB:cd:0f");
    ASSERT_TRUE(mac.ok());
    EXPECT_EQ(mac->to_string(), "52:54:00:ab:cd:0f");
    EXPECT_TRUE(parse_mac_address("52-54-00-ab-cd-0f").ok());
}

TEST(MacAddress, RefusesMalformedMulticastAndZero) {
    EXPECT_FALSE(parse_mac_address("52:54:00:ab:cd").ok());
    EXPECT_FALSE(parse_mac_address("52:54:00:ab:cd:0g").ok());
    EXPECT_FALSE(parse_mac_address("52:54:00:ab:cd:0f:").ok());
    EXPECT_FALSE(parse_mac_address("5254.00ab.cd0f.00").ok());
    const auto multicast = parse_mac_address("01:00:5e:00:00:01");
    ASSERT_FALSE(multicast.ok());
    EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
    EXPECT_FALSE(parse_mac_address("00:00:00:00:00:00").ok());
}

}  // namespace
}  // namespace atl::vmm::virtio
