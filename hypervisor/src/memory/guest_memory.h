// Guest RAM: one memfd (so other dom0 processes can map it), mapped once into
// this process, exposed to the guest as one or more physical regions.
// Every guest address goes through here before it becomes a host pointer.
#pragma once

#include <atoll/result.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace atl::vmm {

struct GuestAddress {
    uint64_t value = 0;

    friend bool operator==(GuestAddress, GuestAddress) = default;
};

struct MemoryRegion {
    uint64_t guest_base = 0;
    uint64_t size_bytes = 0;
    uint64_t file_offset = 0;  // offset of this region in the memfd
    uint8_t* host = nullptr;

    uint64_t guest_end() const { return guest_base + size_bytes; }
};

struct RegionSpec {
    uint64_t guest_base = 0;
    uint64_t size_bytes = 0;
};

class GuestMemory {
public:
    // Creates a memfd of the regions' total size and maps it. The regions must
    // not overlap and must be page aligned.
    static Result<std::shared_ptr<GuestMemory>> create(std::span<const RegionSpec> regions);
    // One region at guest address 0: what unit tests and fuzzers use.
    static std::shared_ptr<GuestMemory> create_flat(uint64_t size_bytes);

    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    // The host view of [address, address + length), or nullptr when any byte of
    // it lies outside guest RAM or the range crosses a region boundary.
    uint8_t* host_pointer(GuestAddress address, uint64_t length) const;
    bool contains(GuestAddress address, uint64_t length) const {
        return host_pointer(address, length) != nullptr;
    }

    // Copy in or out; false (and nothing copied) when the range is not RAM.
    bool read(GuestAddress address, void* destination, uint64_t length) const;
    bool write(GuestAddress address, const void* source, uint64_t length) const;

    template <class T>
    bool read_object(GuestAddress address, T& out) const {
        return read(address, &out, sizeof(T));
    }
    template <class T>
    bool write_object(GuestAddress address, const T& in) const {
        return write(address, &in, sizeof(T));
    }

    const std::vector<MemoryRegion>& regions() const { return regions_; }
    int fd() const { return fd_; }
    uint64_t total_size_bytes() const { return total_size_; }
    uint8_t* base() const { return base_; }

private:
    GuestMemory() = default;

    std::vector<MemoryRegion> regions_;
    int fd_ = -1;
    uint8_t* base_ = nullptr;
    uint64_t total_size_ = 0;
};

}  // namespace atl::vmm
