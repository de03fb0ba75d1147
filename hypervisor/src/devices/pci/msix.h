// MSI-X (PCI 3.0, section 6.8.2): the vector table and pending bits a device
// exposes in a BAR. Each vector is an eventfd bound to a KVM MSI route, so a
// device raises an interrupt with one write and no exit.
#pragma once

#include "hv/hypervisor.h"

#include <atoll/result.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

namespace atl::vmm::pci {

class MsixTable {
public:
    static constexpr uint16_t kEntrySize = 16;

    MsixTable(hv::Vm& vm, uint16_t vector_count);
    ~MsixTable();
    MsixTable(const MsixTable&) = delete;
    MsixTable& operator=(const MsixTable&) = delete;

    // Allocates the routes and eventfds.
    Result<void> initialize();

    uint16_t vector_count() const { return static_cast<uint16_t>(entries_.size()); }

    // Accesses to the table and PBA regions of the BAR (offsets within each).
    void read_table(uint64_t offset, std::span<uint8_t> data);
    void write_table(uint64_t offset, std::span<const uint8_t> data);
    void read_pending(uint64_t offset, std::span<uint8_t> data);

    // The capability's Message Control changed.
    void set_control(bool enabled, bool function_masked);
    bool enabled() const;

    // Raises `vector`; held pending while masked. Safe from any thread.
    void signal(uint16_t vector);

    // The capability body for the config space: table and PBA in `bar` at the given offsets.
    static std::vector<uint8_t> capability(uint16_t vector_count, uint8_t bar, uint32_t table_offset,
                                           uint32_t pba_offset);

private:
    struct Entry {
        uint32_t address_low = 0, address_high = 0, data = 0, control = 1;  // masked at reset
        uint32_t gsi = 0;
        int eventfd = -1;
        bool pending = false;
    };
    bool masked(const Entry& entry) const { return !enabled_ || function_masked_ || (entry.control & 1); }
    void update_route(Entry& entry);

    hv::Vm& vm_;
    mutable std::mutex mutex_;
    std::vector<Entry> entries_;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace atl::vmm::pci
