// Loads a Linux bzImage for the 64-bit boot protocol (Documentation/arch/x86/
// boot.rst): the protected-mode kernel at 1 MiB, the zero page, the command
// line and the initrd in guest RAM. The vCPU is then set up by boot_cpu.h.
#pragma once

#include "memory/guest_memory.h"

#include <atoll/result.h>

#include <cstdint>
#include <optional>
#include <string>

namespace atl::vmm::x86 {

struct LinuxBootSpec {
    std::string kernel_path;
    std::optional<std::string> initrd_path;
    std::string cmdline;
    // Written to boot_params.acpi_rsdp_addr (protocol 2.14+); 0 lets the
    // kernel scan the BIOS area for the RSDP, which finds it as well.
    uint64_t acpi_rsdp_address = 0;
};

struct BootInfo {
    GuestAddress entry_point;  // 64-bit entry: load address + 0x200
    GuestAddress boot_params;  // the zero page; RSI at entry
    uint16_t protocol_version = 0;  // e.g. 0x020f
    // End of what the kernel may overwrite while decompressing itself.
    uint64_t kernel_end = 0;
    uint64_t initrd_address = 0;
    uint64_t initrd_size_bytes = 0;  // 0: no initrd
};

// The e820 map in the zero page is built from memory.total_size_bytes(), so
// `memory` must have been laid out by guest_ram_regions() (e820.h).
// Fails with a one-line message naming the file: not found, not a bzImage,
// protocol too old for the 64-bit entry, truncated, kernel or initrd does not
// fit in RAM below 3 GiB, command line too long.
Result<BootInfo> load_linux(GuestMemory& memory, const LinuxBootSpec& spec);

}  // namespace atl::vmm::x86
