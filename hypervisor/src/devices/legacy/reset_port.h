// The ways a PC guest resets itself, so that a reboot never hangs:
// - the reset control register at port 0xCF9 that the FADT's RESET_REG names
//   (written 0x06 by Linux's ACPI reboot), and
// - the i8042 keyboard controller's pulse-reset command 0xFE at port 0x64
//   (Linux's reboot=kbd, tried after ACPI). There is no keyboard controller
//   otherwise: the stub reads as "input buffer empty" so the writer never waits.
#pragma once

#include "devices/bus.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace atl::vmm {

using ResetHandler = std::function<void()>;

// One port: 0xCF9. Writing a value with RST_CPU (bit 2) set resets the
// machine; the other bits read back.
class ResetControlPort final : public BusDevice {
public:
    explicit ResetControlPort(ResetHandler on_reset);
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    static constexpr uint8_t kSystemReset = 1u << 1;  // SYS_RST: hard rather than soft
    static constexpr uint8_t kResetCpu = 1u << 2;     // RST_CPU: do it
    static constexpr uint8_t kFullReset = 1u << 3;

private:
    ResetHandler on_reset_;
    std::mutex mutex_;
    uint8_t value_ = 0;
};

// One port: 0x64. Status reads 0; command 0xFE resets; the rest is ignored.
class I8042ResetStub final : public BusDevice {
public:
    explicit I8042ResetStub(ResetHandler on_reset);
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    static constexpr uint8_t kPulseResetCommand = 0xfe;

private:
    ResetHandler on_reset_;
};

// Port 0xCF9 lies inside PCI configuration mechanism #1's ports 0xCF8-0xCFF,
// and an IoBus range cannot overlap another. This device takes the whole
// range: single-byte accesses at 0xCF9 go to `reset`, everything else to
// `pci_config_ports` (CONFIG_ADDRESS is only ever accessed as a dword).
std::shared_ptr<BusDevice> combine_pci_config_and_reset(std::shared_ptr<BusDevice> pci_config_ports,
                                                        std::shared_ptr<ResetControlPort> reset);

}  // namespace atl::vmm
