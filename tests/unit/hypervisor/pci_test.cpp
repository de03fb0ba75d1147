#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <cstring>

namespace atl::vmm::pci {
namespace {

class RecordingBar final : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        last_read = offset;
        std::memset(data.data(), 0xab, data.size());
    }
    void write(uint64_t offset, std::span<const uint8_t>) override { last_write = offset; }
    uint64_t last_read = ~0ull, last_write = ~0ull;
};

class TestDevice final : public PciDevice {
public:
    TestDevice() : config_(0x1234, 0x5678, 0x020000, 3, 0x1234, 1) { config_.add_bar(0, {0x4000, true, false}); }
    ConfigSpace& config() override { return config_; }
    std::shared_ptr<BusDevice> bar_handler(unsigned index) override { return index == 0 ? bar : nullptr; }
    void bar_moved(unsigned, uint64_t, uint64_t new_address) override { moved_to = new_address; }
    std::string name() const override { return "test"; }

    ConfigSpace config_;
    std::shared_ptr<RecordingBar> bar = std::make_shared<RecordingBar>();
    uint64_t moved_to = 0;
};

uint32_t read32(BusDevice& device, uint64_t offset) {
    uint32_t value;
    device.read(offset, std::span(reinterpret_cast<uint8_t*>(&value), 4));
    return value;
}

void write32(BusDevice& device, uint64_t offset, uint32_t value) {
    device.write(offset, std::span(reinterpret_cast<const uint8_t*>(&value), 4));
}

class PciRootTest : public ::testing::Test {
protected:
    IoBus mmio;
    std::shared_ptr<PciRoot> root = std::make_shared<PciRoot>(mmio, 0xc0000000, 0x20000000);
    std::shared_ptr<TestDevice> device = std::make_shared<TestDevice>();
};

TEST_F(PciRootTest, HostBridgeAtSlotZeroAndEmptySlotsReadAllOnes) {
    auto ecam = root->ecam_access();
    EXPECT_EQ(read32(*ecam, 0), 0x10fe1af4u);
    EXPECT_EQ(read32(*ecam, 5 << 15), 0xffffffffu);
    EXPECT_EQ(read32(*ecam, 1u << 20), 0xffffffffu) << "only bus 0 exists";
}

TEST_F(PciRootTest, DeviceGetsASlotAndAMappedBar) {
    auto slot = root->add_device(device);
    ASSERT_TRUE(slot);
    EXPECT_EQ(*slot, 1u);
    auto ecam = root->ecam_access();
    EXPECT_EQ(read32(*ecam, (1 << 15) + 0), 0x56781234u);
    const uint32_t bar_low = read32(*ecam, (1 << 15) + kBar0);
    EXPECT_EQ(bar_low & 0xf, 0x4u) << "64-bit memory BAR";
    const uint64_t address = bar_low & ~0xfu;
    EXPECT_EQ(address, 0xc0000000u);
    EXPECT_EQ(device->moved_to, address);
    uint8_t byte;
    ASSERT_TRUE(mmio.read(address + 0x10, std::span(&byte, 1)));
    EXPECT_EQ(device->bar->last_read, 0x10u);
}

TEST_F(PciRootTest, BarSizingThroughPortAccess) {
    ASSERT_TRUE(root->add_device(device));
    auto ports = root->port_access();
    const uint32_t bar0_address = 0x80000000u | (1 << 11) | kBar0;
    write32(*ports, 0, bar0_address);
    // Linux turns memory decoding off while it sizes a BAR.
    write32(*ports, 0, 0x80000000u | (1 << 11) | kCommand);
    write32(*ports, 4, 0x0);
    write32(*ports, 0, bar0_address);
    write32(*ports, 4, 0xffffffff);
    EXPECT_EQ(read32(*ports, 4), 0xffffc004u) << "size 16 KiB, 64-bit";
    uint8_t byte;
    EXPECT_FALSE(mmio.read(0xc0000000, std::span(&byte, 1))) << "unmapped while decoding is off";
    // Move it and turn decoding back on.
    write32(*ports, 4, 0xd0000000);
    write32(*ports, 0, 0x80000000u | (1 << 11) | (kBar0 + 4));
    write32(*ports, 4, 0);
    write32(*ports, 0, 0x80000000u | (1 << 11) | kCommand);
    write32(*ports, 4, kCommandMemorySpace);
    EXPECT_TRUE(mmio.read(0xd0000000, std::span(&byte, 1)));
    EXPECT_EQ(device->moved_to, 0xd0000000u);
}

TEST_F(PciRootTest, ReadOnlyFieldsIgnoreWrites) {
    ASSERT_TRUE(root->add_device(device));
    auto ecam = root->ecam_access();
    write32(*ecam, (1 << 15) + 0, 0xdeadbeef);
    EXPECT_EQ(read32(*ecam, (1 << 15) + 0), 0x56781234u);
}

TEST_F(PciRootTest, MisalignedEcamAccessIsHarmless) {
    ASSERT_TRUE(root->add_device(device));
    auto ecam = root->ecam_access();
    uint8_t bytes[4];
    ecam->read((1 << 15) + 3, std::span(bytes, 4));
    EXPECT_EQ(bytes[0], 0xff);
    ecam->write((1 << 15) + 0xfff, std::span<const uint8_t>(bytes, 4));
}

TEST(IoBusTest, RefusesOverlaps) {
    IoBus bus;
    auto device = std::make_shared<RecordingBar>();
    ASSERT_TRUE(bus.insert(0x1000, 0x100, device));
    EXPECT_FALSE(bus.insert(0x10ff, 0x10, device));
    EXPECT_FALSE(bus.insert(0xff0, 0x20, device));
    EXPECT_TRUE(bus.insert(0x1100, 0x10, device));
    uint8_t byte;
    EXPECT_FALSE(bus.read(0x10ff, std::span(&byte, 2))) << "an access crossing two devices is refused";
}

}  // namespace
}  // namespace atl::vmm::pci
