#include "arch/x86/e820.h"

#include "arch/x86/layout.h"

namespace atl::vmm::x86 {

std::vector<RegionSpec> guest_ram_regions(uint64_t ram_bytes) {
    std::vector<RegionSpec> regions;
    if (const uint64_t low = low_ram_bytes(ram_bytes); low > 0) regions.push_back({0, low});
    if (const uint64_t high = high_ram_bytes(ram_bytes); high > 0) regions.push_back({kHighRamStart, high});
    return regions;
}

std::vector<E820Entry> build_e820(uint64_t ram_bytes) {
    std::vector<E820Entry> map;
    const uint64_t low_end = low_ram_bytes(ram_bytes);
    if (low_end > 0) map.push_back({0, std::min(low_end, kEbdaStart), E820Type::Ram});
    // The EBDA and the BIOS area stay reserved even when RAM backs them: the
    // RSDP scan looks there and the kernel must not hand those pages out.
    map.push_back({kEbdaStart, kHighMemoryStart - kEbdaStart, E820Type::Reserved});
    if (low_end > kHighMemoryStart) map.push_back({kHighMemoryStart, low_end - kHighMemoryStart, E820Type::Ram});
    map.push_back({kPcieEcamStart, kPcieEcamWindowBytes, E820Type::Reserved});
    if (const uint64_t high = high_ram_bytes(ram_bytes); high > 0) map.push_back({kHighRamStart, high, E820Type::Ram});
    return map;
}

}  // namespace atl::vmm::x86
