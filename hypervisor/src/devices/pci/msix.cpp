#include "devices/pci/msix.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

namespace atl::vmm::pci {

MsixTable::MsixTable(hv::Vm& vm, uint16_t vector_count) : vm_(vm), entries_(vector_count) {}

MsixTable::~MsixTable() {
    for (auto& entry : entries_) {
        if (entry.eventfd < 0) continue;
        (void)vm_.detach_irqfd(entry.eventfd, entry.gsi);
        close(entry.eventfd);
    }
}

Result<void> MsixTable::initialize() {
    for (auto& entry : entries_) {
        auto gsi = vm_.allocate_msi_route();
        if (!gsi) return gsi.error();
        entry.gsi = *gsi;
        entry.eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (entry.eventfd < 0) return make_error("eventfd for MSI-X vector: " + std::string(strerror(errno)));
        ATOLL_TRY(vm_.attach_irqfd(entry.eventfd, entry.gsi));
    }
    return {};
}

void MsixTable::read_table(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    const uint64_t index = offset / kEntrySize;
    const uint64_t field = offset % kEntrySize;
    if (index >= entries_.size() || field + data.size() > kEntrySize) {
        std::memset(data.data(), 0, data.size());
        return;
    }
    const auto& entry = entries_[index];
    const uint32_t words[4] = {entry.address_low, entry.address_high, entry.data, entry.control};
    std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(words) + field, data.size());
}

void MsixTable::write_table(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    const uint64_t index = offset / kEntrySize;
    const uint64_t field = offset % kEntrySize;
    if (index >= entries_.size() || field + data.size() > kEntrySize) return;
    auto& entry = entries_[index];
    const bool was_masked = masked(entry);
    uint32_t words[4] = {entry.address_low, entry.address_high, entry.data, entry.control};
    std::memcpy(reinterpret_cast<uint8_t*>(words) + field, data.data(), data.size());
    entry.address_low = words[0];
    entry.address_high = words[1];
    entry.data = words[2];
    entry.control = words[3] & 1;  // only the mask bit is defined
    update_route(entry);
    if (was_masked && !masked(entry) && entry.pending) {
        entry.pending = false;
        const uint64_t one = 1;
        [[maybe_unused]] auto written = write(entry.eventfd, &one, sizeof one);
    }
}

void MsixTable::read_pending(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint8_t byte = 0;
        for (unsigned bit = 0; bit < 8; ++bit) {
            const uint64_t vector = (offset + i) * 8 + bit;
            if (vector < entries_.size() && entries_[vector].pending) byte |= 1 << bit;
        }
        data[i] = byte;
    }
}

void MsixTable::set_control(bool enabled, bool function_masked) {
    std::lock_guard lock(mutex_);
    if (enabled == enabled_ && function_masked == function_masked_) return;
    enabled_ = enabled;
    function_masked_ = function_masked;
    for (auto& entry : entries_) {
        update_route(entry);
        if (!masked(entry) && entry.pending) {
            entry.pending = false;
            const uint64_t one = 1;
            [[maybe_unused]] auto written = write(entry.eventfd, &one, sizeof one);
        }
    }
}

bool MsixTable::enabled() const {
    std::lock_guard lock(mutex_);
    return enabled_;
}

void MsixTable::update_route(Entry& entry) {
    const uint64_t address = (static_cast<uint64_t>(entry.address_high) << 32) | entry.address_low;
    (void)vm_.set_msi_route(entry.gsi, address, entry.data, masked(entry));
}

void MsixTable::signal(uint16_t vector) {
    std::lock_guard lock(mutex_);
    if (vector >= entries_.size()) return;
    auto& entry = entries_[vector];
    if (masked(entry)) {
        entry.pending = true;
        return;
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto written = write(entry.eventfd, &one, sizeof one);
}

std::vector<uint8_t> MsixTable::capability(uint16_t vector_count, uint8_t bar, uint32_t table_offset,
                                           uint32_t pba_offset) {
    std::vector<uint8_t> body(12, 0);
    body[0] = 0x11;  // MSI-X capability ID
    const uint16_t control = static_cast<uint16_t>(vector_count - 1);
    std::memcpy(&body[2], &control, 2);
    const uint32_t table = table_offset | bar;
    const uint32_t pba = pba_offset | bar;
    std::memcpy(&body[4], &table, 4);
    std::memcpy(&body[8], &pba, 4);
    return body;
}

}  // namespace atl::vmm::pci
