// The BIOS memory map (INT 15h, AX=E820h; ACPI 6.5, chapter 15) that Linux
// receives in boot_params, and the guest RAM regions it describes.
#pragma once

#include "memory/guest_memory.h"

#include <cstdint>
#include <vector>

namespace atl::vmm::x86 {

// Address range types (ACPI 6.5, table 15.312).
enum class E820Type : uint32_t {
    Ram = 1,
    Reserved = 2,
    AcpiReclaimable = 3,
    AcpiNvs = 4,
};

struct E820Entry {
    uint64_t address = 0;
    uint64_t size_bytes = 0;
    E820Type type = E820Type::Ram;

    uint64_t end() const { return address + size_bytes; }
    friend bool operator==(const E820Entry&, const E820Entry&) = default;
};

// Where `ram_bytes` of guest RAM live: [0, min(ram, 3 GiB)) and the rest from
// 4 GiB. Pass these to GuestMemory::create. `ram_bytes` must be page aligned.
std::vector<RegionSpec> guest_ram_regions(uint64_t ram_bytes);

// The map for `ram_bytes` of RAM laid out as guest_ram_regions() says, sorted
// by address: usable RAM below the EBDA, the EBDA/BIOS area (where the ACPI
// tables live) reserved, RAM from 1 MiB to the hole, the PCIe ECAM reserved
// (Linux accepts MCFG only for a reserved ECAM), and RAM above 4 GiB.
// RAM smaller than 1 MiB yields only what exists.
std::vector<E820Entry> build_e820(uint64_t ram_bytes);

}  // namespace atl::vmm::x86
