// A PCI function as the root complex sees it: a 4 KiB configuration space
// (PCIe extended space, reachable through ECAM) and memory BARs.
#pragma once

#include "devices/bus.h"

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace atl::vmm::pci {

constexpr uint16_t kConfigSpaceSize = 4096;
constexpr unsigned kBarCount = 6;

// Offsets in the type 0 header (PCI Local Bus 3.0, section 6.1).
enum ConfigOffset : uint16_t {
    kVendorId = 0x00,
    kDeviceId = 0x02,
    kCommand = 0x04,
    kStatus = 0x06,
    kRevision = 0x08,
    kClassCode = 0x09,
    kHeaderType = 0x0e,
    kBar0 = 0x10,
    kSubsystemVendorId = 0x2c,
    kSubsystemId = 0x2e,
    kCapabilitiesPointer = 0x34,
    kInterruptLine = 0x3c,
    kInterruptPin = 0x3d,
};

constexpr uint16_t kCommandMemorySpace = 1 << 1;
constexpr uint16_t kStatusCapabilitiesList = 1 << 4;

struct BarSpec {
    uint64_t size_bytes = 0;  // power of two, at least 4 KiB; 0 = unused
    bool is_64bit = true;
    bool prefetchable = false;
};

// Config space with per-byte write masks, BAR sizing and a capability list.
// Devices build one and override what needs behaviour (MSI-X, virtio caps).
class ConfigSpace {
public:
    ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision,
                uint16_t subsystem_vendor, uint16_t subsystem);

    // Declares BAR `index` (a 64-bit BAR uses index and index + 1).
    void add_bar(unsigned index, const BarSpec& spec);
    // Appends a capability: `body` starts with the ID byte; the next pointer
    // (byte 1) is filled in. Returns its config offset. `writable_mask` (same
    // length as body, optional) says which bits the driver may change.
    uint16_t add_capability(std::span<const uint8_t> body, std::span<const uint8_t> writable_mask = {});

    uint32_t read_dword(uint16_t offset) const;
    // Applies the write through the masks; handles BAR sizing.
    void write(uint16_t offset, std::span<const uint8_t> data);

    // The address a BAR is programmed to, or 0 when memory decoding is off or the BAR is unset.
    uint64_t bar_address(unsigned index) const;
    uint64_t bar_size(unsigned index) const { return bars_[index].size_bytes; }
    void set_bar_address(unsigned index, uint64_t address);
    uint64_t bar_address_mask(unsigned index) const { return bars_[index].is_64bit ? ~0ull : 0xffffffffull; }
    bool memory_enabled() const;

    uint8_t* raw() { return bytes_.data(); }
    const uint8_t* raw() const { return bytes_.data(); }

private:
    std::array<uint8_t, kConfigSpaceSize> bytes_{};
    std::array<uint8_t, kConfigSpaceSize> writable_{};
    std::array<BarSpec, kBarCount> bars_{};
    uint16_t last_capability_ = 0;
    uint16_t next_capability_offset_ = 0x40;
};

class PciDevice {
public:
    virtual ~PciDevice() = default;
    virtual ConfigSpace& config() = 0;
    // Called after a config write; the default applies it to config().
    virtual void write_config(uint16_t offset, std::span<const uint8_t> data) { config().write(offset, data); }
    virtual uint32_t read_config(uint16_t offset) { return config().read_dword(offset); }
    // Serves accesses to BAR `index`. Null for BARs the device does not have.
    virtual std::shared_ptr<BusDevice> bar_handler(unsigned index) = 0;
    // The BAR moved (the driver reprogrammed it); devices that registered
    // ioeventfds inside it move them.
    virtual void bar_moved(unsigned /*index*/, uint64_t /*old_address*/, uint64_t /*new_address*/) {}
    virtual std::string name() const = 0;
};

}  // namespace atl::vmm::pci
