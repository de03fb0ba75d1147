// The PCI root complex: bus 0 with a host bridge, configuration access through
// ports 0xCF8/0xCFC (PCI 3.0, section 3.2.2.3.2) and ECAM (PCIe 4.0, section 7.2.2),
// and the BARs of every device placed in the MMIO window.
#pragma once

#include "devices/bus.h"
#include "devices/pci/pci_device.h"

#include <atoll/result.h>

#include <array>
#include <memory>
#include <mutex>

namespace atl::vmm::pci {

class PciRoot : public std::enable_shared_from_this<PciRoot> {
public:
    PciRoot(IoBus& mmio_bus, uint64_t mmio_window_base, uint64_t mmio_window_size);

    // Plugs a device into the next free slot, assigns and maps its BARs.
    Result<unsigned> add_device(std::shared_ptr<PciDevice> device);

    uint32_t read_config(unsigned bus, unsigned slot, unsigned function, uint16_t offset);
    void write_config(unsigned bus, unsigned slot, unsigned function, uint16_t offset, std::span<const uint8_t> data);

    // BusDevices for the two access mechanisms: ports 0xCF8-0xCFF and the ECAM window.
    std::shared_ptr<BusDevice> port_access();
    std::shared_ptr<BusDevice> ecam_access();

    static constexpr unsigned kSlotCount = 32;

private:
    void remap_bars(unsigned slot);

    IoBus& mmio_bus_;
    uint64_t next_bar_address_;
    uint64_t mmio_window_end_;
    std::mutex mutex_;
    std::array<std::shared_ptr<PciDevice>, kSlotCount> slots_{};
    std::array<std::array<uint64_t, kBarCount>, kSlotCount> mapped_bar_{};  // 0 = not mapped
    uint32_t port_address_ = 0;
};

}  // namespace atl::vmm::pci
