// Port I/O and MMIO dispatch: vCPU exits are routed to the device that owns
// the address. Lookups happen on vCPU threads concurrently.
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>

namespace atl::vmm {

class BusDevice {
public:
    virtual ~BusDevice() = default;
    // `offset` is relative to the base the device was inserted at. Reads fill
    // `data` entirely (all-ones for registers that do not exist, as hardware does).
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class IoBus {
public:
    Result<void> insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);
    void remove(uint64_t base);
    // False when no device claims the address (the caller decides what the guest sees).
    bool read(uint64_t address, std::span<uint8_t> data) const;
    bool write(uint64_t address, std::span<const uint8_t> data) const;

private:
    struct Range {
        uint64_t size;
        std::shared_ptr<BusDevice> device;
    };
    // (device, offset) for an address, or a null device.
    std::pair<std::shared_ptr<BusDevice>, uint64_t> find(uint64_t address, uint64_t length) const;

    mutable std::shared_mutex mutex_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace atl::vmm
