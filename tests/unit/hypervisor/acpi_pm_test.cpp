// ACPI PM1 registers and timer, the 0xCF9 reset register and the i8042
// reset stub, driven through an IoBus at the ports the FADT names.
#include "arch/x86/layout.h"
#include "devices/bus.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/reset_port.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace atl::vmm {
namespace {

using x86::kPm1aControlBlockPort;
using x86::kPm1aEventBlockPort;
using x86::kPmTimerPort;

class AcpiPmTest : public ::testing::Test {
protected:
    void SetUp() override {
        device_ = std::make_shared<AcpiPmDevice>([this] { ++power_offs_; },
                                                 [this](bool level) { sci_levels_.push_back(level); },
                                                 [this] { return now_ns_; });
        ASSERT_TRUE(bus_.insert(x86::kAcpiPmPortBase, x86::kAcpiPmPortCount, device_).ok());
    }

    uint32_t in(uint16_t port, size_t size) {
        uint8_t bytes[4] = {};
        EXPECT_TRUE(bus_.read(port, std::span<uint8_t>(bytes, size)));
        uint32_t value = 0;
        std::memcpy(&value, bytes, size);
        return value;
    }
    void out(uint16_t port, uint32_t value, size_t size) {
        uint8_t bytes[4];
        std::memcpy(bytes, &value, 4);
        EXPECT_TRUE(bus_.write(port, std::span<const uint8_t>(bytes, size)));
    }

    IoBus bus_;
    std::shared_ptr<AcpiPmDevice> device_;
    int power_offs_ = 0;
    std::vector<bool> sci_levels_;
    uint64_t now_ns_ = 1'000'000;
};

TEST_F(AcpiPmTest, SciEnableReadsOneSoAcpiModeIsOn) {
    EXPECT_EQ(in(kPm1aControlBlockPort, 2) & 1, 1u);
    out(kPm1aControlBlockPort, 0, 2);  // cannot be cleared: there is no legacy mode
    EXPECT_EQ(in(kPm1aControlBlockPort, 2) & 1, 1u);
}

TEST_F(AcpiPmTest, SleepTypeFiveWithSleepEnablePowersOff) {
    // ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN.
    out(kPm1aControlBlockPort, (5u << 10) | 1, 2);
    EXPECT_EQ(power_offs_, 0);
    EXPECT_EQ(in(kPm1aControlBlockPort, 2), (5u << 10) | 1);
    out(kPm1aControlBlockPort, (5u << 10) | (1u << 13) | 1, 2);
    EXPECT_EQ(power_offs_, 1);
    EXPECT_EQ(in(kPm1aControlBlockPort, 2) & (1u << 13), 0u);  // SLP_EN is write-only
}

TEST_F(AcpiPmTest, SleepEnableInAHighByteWriteCounts) {
    out(kPm1aControlBlockPort + 1, ((5u << 10) | (1u << 13)) >> 8, 1);
    EXPECT_EQ(power_offs_, 1);
}

TEST_F(AcpiPmTest, OtherSleepTypesDoNothing) {
    for (uint32_t type : {0u, 1u, 3u, 4u, 7u}) out(kPm1aControlBlockPort, (type << 10) | (1u << 13), 2);
    EXPECT_EQ(power_offs_, 0);
}

TEST_F(AcpiPmTest, PowerButtonStatusIsWriteOneToClear) {
    device_->press_power_button();
    EXPECT_EQ(in(kPm1aEventBlockPort, 2), AcpiPmDevice::kPowerButtonBit);
    out(kPm1aEventBlockPort, 0, 2);  // zeros leave it alone
    EXPECT_EQ(in(kPm1aEventBlockPort, 2), AcpiPmDevice::kPowerButtonBit);
    out(kPm1aEventBlockPort, AcpiPmDevice::kPowerButtonBit, 2);
    EXPECT_EQ(in(kPm1aEventBlockPort, 2), 0u);
    EXPECT_TRUE(sci_levels_.empty());  // never enabled, never raised
}

TEST_F(AcpiPmTest, EnabledPowerButtonRaisesAndClearingLowersTheSci) {
    out(kPm1aEventBlockPort + 2, AcpiPmDevice::kPowerButtonBit, 2);  // PM1_EN
    EXPECT_EQ(in(kPm1aEventBlockPort + 2, 2), AcpiPmDevice::kPowerButtonBit);
    device_->press_power_button();
    ASSERT_EQ(sci_levels_, std::vector<bool>{true});
    device_->press_power_button();  // still pending: no second edge
    EXPECT_EQ(sci_levels_.size(), 1u);
    out(kPm1aEventBlockPort, AcpiPmDevice::kPowerButtonBit, 2);
    EXPECT_EQ(sci_levels_, (std::vector<bool>{true, false}));
}

TEST_F(AcpiPmTest, PendingStatusRaisesTheSciWhenEnabledLater) {
    device_->press_power_button();
    EXPECT_TRUE(sci_levels_.empty());
    out(kPm1aEventBlockPort + 2, AcpiPmDevice::kPowerButtonBit, 2);
    EXPECT_EQ(sci_levels_, std::vector<bool>{true});
    out(kPm1aEventBlockPort + 2, 0, 2);
    EXPECT_EQ(sci_levels_, (std::vector<bool>{true, false}));
}

TEST_F(AcpiPmTest, A32BitEventBlockAccessCoversStatusAndEnable) {
    device_->press_power_button();
    out(kPm1aEventBlockPort, uint32_t{AcpiPmDevice::kPowerButtonBit} << 16, 4);  // enable only
    EXPECT_EQ(in(kPm1aEventBlockPort, 4),
              AcpiPmDevice::kPowerButtonBit | (uint32_t{AcpiPmDevice::kPowerButtonBit} << 16));
    out(kPm1aEventBlockPort, AcpiPmDevice::kPowerButtonBit | (uint32_t{AcpiPmDevice::kPowerButtonBit} << 16), 4);
    EXPECT_EQ(in(kPm1aEventBlockPort, 4), uint32_t{AcpiPmDevice::kPowerButtonBit} << 16);
}

TEST_F(AcpiPmTest, EnableKeepsOnlyDefinedBits) {
    out(kPm1aEventBlockPort + 2, 0xffff, 2);
    EXPECT_EQ(in(kPm1aEventBlockPort + 2, 2), 0x4721u);
}

TEST_F(AcpiPmTest, TimerCountsAt3579545HzAndWraps) {
    EXPECT_EQ(in(kPmTimerPort, 4), 0u);
    now_ns_ += 1'000'000'000;
    EXPECT_EQ(in(kPmTimerPort, 4), 3'579'545u);
    now_ns_ += 1'000;  // 1 µs: 3.58 ticks
    EXPECT_EQ(in(kPmTimerPort, 4), 3'579'548u);
    // 32 bits wrap after 2^32 / 3579545 s (about 20 minutes).
    now_ns_ = 1'000'000 + 1'199'864'000'000ull + 1'000'000'000ull;
    EXPECT_LT(in(kPmTimerPort, 4), 2 * 3'579'545u + 1);
    out(kPmTimerPort, 0, 4);  // read-only: ignored
    EXPECT_GT(in(kPmTimerPort, 4), 0u);
}

TEST_F(AcpiPmTest, TimerRunsOnTheRealClockByDefault) {
    AcpiPmDevice device(nullptr, nullptr);
    uint8_t first[4], second[4];
    device.read(AcpiPmDevice::kTimerOffset, first);
    // Spin until the counter moves: a tick is 279 ns.
    uint32_t a, b;
    std::memcpy(&a, first, 4);
    for (int i = 0; i < 1'000'000; ++i) {
        device.read(AcpiPmDevice::kTimerOffset, second);
        std::memcpy(&b, second, 4);
        if (b != a) break;
    }
    EXPECT_NE(a, b);
}

TEST_F(AcpiPmTest, GapReadsAllOnes) {
    EXPECT_EQ(in(kPm1aControlBlockPort + 2, 2), 0xffffu);
}

// --- Reset ---

TEST(ResetPortTest, CpuResetBitResets) {
    int resets = 0;
    ResetControlPort port([&] { ++resets; });
    const uint8_t hard_reset[] = {0x06};
    port.write(0, hard_reset);
    EXPECT_EQ(resets, 1);
    const uint8_t soft_reset[] = {0x04};
    port.write(0, soft_reset);
    EXPECT_EQ(resets, 2);
    uint8_t value[1];
    port.read(0, value);
    EXPECT_EQ(value[0], 0x00);  // RST_CPU self-clears
}

TEST(ResetPortTest, OtherBitsOnlyLatch) {
    int resets = 0;
    ResetControlPort port([&] { ++resets; });
    const uint8_t system_reset_only[] = {0x02};
    port.write(0, system_reset_only);
    EXPECT_EQ(resets, 0);
    uint8_t value[1];
    port.read(0, value);
    EXPECT_EQ(value[0], 0x02);
}

TEST(ResetPortTest, I8042StubReadsReadyAndResetsOnPulseCommand) {
    int resets = 0;
    auto stub = std::make_shared<I8042ResetStub>([&] { ++resets; });
    IoBus bus;
    ASSERT_TRUE(bus.insert(x86::kI8042CommandPort, 1, stub).ok());
    uint8_t status[1] = {0xff};
    ASSERT_TRUE(bus.read(x86::kI8042CommandPort, status));
    EXPECT_EQ(status[0] & 0x02, 0);  // input buffer empty: the guest may write
    const uint8_t other[] = {0xad};
    bus.write(x86::kI8042CommandPort, other);
    EXPECT_EQ(resets, 0);
    const uint8_t pulse[] = {I8042ResetStub::kPulseResetCommand};
    bus.write(x86::kI8042CommandPort, pulse);
    EXPECT_EQ(resets, 1);
}

// A stand-in for the PCI configuration ports: remembers the last access.
class RecordingDevice : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        last_offset = offset;
        last_size = data.size();
        std::memset(data.data(), 0xab, data.size());
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        last_offset = offset;
        last_size = data.size();
    }
    uint64_t last_offset = ~0ull;
    size_t last_size = 0;
};

TEST(ResetPortTest, SharesPortsWithPciConfigurationMechanismOne) {
    int resets = 0;
    auto pci = std::make_shared<RecordingDevice>();
    auto reset = std::make_shared<ResetControlPort>([&] { ++resets; });
    IoBus bus;
    ASSERT_TRUE(bus.insert(x86::kPciConfigPortBase, x86::kPciConfigPortCount, combine_pci_config_and_reset(pci, reset)).ok());

    const uint8_t address[4] = {0, 0, 0, 0x80};
    bus.write(0xcf8, address);  // CONFIG_ADDRESS, a dword
    EXPECT_EQ(pci->last_offset, 0u);
    EXPECT_EQ(pci->last_size, 4u);
    uint8_t data[2];
    bus.read(0xcfc, data);
    EXPECT_EQ(pci->last_offset, 4u);
    EXPECT_EQ(resets, 0);

    const uint8_t hard_reset[] = {0x06};
    bus.write(x86::kResetControlPort, hard_reset);
    EXPECT_EQ(resets, 1);
    EXPECT_EQ(pci->last_offset, 4u);  // the PCI ports never saw it
}

}  // namespace
}  // namespace atl::vmm
