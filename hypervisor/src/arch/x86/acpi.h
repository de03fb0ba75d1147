// The ACPI tables that describe the machine to the guest (ACPI 6.5,
// chapter 5): RSDP, XSDT, FADT, FACS, MADT, MCFG and a DSDT, written into
// the BIOS area at 0xE0000 where Linux scans for the RSDP.
#pragma once

#include "memory/guest_memory.h"

#include <atoll/result.h>

#include <cstdint>
#include <vector>

namespace atl::vmm::x86 {

struct AcpiSpec {
    unsigned vcpu_count = 1;  // 1..254: xAPIC IDs, the last ID goes to the IOAPIC
    uint64_t ram_bytes = 0;   // places the 64-bit PCI window above RAM
    // A CMOS RTC at ports 0x70/0x71; without one the FADT says so and Linux
    // keeps its wall clock from kvmclock.
    bool cmos_rtc_present = false;
};

inline constexpr unsigned kAcpiMaxVcpus = 254;

// Writes the tables and returns the RSDP's guest physical address (for
// boot_params.acpi_rsdp_addr).
Result<uint64_t> write_acpi_tables(GuestMemory& memory, const AcpiSpec& spec);

// The DSDT alone, header included: \_SB.PCI0 (host bridge and its windows),
// \_SB.COM1, \_SB.MRES (motherboard resources: the ECAM), a processor device
// per vCPU and \_S5. For tests and table dumps.
std::vector<uint8_t> build_dsdt(const AcpiSpec& spec);

}  // namespace atl::vmm::x86
