#include "devices/bus.h"

#include <mutex>

namespace atl::vmm {

Result<void> IoBus::insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
    if (size == 0 || base + size < base) return make_error("bus range is empty or wraps");
    std::unique_lock lock(mutex_);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + size) return make_error("bus range overlaps another device");
    if (next != ranges_.begin()) {
        auto previous = std::prev(next);
        if (previous->first + previous->second.size > base) return make_error("bus range overlaps another device");
    }
    ranges_.emplace(base, Range{size, std::move(device)});
    return {};
}

void IoBus::remove(uint64_t base) {
    std::unique_lock lock(mutex_);
    ranges_.erase(base);
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> IoBus::find(uint64_t address, uint64_t length) const {
    std::shared_lock lock(mutex_);
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return {nullptr, 0};
    --it;
    const uint64_t offset = address - it->first;
    if (offset >= it->second.size || length > it->second.size - offset) return {nullptr, 0};
    return {it->second.device, offset};
}

bool IoBus::read(uint64_t address, std::span<uint8_t> data) const {
    auto [device, offset] = find(address, data.size());
    if (!device) return false;
    device->read(offset, data);
    return true;
}

bool IoBus::write(uint64_t address, std::span<const uint8_t> data) const {
    auto [device, offset] = find(address, data.size());
    if (!device) return false;
    device->write(offset, data);
    return true;
}

}  // namespace atl::vmm
