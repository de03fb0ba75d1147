#include "devices/pci/pci_root.h"

#include <cstring>

namespace atl::vmm::pci {
namespace {

class HostBridge final : public PciDevice {
public:
    // Class 06/00/00: host bridge. Vendor 0x1af4 with a device ID outside the virtio range.
    HostBridge() : config_(0x1af4, 0x10fe, 0x060000, 0, 0x1af4, 0) {}
    ConfigSpace& config() override { return config_; }
    std::shared_ptr<BusDevice> bar_handler(unsigned) override { return nullptr; }
    std::string name() const override { return "host bridge"; }

private:
    ConfigSpace config_;
};

// Reads of a sub-dword config register return the right bytes of the dword.
void extract(uint32_t dword, uint16_t offset, std::span<uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(dword >> (8 * ((offset + i) & 3)));
}

class PortAccess final : public BusDevice {
public:
    PortAccess(std::shared_ptr<PciRoot> root, uint32_t& address) : root_(std::move(root)), address_(address) {}

    void read(uint64_t offset, std::span<uint8_t> data) override {
        if (offset == 0 && data.size() == 4) {
            std::memcpy(data.data(), &address_, 4);
            return;
        }
        if (offset < 4 || !(address_ & 0x80000000u)) {
            std::memset(data.data(), 0xff, data.size());
            return;
        }
        const uint16_t reg = static_cast<uint16_t>((address_ & 0xfc) + (offset - 4));
        extract(root_->read_config((address_ >> 16) & 0xff, (address_ >> 11) & 0x1f, (address_ >> 8) & 7, reg & ~3),
                reg, data);
    }

    void write(uint64_t offset, std::span<const uint8_t> data) override {
        if (offset == 0 && data.size() == 4) {
            std::memcpy(&address_, data.data(), 4);
            return;
        }
        if (offset < 4 || !(address_ & 0x80000000u)) return;
        const uint16_t reg = static_cast<uint16_t>((address_ & 0xfc) + (offset - 4));
        root_->write_config((address_ >> 16) & 0xff, (address_ >> 11) & 0x1f, (address_ >> 8) & 7, reg, data);
    }

private:
    std::shared_ptr<PciRoot> root_;
    uint32_t& address_;
};

class EcamAccess final : public BusDevice {
public:
    explicit EcamAccess(std::shared_ptr<PciRoot> root) : root_(std::move(root)) {}

    // ECAM offset: bus << 20 | device << 15 | function << 12 | register.
    void read(uint64_t offset, std::span<uint8_t> data) override {
        const uint16_t reg = offset & 0xfff;
        if ((reg & 3) + data.size() > 4) {
            std::memset(data.data(), 0xff, data.size());
            return;
        }
        extract(root_->read_config((offset >> 20) & 0xff, (offset >> 15) & 0x1f, (offset >> 12) & 7, reg & ~3), reg,
                data);
    }

    void write(uint64_t offset, std::span<const uint8_t> data) override {
        const uint16_t reg = offset & 0xfff;
        if ((reg & 3) + data.size() > 4) return;
        root_->write_config((offset >> 20) & 0xff, (offset >> 15) & 0x1f, (offset >> 12) & 7, reg, data);
    }

private:
    std::shared_ptr<PciRoot> root_;
};

}  // namespace

PciRoot::PciRoot(IoBus& mmio_bus, uint64_t mmio_window_base, uint64_t mmio_window_size)
    : mmio_bus_(mmio_bus), next_bar_address_(mmio_window_base), mmio_window_end_(mmio_window_base + mmio_window_size) {
    slots_[0] = std::make_shared<HostBridge>();
}

Result<unsigned> PciRoot::add_device(std::shared_ptr<PciDevice> device) {
    std::lock_guard lock(mutex_);
    unsigned slot = 1;
    while (slot < kSlotCount && slots_[slot]) ++slot;
    if (slot == kSlotCount) return make_error("no free PCI slot for " + device->name());
    auto& config = device->config();
    for (unsigned bar = 0; bar < kBarCount; ++bar) {
        const uint64_t size = config.bar_size(bar);
        if (size == 0) continue;
        const uint64_t address = (next_bar_address_ + size - 1) & ~(size - 1);
        if (address + size > mmio_window_end_) return make_error("PCI MMIO window full at " + device->name());
        config.set_bar_address(bar, address);
        next_bar_address_ = address + size;
    }
    // As firmware leaves it: memory decoding and bus mastering on.
    const uint8_t command[2] = {kCommandMemorySpace | 0x4, 0};
    config.write(kCommand, command);
    slots_[slot] = std::move(device);
    remap_bars(slot);
    return slot;
}

uint32_t PciRoot::read_config(unsigned bus, unsigned slot, unsigned function, uint16_t offset) {
    std::lock_guard lock(mutex_);
    if (bus != 0 || function != 0 || slot >= kSlotCount || !slots_[slot]) return 0xffffffff;
    return slots_[slot]->read_config(offset);
}

void PciRoot::write_config(unsigned bus, unsigned slot, unsigned function, uint16_t offset,
                           std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    if (bus != 0 || function != 0 || slot >= kSlotCount || !slots_[slot]) return;
    slots_[slot]->write_config(offset, data);
    const bool touches_bars_or_command = offset < kBar0 + 4 * kBarCount;
    if (touches_bars_or_command) remap_bars(slot);
}

void PciRoot::remap_bars(unsigned slot) {
    auto& device = slots_[slot];
    auto& config = device->config();
    for (unsigned bar = 0; bar < kBarCount; ++bar) {
        const uint64_t size = config.bar_size(bar);
        if (size == 0) continue;
        uint64_t wanted = config.memory_enabled() ? config.bar_address(bar) : 0;
        // All ones above the size is the sizing pattern, not a placement.
        if (wanted == (~(size - 1) & config.bar_address_mask(bar))) wanted = 0;
        auto& mapped = mapped_bar_[slot][bar];
        if (wanted == mapped) continue;
        if (mapped) mmio_bus_.remove(mapped);
        const uint64_t old_address = mapped;
        mapped = 0;
        if (wanted) {
            if (auto handler = device->bar_handler(bar); handler && mmio_bus_.insert(wanted, size, handler)) mapped = wanted;
        }
        if (mapped) device->bar_moved(bar, old_address, mapped);
    }
}

std::shared_ptr<BusDevice> PciRoot::port_access() { return std::make_shared<PortAccess>(shared_from_this(), port_address_); }

std::shared_ptr<BusDevice> PciRoot::ecam_access() { return std::make_shared<EcamAccess>(shared_from_this()); }

}  // namespace atl::vmm::pci
