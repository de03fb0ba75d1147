// The virtio PCI transport driven the way Linux's virtio_pci_modern probes a device.
#include "devices/virtio/pci_transport.h"

#include "fake_vm.h"
#include "vmm/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

namespace atl::vmm::virtio {
namespace {

class ProbeDevice final : public Device {
public:
    DeviceType type() const override { return kDeviceEntropy; }
    uint64_t offered_features() const override { return kFeatureVersion1 | kFeatureRingEventIdx | (1ull << 3); }
    uint16_t queue_count() const override { return 2; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0x10 + offset + i);
    }
    Result<void> activate(ActivationContext context) override {
        ++activations;
        acked = context.acked_features;
        queue_sizes.clear();
        for (auto& queue : context.queues) queue_sizes.push_back(queue.size());
        interrupt = context.interrupt;
        return {};
    }
    void queue_notify(uint16_t queue) override { notified.push_back(queue); }
    void reset() override { ++resets; }
    std::string name() const override { return "probe"; }

    int activations = 0, resets = 0;
    uint64_t acked = 0;
    std::vector<uint16_t> queue_sizes;
    std::vector<uint16_t> notified;
    Interrupt* interrupt = nullptr;
};

constexpr uint64_t kCommon = PciTransport::kCommonOffset;

class PciTransportTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto device = std::make_unique<ProbeDevice>();
        probe = device.get();
        auto created = PciTransport::create(std::move(device), vm, loop, memory);
        ASSERT_TRUE(created) << created.error().message;
        transport = *created;
    }

    template <class T>
    T read(uint64_t offset) {
        T value{};
        transport->read_bar(offset, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
        return value;
    }
    template <class T>
    void write(uint64_t offset, T value) {
        transport->write_bar(offset, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
    }

    void set_up_queue(uint16_t index, uint64_t base) {
        write<uint16_t>(kCommon + 0x16, index);
        write<uint16_t>(kCommon + 0x18, 16);
        // 64-bit addresses arrive as two 32-bit halves.
        write<uint32_t>(kCommon + 0x20, static_cast<uint32_t>(base));
        write<uint32_t>(kCommon + 0x24, 0);
        write<uint64_t>(kCommon + 0x28, base + 0x100);
        write<uint64_t>(kCommon + 0x30, base + 0x200);
        write<uint16_t>(kCommon + 0x1a, index);  // MSI-X vector
        write<uint16_t>(kCommon + 0x1c, 1);
    }

    void negotiate(uint64_t features) {
        write<uint8_t>(kCommon + 0x14, 0);
        write<uint8_t>(kCommon + 0x14, 1 | 2);
        write<uint32_t>(kCommon + 0x08, 0);
        write<uint32_t>(kCommon + 0x0c, static_cast<uint32_t>(features));
        write<uint32_t>(kCommon + 0x08, 1);
        write<uint32_t>(kCommon + 0x0c, static_cast<uint32_t>(features >> 32));
        write<uint8_t>(kCommon + 0x14, 1 | 2 | 8);
    }

    testing::FakeVm vm;
    EventLoop loop;
    std::shared_ptr<GuestMemory> memory = GuestMemory::create_flat(1 << 20);
    std::shared_ptr<PciTransport> transport;
    ProbeDevice* probe = nullptr;
};

TEST_F(PciTransportTest, OffersFeaturesInTwoWindows) {
    write<uint32_t>(kCommon + 0x00, 0);
    EXPECT_EQ(read<uint32_t>(kCommon + 0x04), (1u << 29) | (1u << 3));
    write<uint32_t>(kCommon + 0x00, 1);
    EXPECT_EQ(read<uint32_t>(kCommon + 0x04), 1u);
    write<uint32_t>(kCommon + 0x00, 7);
    EXPECT_EQ(read<uint32_t>(kCommon + 0x04), 0u);
    EXPECT_EQ(read<uint16_t>(kCommon + 0x12), 2u);
}

TEST_F(PciTransportTest, FullProbeActivatesTheDevice) {
    negotiate(kFeatureVersion1 | kFeatureRingEventIdx);
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14) & 8, 8) << "FEATURES_OK accepted";
    set_up_queue(0, 0x10000);
    set_up_queue(1, 0x20000);
    EXPECT_EQ(read<uint64_t>(kCommon + 0x20), 0x20000u) << "queue 1 selected";
    write<uint8_t>(kCommon + 0x14, 1 | 2 | 8 | 4);
    ASSERT_EQ(probe->activations, 1);
    EXPECT_EQ(probe->acked, kFeatureVersion1 | kFeatureRingEventIdx);
    EXPECT_EQ(probe->queue_sizes, (std::vector<uint16_t>{16, 16}));
    EXPECT_EQ(read<uint16_t>(kCommon + 0x1e), 1u) << "notify offset of queue 1";
}

TEST_F(PciTransportTest, RefusesFeaturesItDidNotOffer) {
    negotiate(kFeatureVersion1 | (1ull << 5));
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14) & 8, 0);
}

TEST_F(PciTransportTest, RefusesLegacyDrivers) {
    negotiate(kFeatureRingEventIdx);
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14) & 8, 0) << "VERSION_1 is required";
}

TEST_F(PciTransportTest, QueueOutsideRamNeedsReset) {
    negotiate(kFeatureVersion1);
    set_up_queue(0, 0xfff00000);
    write<uint8_t>(kCommon + 0x14, 1 | 2 | 8 | 4);
    EXPECT_EQ(probe->activations, 0);
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14) & 0x40, 0x40) << "DEVICE_NEEDS_RESET";
    write<uint8_t>(kCommon + 0x14, 0);
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14), 0) << "reset clears it";
}

TEST_F(PciTransportTest, NotificationReachesTheDeviceAndInterruptsReachMsix) {
    // Enable MSI-X in the capability (Message Control bit 15) and unmask vector 1.
    uint16_t offset = transport->config().raw()[pci::kCapabilitiesPointer];
    while (transport->config().raw()[offset] != 0x11) offset = transport->config().raw()[offset + 1];
    const uint8_t control[] = {0x00, 0x80};
    transport->write_config(static_cast<uint16_t>(offset + 2), control);
    write<uint32_t>(PciTransport::kMsixTableOffset + 16 + 0, 0xfee00000);
    write<uint32_t>(PciTransport::kMsixTableOffset + 16 + 8, 0x41);
    write<uint32_t>(PciTransport::kMsixTableOffset + 16 + 12, 0);
    ASSERT_TRUE(vm.routes.count(25));
    EXPECT_FALSE(vm.routes[25].masked);
    EXPECT_EQ(vm.routes[25].data, 0x41u);

    negotiate(kFeatureVersion1);
    set_up_queue(0, 0x10000);
    set_up_queue(1, 0x20000);
    write<uint8_t>(kCommon + 0x14, 1 | 2 | 8 | 4);
    ASSERT_EQ(probe->activations, 1);
    loop.run_once(std::chrono::milliseconds(0));  // the post-activation sweep
    probe->notified.clear();

    write<uint16_t>(PciTransport::kNotifyOffset + 4, 1);
    loop.run_once(std::chrono::milliseconds(100));
    EXPECT_EQ(probe->notified, (std::vector<uint16_t>{1}));

    probe->interrupt->notify_queue(1);
    uint64_t count = 0;
    ASSERT_EQ(::read(vm.irqfds[25], &count, sizeof count), static_cast<ssize_t>(sizeof count));
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(read<uint8_t>(PciTransport::kIsrOffset) & 1, 1);
    EXPECT_EQ(read<uint8_t>(PciTransport::kIsrOffset), 0) << "reading the ISR clears it";
}

TEST_F(PciTransportTest, MaskedVectorIsHeldPending) {
    negotiate(kFeatureVersion1);
    set_up_queue(0, 0x10000);
    set_up_queue(1, 0x20000);
    write<uint8_t>(kCommon + 0x14, 1 | 2 | 8 | 4);
    probe->interrupt->notify_queue(0);  // MSI-X is still disabled
    EXPECT_EQ(read<uint8_t>(PciTransport::kMsixPendingOffset) & 1, 1);
}

TEST_F(PciTransportTest, DeviceConfigReadsGoToTheDevice) {
    EXPECT_EQ(read<uint32_t>(PciTransport::kDeviceConfigOffset + 4), 0x17161514u);
}

TEST_F(PciTransportTest, ReportedDeviceErrorSetsNeedsReset) {
    negotiate(kFeatureVersion1);
    set_up_queue(0, 0x10000);
    set_up_queue(1, 0x20000);
    write<uint8_t>(kCommon + 0x14, 1 | 2 | 8 | 4);
    const uint8_t generation = read<uint8_t>(kCommon + 0x15);
    probe->interrupt->report_device_error("test");
    EXPECT_EQ(read<uint8_t>(kCommon + 0x14) & 0x40, 0x40);
    EXPECT_NE(read<uint8_t>(kCommon + 0x15), generation);
    probe->notified.clear();
    write<uint16_t>(PciTransport::kNotifyOffset, 0);
    loop.run_once(std::chrono::milliseconds(10));
    EXPECT_TRUE(probe->notified.empty()) << "no processing until reset";
}

TEST_F(PciTransportTest, OddAccessesAreHarmless) {
    uint8_t buffer[8];
    transport->read_bar(PciTransport::kCommonOffset + 0x3b, std::span(buffer, 8));
    transport->write_bar(PciTransport::kCommonOffset + 0x3b, std::span<const uint8_t>(buffer, 8));
    transport->read_bar(PciTransport::kMsixTableOffset + 3 * 16 + 14, std::span(buffer, 4));
    transport->write_bar(PciTransport::kNotifyOffset + 0x400, std::span<const uint8_t>(buffer, 2));
    write<uint16_t>(kCommon + 0x16, 999);
    EXPECT_EQ(read<uint16_t>(kCommon + 0x18), 0u) << "a queue that does not exist has size 0";
    loop.run_once(std::chrono::milliseconds(0));
}

}  // namespace
}  // namespace atl::vmm::virtio
