#include "devices/pci/pci_device.h"

#include <cstring>

namespace atl::vmm::pci {
namespace {

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
uint32_t get32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace

ConfigSpace::ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision,
                         uint16_t subsystem_vendor, uint16_t subsystem) {
    put16(&bytes_[kVendorId], vendor);
    put16(&bytes_[kDeviceId], device);
    bytes_[kRevision] = revision;
    bytes_[kClassCode] = class_code & 0xff;
    bytes_[kClassCode + 1] = (class_code >> 8) & 0xff;
    bytes_[kClassCode + 2] = (class_code >> 16) & 0xff;
    put16(&bytes_[kSubsystemVendorId], subsystem_vendor);
    put16(&bytes_[kSubsystemId], subsystem);
    // Command: I/O space, memory space, bus master, INTx disable.
    writable_[kCommand] = 0x07;
    writable_[kCommand + 1] = 0x04;
    writable_[kInterruptLine] = 0xff;
}

void ConfigSpace::add_bar(unsigned index, const BarSpec& spec) {
    bars_[index] = spec;
    uint32_t flags = 0;
    if (spec.is_64bit) flags |= 0x4;
    if (spec.prefetchable) flags |= 0x8;
    put32(&bytes_[kBar0 + 4 * index], flags);
    // Sizing works through the mask: the low bits below the size stay zero.
    const uint64_t address_mask = ~(spec.size_bytes - 1);
    put32(&writable_[kBar0 + 4 * index], static_cast<uint32_t>(address_mask));
    if (spec.is_64bit) put32(&writable_[kBar0 + 4 * (index + 1)], static_cast<uint32_t>(address_mask >> 32));
}

uint16_t ConfigSpace::add_capability(std::span<const uint8_t> body, std::span<const uint8_t> writable_mask) {
    const uint16_t offset = next_capability_offset_;
    std::memcpy(&bytes_[offset], body.data(), body.size());
    bytes_[offset + 1] = 0;
    for (size_t i = 0; i < writable_mask.size() && i < body.size(); ++i) writable_[offset + i] = writable_mask[i];
    if (last_capability_ == 0) {
        bytes_[kCapabilitiesPointer] = static_cast<uint8_t>(offset);
        bytes_[kStatus] |= kStatusCapabilitiesList;
    } else {
        bytes_[last_capability_ + 1] = static_cast<uint8_t>(offset);
    }
    last_capability_ = offset;
    next_capability_offset_ = static_cast<uint16_t>((offset + body.size() + 3) & ~3u);
    return offset;
}

uint32_t ConfigSpace::read_dword(uint16_t offset) const {
    offset &= ~3u;
    if (offset >= kConfigSpaceSize) return 0xffffffff;
    return get32(&bytes_[offset]);
}

void ConfigSpace::write(uint16_t offset, std::span<const uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) {
        const size_t at = offset + i;
        if (at >= kConfigSpaceSize) break;
        bytes_[at] = static_cast<uint8_t>((bytes_[at] & ~writable_[at]) | (data[i] & writable_[at]));
    }
}

uint64_t ConfigSpace::bar_address(unsigned index) const {
    if (index >= kBarCount || bars_[index].size_bytes == 0) return 0;
    uint64_t address = get32(&bytes_[kBar0 + 4 * index]) & ~0xfull;
    if (bars_[index].is_64bit) address |= static_cast<uint64_t>(get32(&bytes_[kBar0 + 4 * (index + 1)])) << 32;
    return address;
}

void ConfigSpace::set_bar_address(unsigned index, uint64_t address) {
    const uint32_t flags = get32(&bytes_[kBar0 + 4 * index]) & 0xf;
    put32(&bytes_[kBar0 + 4 * index], static_cast<uint32_t>(address) | flags);
    if (bars_[index].is_64bit) put32(&bytes_[kBar0 + 4 * (index + 1)], static_cast<uint32_t>(address >> 32));
}

bool ConfigSpace::memory_enabled() const { return bytes_[kCommand] & kCommandMemorySpace; }

}  // namespace atl::vmm::pci
