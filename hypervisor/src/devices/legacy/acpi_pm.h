// ACPI fixed hardware (ACPI 6.5, 4.8): the PM1a event block (status and
// enable), the PM1a control block and a 32-bit PM timer, at the ports the
// FADT names (arch/x86/layout.h: 0x600, 12 ports). The guest powers off by
// writing SLP_TYP = 5 (the DSDT's \_S5) with SLP_EN; the host can press the
// fixed power button to ask the guest to shut down cleanly.
#pragma once

#include "devices/bus.h"

#include <cstdint>
#include <functional>
#include <mutex>

namespace atl::vmm {

class AcpiPmDevice final : public BusDevice {
public:
    using PowerOff = std::function<void()>;
    // Drives the SCI (ISA IRQ 9, level triggered). Called with the device's
    // lock held: it must not call back into the device.
    using SciLine = std::function<void(bool level)>;
    using MonotonicClockNs = std::function<uint64_t()>;

    // `on_power_off` runs on the vCPU thread that wrote SLP_EN, without the
    // device's lock. `clock_ns` feeds the PM timer; empty means steady_clock.
    AcpiPmDevice(PowerOff on_power_off, SciLine sci_line, MonotonicClockNs clock_ns = {});

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Sets PWRBTN_STS; raises the SCI if the guest enabled PWRBTN_EN.
    void press_power_button();

    // Register offsets from the device base (FADT PM1a_EVT_BLK, PM1a_CNT_BLK, PM_TMR_BLK).
    static constexpr uint64_t kStatusOffset = 0;   // PM1_STS, 16 bits, write 1 to clear
    static constexpr uint64_t kEnableOffset = 2;   // PM1_EN, 16 bits
    static constexpr uint64_t kControlOffset = 4;  // PM1_CNT, 16 bits
    static constexpr uint64_t kTimerOffset = 8;    // PM_TMR, 32 bits, read-only
    static constexpr uint64_t kSizeBytes = 12;

    // PM1 status/enable bits (ACPI 6.5, tables 4.16 and 4.17).
    static constexpr uint16_t kTimerBit = 1u << 0;
    static constexpr uint16_t kGlobalBit = 1u << 5;
    static constexpr uint16_t kPowerButtonBit = 1u << 8;
    static constexpr uint16_t kSleepButtonBit = 1u << 9;
    static constexpr uint16_t kRtcBit = 1u << 10;
    static constexpr uint16_t kPciExpressWakeBit = 1u << 14;
    static constexpr uint16_t kWakeStatusBit = 1u << 15;
    // PM1 control bits (table 4.18).
    static constexpr uint16_t kSciEnable = 1u << 0;
    static constexpr uint16_t kBusMasterReload = 1u << 1;
    static constexpr uint16_t kGlobalRelease = 1u << 2;
    static constexpr unsigned kSleepTypeShift = 10;
    static constexpr uint16_t kSleepTypeMask = 0x7u << kSleepTypeShift;
    static constexpr uint16_t kSleepEnable = 1u << 13;
    // The PM timer runs at 3.579545 MHz (4.8.3.3).
    static constexpr uint64_t kTimerFrequencyHz = 3'579'545;

private:
    uint8_t read_byte(uint64_t offset, uint32_t timer) const;
    void update_sci();

    PowerOff on_power_off_;
    SciLine sci_line_;
    MonotonicClockNs clock_ns_;
    uint64_t clock_start_ns_ = 0;

    std::mutex mutex_;
    uint16_t status_ = 0;
    uint16_t enable_ = 0;
    uint16_t control_ = kSciEnable;
    bool sci_level_ = false;
};

}  // namespace atl::vmm
