// The CPUID a vCPU shows its guest: what KVM supports, with a topology that
// agrees with the MADT (one package, one core per vCPU, one thread per core,
// APIC ID = vCPU index) and the hypervisor bit set.
#pragma once

#include "hv/hypervisor.h"

#include <vector>

namespace atl::vmm::x86 {

// KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic, Documentation/virt/kvm/api.rst,
// KVM_GET_SUPPORTED_CPUID): the leaf has subleaves told apart by ECX.
inline constexpr uint32_t kCpuidFlagSignificantIndex = 1;

// `supported` is Hypervisor::supported_cpuid(). Changes, and why:
// - leaf 1: EBX[31:24] initial APIC ID = vcpu_index, EBX[23:16] logical
//   processor count = vcpu_count, EDX HTT when vcpu_count > 1, ECX[31]
//   hypervisor present (Linux then looks for KVM's leaves at 0x40000000).
// - leaf 4 (Intel): cores per package = vcpu_count; L1/L2 private to a core,
//   L3 and beyond shared by all vCPUs (so Linux builds one LLC domain).
// - leaves 0xB and 0x1F, when KVM lists them (KVM returns them empty): an SMT
//   level of 1 thread and a core level of vcpu_count, EDX = x2APIC ID = index.
// - AMD/Hygon: 0x80000008 ECX core count and APIC ID size, 0x8000001D cache
//   sharing like leaf 4, 0x8000001E extended APIC ID, core ID, 1 thread per core.
// - leaf 0x40000000 keeps KVM's feature leaves, with the "KVMKVMKVM" signature.
// Everything else is passed through: KVM already hides what it cannot virtualize.
// A vcpu_count of 0 is treated as 1.
std::vector<hv::CpuidEntry> build_cpuid(std::vector<hv::CpuidEntry> supported, unsigned vcpu_index, unsigned vcpu_count);

}  // namespace atl::vmm::x86
