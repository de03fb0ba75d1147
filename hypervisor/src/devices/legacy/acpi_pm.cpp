#include "devices/legacy/acpi_pm.h"

#include <chrono>

namespace atl::vmm {
namespace {

// Status bits this model can set, and the enable bits that exist.
constexpr uint16_t kEnableBits = AcpiPmDevice::kTimerBit | AcpiPmDevice::kGlobalBit |
                                 AcpiPmDevice::kPowerButtonBit | AcpiPmDevice::kSleepButtonBit |
                                 AcpiPmDevice::kRtcBit | AcpiPmDevice::kPciExpressWakeBit;
// Control bits that read back what was written. SCI_EN always reads 1 (no
// SMI_CMD: the system is in ACPI mode for good); GBL_RLS and SLP_EN are
// write-only and read 0.
constexpr uint16_t kControlStoredBits = AcpiPmDevice::kBusMasterReload | AcpiPmDevice::kSleepTypeMask;
constexpr uint16_t kSleepTypeSoftOff = 5;  // must match the DSDT's \_S5
// Events that raise the SCI when enabled. The timer's overflow and the RTC
// are not modelled, so their status never sets.
constexpr uint16_t kSciSources = AcpiPmDevice::kPowerButtonBit | AcpiPmDevice::kSleepButtonBit;

uint64_t steady_clock_ns() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace

AcpiPmDevice::AcpiPmDevice(PowerOff on_power_off, SciLine sci_line, MonotonicClockNs clock_ns)
    : on_power_off_(std::move(on_power_off)),
      sci_line_(std::move(sci_line)),
      clock_ns_(clock_ns ? std::move(clock_ns) : MonotonicClockNs(steady_clock_ns)) {
    clock_start_ns_ = clock_ns_();
}

uint8_t AcpiPmDevice::read_byte(uint64_t offset, uint32_t timer) const {
    auto byte_of = [](uint32_t value, uint64_t index) { return static_cast<uint8_t>(value >> (8 * index)); };
    switch (offset) {
    case kStatusOffset:
    case kStatusOffset + 1: return byte_of(status_, offset - kStatusOffset);
    case kEnableOffset:
    case kEnableOffset + 1: return byte_of(enable_, offset - kEnableOffset);
    case kControlOffset:
    case kControlOffset + 1: return byte_of(control_ | kSciEnable, offset - kControlOffset);
    case kTimerOffset:
    case kTimerOffset + 1:
    case kTimerOffset + 2:
    case kTimerOffset + 3: return byte_of(timer, offset - kTimerOffset);
    default: return 0xff;  // the gap after PM1_CNT and anything beyond
    }
}

void AcpiPmDevice::read(uint64_t offset, std::span<uint8_t> data) {
    // The timer value is computed once per access so a 32-bit read is coherent.
    const uint64_t elapsed_ns = clock_ns_() - clock_start_ns_;
    // Whole seconds and the rest apart, so that no product overflows.
    constexpr uint64_t kNsPerSecond = 1'000'000'000;
    const uint64_t ticks = elapsed_ns / kNsPerSecond * kTimerFrequencyHz +
                           elapsed_ns % kNsPerSecond * kTimerFrequencyHz / kNsPerSecond;
    const auto timer = static_cast<uint32_t>(ticks);
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) data[i] = read_byte(offset + i, timer);
}

void AcpiPmDevice::write(uint64_t offset, std::span<const uint8_t> data) {
    bool power_off = false;
    {
        std::lock_guard lock(mutex_);
        bool control_written = false;
        uint16_t control_value = control_;
        for (size_t i = 0; i < data.size(); ++i) {
            const uint64_t at = offset + i;
            const uint16_t shifted = static_cast<uint16_t>(data[i] << (8 * (at & 1)));
            const uint16_t byte_mask = static_cast<uint16_t>(0xffu << (8 * (at & 1)));
            if (at == kStatusOffset || at == kStatusOffset + 1) {
                status_ = static_cast<uint16_t>(status_ & ~shifted);  // write 1 to clear
            } else if (at == kEnableOffset || at == kEnableOffset + 1) {
                enable_ = static_cast<uint16_t>((enable_ & ~byte_mask) | (shifted & kEnableBits));
            } else if (at == kControlOffset || at == kControlOffset + 1) {
                control_value = static_cast<uint16_t>((control_value & ~byte_mask) | shifted);
                control_written = true;
            }
            // The timer is read-only; writes elsewhere are ignored.
        }
        if (control_written) {
            // SLP_EN acts on the SLP_TYP written with it (ACPI 6.5, 4.8.3.2.1).
            if ((control_value & kSleepEnable) &&
                ((control_value & kSleepTypeMask) >> kSleepTypeShift) == kSleepTypeSoftOff)
                power_off = true;
            control_ = static_cast<uint16_t>((control_value & kControlStoredBits) | kSciEnable);
        }
        update_sci();
    }
    // Outside the lock: the handler may stop vCPUs that are waiting for it.
    if (power_off && on_power_off_) on_power_off_();
}

void AcpiPmDevice::press_power_button() {
    std::lock_guard lock(mutex_);
    status_ |= kPowerButtonBit;
    update_sci();
}

void AcpiPmDevice::update_sci() {
    const bool level = (status_ & enable_ & kSciSources) != 0;
    if (level == sci_level_) return;
    sci_level_ = level;
    if (sci_line_) sci_line_(level);
}

}  // namespace atl::vmm
