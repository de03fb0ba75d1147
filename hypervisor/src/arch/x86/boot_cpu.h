// The vCPU state at the kernel's 64-bit entry point (Documentation/arch/x86/
// boot.rst, "64-bit Boot Protocol"): long mode with identity paging, flat
// __BOOT_CS/__BOOT_DS segments, RSI pointing at the zero page.
#pragma once

#include "arch/x86/bzimage.h"
#include "hv/hypervisor.h"
#include "memory/guest_memory.h"

#include <atoll/result.h>

#include <vector>

namespace atl::vmm::x86 {

// Selectors the boot protocol requires: __BOOT_CS and __BOOT_DS.
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;

// Prepares vCPU `vcpu.index()`. The boot vCPU (index 0) gets the page tables
// and GDT written into `memory` and its registers pointed at `boot.entry_point`;
// the others only get MSRs, FPU and LAPIC LINTs, since they wait for INIT/SIPI
// in KVM's in-kernel LAPIC and Linux starts them itself.
// Call after vcpu.set_cpuid() (KVM checks EFER and MSRs against the guest's
// CPUID) and after the interrupt controller exists (the LINTs live in the LAPIC).
Result<void> setup_boot_vcpu(hv::Vcpu& vcpu, GuestMemory& memory, const BootInfo& boot);

// The pieces, for tests and for other boot paths.
Result<void> write_identity_page_tables(GuestMemory& memory);  // PML4 at 0x9000, 4 GiB in 2 MiB pages
Result<void> write_boot_gdt(GuestMemory& memory);              // GDT at 0x500
hv::SpecialRegisters long_mode_special_registers(hv::SpecialRegisters current);
std::vector<hv::MsrEntry> boot_msrs();

}  // namespace atl::vmm::x86
