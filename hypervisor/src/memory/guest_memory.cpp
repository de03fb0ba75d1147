#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace atl::vmm {

namespace {
constexpr uint64_t kPageSize = 4096;
}

Result<std::shared_ptr<GuestMemory>> GuestMemory::create(std::span<const RegionSpec> specs) {
    std::shared_ptr<GuestMemory> memory(new GuestMemory());
    uint64_t total = 0;
    for (const auto& spec : specs) {
        if (spec.size_bytes == 0 || spec.guest_base % kPageSize || spec.size_bytes % kPageSize)
            return make_error("guest memory regions must be non-empty and page aligned");
        if (spec.guest_base + spec.size_bytes < spec.guest_base)
            return make_error("guest memory region wraps around the address space");
        for (const auto& other : memory->regions_) {
            if (spec.guest_base < other.guest_end() && other.guest_base < spec.guest_base + spec.size_bytes)
                return make_error("guest memory regions overlap");
        }
        memory->regions_.push_back({spec.guest_base, spec.size_bytes, total, nullptr});
        total += spec.size_bytes;
    }
    if (total == 0) return make_error("guest memory size is zero");

    memory->fd_ = memfd_create("atoll-guest-ram", MFD_CLOEXEC);
    if (memory->fd_ < 0) return make_error(std::string("memfd_create: ") + strerror(errno));
    if (ftruncate(memory->fd_, static_cast<off_t>(total)) != 0)
        return make_error("cannot size guest RAM to " + std::to_string(total >> 20) + " MiB: " + strerror(errno));
    // MAP_NORESERVE: the guest touches its RAM lazily; commit is checked by the caller
    // against what the host can give.
    void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memory->fd_, 0);
    if (base == MAP_FAILED)
        return make_error("cannot map " + std::to_string(total >> 20) + " MiB of guest RAM: " + strerror(errno));
    memory->base_ = static_cast<uint8_t*>(base);
    memory->total_size_ = total;
    for (auto& region : memory->regions_) region.host = memory->base_ + region.file_offset;
    // Guest RAM is not worth dumping with the VMM.
    madvise(base, total, MADV_DONTDUMP);
    // Huge pages cut the guest's page faults and TLB misses; shared memory gets
    // them where the host allows (transparent_hugepage/shmem_enabled = advise).
    madvise(base, total, MADV_HUGEPAGE);
    return memory;
}

std::shared_ptr<GuestMemory> GuestMemory::create_flat(uint64_t size_bytes) {
    RegionSpec spec{0, (size_bytes + kPageSize - 1) & ~(kPageSize - 1)};
    auto result = create(std::span<const RegionSpec>(&spec, 1));
    return result ? std::move(*result) : nullptr;
}

GuestMemory::~GuestMemory() {
    if (base_) munmap(base_, total_size_);
    if (fd_ >= 0) close(fd_);
}

uint8_t* GuestMemory::host_pointer(GuestAddress address, uint64_t length) const {
    for (const auto& region : regions_) {
        if (address.value < region.guest_base || address.value >= region.guest_end()) continue;
        const uint64_t offset = address.value - region.guest_base;
        // Written so that no addition can overflow.
        if (length > region.size_bytes - offset) return nullptr;
        return region.host + offset;
    }
    return nullptr;
}

bool GuestMemory::read(GuestAddress address, void* destination, uint64_t length) const {
    if (length == 0) return true;
    const uint8_t* source = host_pointer(address, length);
    if (!source) return false;
    std::memcpy(destination, source, length);
    return true;
}

bool GuestMemory::write(GuestAddress address, const void* source, uint64_t length) const {
    if (length == 0) return true;
    uint8_t* destination = host_pointer(address, length);
    if (!destination) return false;
    std::memcpy(destination, source, length);
    return true;
}

}  // namespace atl::vmm
