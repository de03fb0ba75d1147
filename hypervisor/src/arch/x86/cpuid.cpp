#include "arch/x86/cpuid.h"

#include <algorithm>

namespace atl::vmm::x86 {
namespace {

// Leaf numbers and fields: Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E.
constexpr uint32_t kLeafVendor = 0x0;
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParameters = 0x4;
constexpr uint32_t kLeafExtendedTopology = 0xb;
constexpr uint32_t kLeafExtendedTopologyV2 = 0x1f;
constexpr uint32_t kLeafKvmSignature = 0x4000'0000;
constexpr uint32_t kLeafAmdAddressSizes = 0x8000'0008;
constexpr uint32_t kLeafAmdCacheTopology = 0x8000'001d;
constexpr uint32_t kLeafAmdProcessorTopology = 0x8000'001e;

constexpr uint32_t kFeatureEdxHtt = 1u << 28;
constexpr uint32_t kFeatureEcxHypervisor = 1u << 31;

// Leaf 0xB/0x1F level types (ECX[15:8]).
constexpr uint32_t kLevelTypeInvalid = 0;
constexpr uint32_t kLevelTypeSmt = 1;
constexpr uint32_t kLevelTypeCore = 2;

// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (Documentation/virt/kvm/x86/cpuid.rst).
constexpr uint32_t kKvmSignatureEbx = 0x4b4d564b;
constexpr uint32_t kKvmSignatureEcx = 0x564b4d56;
constexpr uint32_t kKvmSignatureEdx = 0x0000004d;

// Leaf 0 EBX of "AuthenticAMD" and "HygonGenuine".
constexpr uint32_t kVendorAmdEbx = 0x68747541;
constexpr uint32_t kVendorHygonEbx = 0x6f677948;

// Bits an APIC ID needs for `count` cores: ceil(log2(count)).
uint32_t id_bits(unsigned count) {
    uint32_t bits = 0;
    while ((1u << bits) < count) ++bits;
    return bits;
}

// Leaf 4 and 0x8000001D share the layout of EAX[25:14] (sharing count - 1)
// and EAX[7:5] (cache level).
uint32_t with_cache_sharing(uint32_t eax, unsigned vcpu_count) {
    const uint32_t level = (eax >> 5) & 0x7;
    const uint32_t sharing = level >= 3 ? std::min(vcpu_count, 4096u) - 1 : 0;
    return (eax & ~(0xfffu << 14)) | (sharing << 14);
}

bool is_amd_like(const std::vector<hv::CpuidEntry>& entries) {
    for (const auto& entry : entries)
        if (entry.function == kLeafVendor) return entry.ebx == kVendorAmdEbx || entry.ebx == kVendorHygonEbx;
    return false;
}

std::vector<hv::CpuidEntry> topology_leaf(uint32_t function, unsigned vcpu_index, unsigned vcpu_count) {
    const uint32_t x2apic_id = vcpu_index;
    hv::CpuidEntry smt{function, 0, kCpuidFlagSignificantIndex, 0, 1, (kLevelTypeSmt << 8) | 0, x2apic_id};
    hv::CpuidEntry core{function, 1, kCpuidFlagSignificantIndex, id_bits(vcpu_count), vcpu_count,
                        (kLevelTypeCore << 8) | 1, x2apic_id};
    // The first subleaf with level type 0 ends the enumeration.
    hv::CpuidEntry end{function, 2, kCpuidFlagSignificantIndex, 0, 0, (kLevelTypeInvalid << 8) | 2, x2apic_id};
    return {smt, core, end};
}

}  // namespace

std::vector<hv::CpuidEntry> build_cpuid(std::vector<hv::CpuidEntry> supported, unsigned vcpu_index, unsigned vcpu_count) {
    vcpu_count = std::max(vcpu_count, 1u);
    const bool amd = is_amd_like(supported);
    bool has_topology_leaf = false, has_topology_leaf_v2 = false;

    std::vector<hv::CpuidEntry> result;
    result.reserve(supported.size() + 6);
    for (auto entry : supported) {
        switch (entry.function) {
        case kLeafFeatures:
            entry.ebx = (entry.ebx & 0x0000ffff) | (std::min(vcpu_index, 255u) << 24) | (std::min(vcpu_count, 255u) << 16);
            if (vcpu_count > 1) entry.edx |= kFeatureEdxHtt;
            else entry.edx &= ~kFeatureEdxHtt;
            entry.ecx |= kFeatureEcxHypervisor;
            break;
        case kLeafCacheParameters:
            if ((entry.eax & 0x1f) != 0) {  // a cache, not the terminating null subleaf
                entry.eax = with_cache_sharing(entry.eax, vcpu_count);
                entry.eax = (entry.eax & ~(0x3fu << 26)) | ((std::min(vcpu_count, 64u) - 1) << 26);
            }
            break;
        case kLeafExtendedTopology:
            has_topology_leaf = true;
            continue;  // replaced below
        case kLeafExtendedTopologyV2:
            has_topology_leaf_v2 = true;
            continue;
        case kLeafKvmSignature:
            entry.ebx = kKvmSignatureEbx;
            entry.ecx = kKvmSignatureEcx;
            entry.edx = kKvmSignatureEdx;
            break;
        case kLeafAmdAddressSizes:
            // ECX[7:0] NC = cores - 1, ECX[15:12] ApicIdSize; reserved on Intel.
            if (amd) entry.ecx = (entry.ecx & ~0xf0ffu) | (id_bits(vcpu_count) << 12) | (std::min(vcpu_count, 256u) - 1);
            break;
        case kLeafAmdCacheTopology:
            if (amd && (entry.eax & 0x1f) != 0) entry.eax = with_cache_sharing(entry.eax, vcpu_count);
            break;
        case kLeafAmdProcessorTopology:
            if (amd) {
                entry.eax = vcpu_index;                 // extended APIC ID
                entry.ebx = vcpu_index & 0xff;          // core ID; ThreadsPerCore - 1 = 0
                entry.ecx = 0;                          // node 0, one node per package
                entry.edx = 0;
            }
            break;
        default:
            break;
        }
        result.push_back(entry);
    }
    if (has_topology_leaf) {
        auto leaf = topology_leaf(kLeafExtendedTopology, vcpu_index, vcpu_count);
        result.insert(result.end(), leaf.begin(), leaf.end());
    }
    if (has_topology_leaf_v2) {
        auto leaf = topology_leaf(kLeafExtendedTopologyV2, vcpu_index, vcpu_count);
        result.insert(result.end(), leaf.begin(), leaf.end());
    }
    return result;
}

}  // namespace atl::vmm::x86
