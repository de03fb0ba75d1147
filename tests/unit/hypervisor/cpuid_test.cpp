// build_cpuid: the topology each vCPU reports (one package, a core per vCPU,
// APIC ID = index) and what passes through untouched, on Intel- and AMD-like
// inputs shaped as KVM_GET_SUPPORTED_CPUID returns them.
#include "arch/x86/cpuid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>

namespace atl::vmm::x86 {
namespace {

using hv::CpuidEntry;

constexpr uint32_t kSignificantIndex = kCpuidFlagSignificantIndex;

// Leaf 4 / 0x8000001D EAX for a cache: type 1 (data) or 3 (unified), level,
// and host sharing fields that build_cpuid must replace.
uint32_t cache_eax(uint32_t level, uint32_t type) { return (0x3fu << 26) | (0x7u << 14) | (level << 5) | type; }

std::vector<CpuidEntry> intel_supported() {
    return {
        {0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69},  // GenuineIntel
        {0x1, 0, 0, 0x000906ea, 0x00100800, 0x7ffafbff, 0x0f8bfbff},
        {0x4, 0, kSignificantIndex, cache_eax(1, 1), 0x01c0003f, 0x3f, 0},
        {0x4, 1, kSignificantIndex, cache_eax(1, 2), 0x01c0003f, 0x3f, 0},
        {0x4, 2, kSignificantIndex, cache_eax(2, 3), 0x01c0003f, 0x3ff, 0},
        {0x4, 3, kSignificantIndex, cache_eax(3, 3), 0x03c0003f, 0x3fff, 6},
        {0x4, 4, kSignificantIndex, 0, 0, 0, 0},
        {0x7, 0, kSignificantIndex, 0, 0x029c6fbf, 0x40000000, 0xbc000400},
        {0xb, 0, kSignificantIndex, 0, 0, 0, 0},  // KVM leaves it empty
        {0x1f, 0, kSignificantIndex, 0, 0, 0, 0},
        {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d},
        {0x40000001, 0, 0, 0x01007afb, 0, 0, 0},
        {0x80000000, 0, 0, 0x80000008, 0, 0, 0},
        {0x80000008, 0, 0, 0x00003027, 0, 0, 0},
    };
}

std::vector<CpuidEntry> amd_supported() {
    return {
        {0x0, 0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65},  // AuthenticAMD
        {0x1, 0, 0, 0x00a50f00, 0x00100800, 0x7ef8320b, 0x178bfbff},
        {0xb, 0, kSignificantIndex, 0, 0, 0, 0},
        {0x40000000, 0, 0, 0x40000001, 0, 0, 0},  // signature missing: gets restored
        {0x80000000, 0, 0, 0x80000021, 0x68747541, 0x444d4163, 0x69746e65},
        {0x80000008, 0, 0, 0x00003030, 0x0, 0x0000700f, 0},
        {0x8000001d, 0, kSignificantIndex, cache_eax(1, 1), 0x01c0003f, 0x3f, 0},
        {0x8000001d, 1, kSignificantIndex, cache_eax(3, 3), 0x03c0003f, 0x7fff, 1},
        {0x8000001d, 2, kSignificantIndex, 0, 0, 0, 0},
        {0x8000001e, 0, 0, 0x12, 0x0107, 0x0300, 0},
    };
}

std::optional<CpuidEntry> find(const std::vector<CpuidEntry>& entries, uint32_t function, uint32_t index = 0) {
    for (const auto& entry : entries)
        if (entry.function == function && entry.index == index) return entry;
    return std::nullopt;
}

size_t count(const std::vector<CpuidEntry>& entries, uint32_t function) {
    size_t n = 0;
    for (const auto& entry : entries) n += entry.function == function;
    return n;
}

TEST(CpuidTest, LeafOneCarriesApicIdCountHttAndHypervisorBit) {
    const auto cpuid = build_cpuid(intel_supported(), 2, 4);
    const auto leaf = find(cpuid, 0x1);
    ASSERT_TRUE(leaf);
    EXPECT_EQ(leaf->ebx >> 24, 2u);            // initial APIC ID
    EXPECT_EQ((leaf->ebx >> 16) & 0xff, 4u);   // logical processors
    EXPECT_EQ(leaf->ebx & 0xffff, 0x0800u);    // CLFLUSH size kept
    EXPECT_TRUE(leaf->edx & (1u << 28));       // HTT
    EXPECT_TRUE(leaf->ecx & (1u << 31));       // hypervisor
    EXPECT_EQ(leaf->eax, 0x000906eau);         // signature untouched
    EXPECT_EQ(leaf->ecx & 0x7fffffff, 0x7ffafbffu);
}

TEST(CpuidTest, SingleVcpuHasNoHtt) {
    const auto leaf = find(build_cpuid(intel_supported(), 0, 1), 0x1);
    ASSERT_TRUE(leaf);
    EXPECT_FALSE(leaf->edx & (1u << 28));
    EXPECT_EQ((leaf->ebx >> 16) & 0xff, 1u);
}

TEST(CpuidTest, ZeroVcpusCountsAsOne) {
    const auto leaf = find(build_cpuid(intel_supported(), 0, 0), 0x1);
    ASSERT_TRUE(leaf);
    EXPECT_EQ((leaf->ebx >> 16) & 0xff, 1u);
}

TEST(CpuidTest, LeafFourSharesOnlyTheLastLevelCache) {
    const auto cpuid = build_cpuid(intel_supported(), 0, 6);
    for (uint32_t subleaf = 0; subleaf < 4; ++subleaf) {
        const auto leaf = find(cpuid, 0x4, subleaf);
        ASSERT_TRUE(leaf);
        EXPECT_EQ(leaf->eax >> 26, 5u) << subleaf;  // cores per package - 1
        const uint32_t level = (leaf->eax >> 5) & 7;
        EXPECT_EQ((leaf->eax >> 14) & 0xfff, level >= 3 ? 5u : 0u) << subleaf;
        EXPECT_EQ(leaf->eax & 0x3ff, intel_supported()[2 + subleaf].eax & 0x3ff);  // type, level kept
    }
    EXPECT_EQ(find(cpuid, 0x4, 4)->eax, 0u);  // the terminator stays null
}

TEST(CpuidTest, ExtendedTopologyLeafDescribesOneThreadPerCore) {
    const auto cpuid = build_cpuid(intel_supported(), 3, 6);
    for (uint32_t function : {0xbu, 0x1fu}) {
        EXPECT_EQ(count(cpuid, function), 3u);
        const auto smt = find(cpuid, function, 0), core = find(cpuid, function, 1), end = find(cpuid, function, 2);
        ASSERT_TRUE(smt && core && end);
        EXPECT_EQ(smt->eax, 0u);
        EXPECT_EQ(smt->ebx, 1u);
        EXPECT_EQ(smt->ecx, 0x100u);          // level 0, type SMT
        EXPECT_EQ(core->eax, 3u);             // 6 cores need 3 bits of APIC ID
        EXPECT_EQ(core->ebx, 6u);
        EXPECT_EQ(core->ecx, 0x201u);         // level 1, type core
        EXPECT_EQ(end->ecx & 0xff00, 0u);     // type invalid ends the list
        EXPECT_EQ(end->ebx, 0u);
        for (const auto& leaf : {*smt, *core, *end}) {
            EXPECT_EQ(leaf.edx, 3u);  // x2APIC ID
            EXPECT_EQ(leaf.flags & kSignificantIndex, kSignificantIndex);
        }
    }
}

TEST(CpuidTest, TopologyLeavesAreAddedOnlyWhenKvmListsThem) {
    auto supported = intel_supported();
    std::erase_if(supported, [](const CpuidEntry& e) { return e.function == 0x1f; });
    const auto cpuid = build_cpuid(supported, 0, 2);
    EXPECT_EQ(count(cpuid, 0xb), 3u);
    EXPECT_EQ(count(cpuid, 0x1f), 0u);
}

TEST(CpuidTest, ApicIdsAgreeAcrossLeavesForEveryVcpu) {
    for (unsigned index = 0; index < 8; ++index) {
        const auto cpuid = build_cpuid(intel_supported(), index, 8);
        EXPECT_EQ(find(cpuid, 0x1)->ebx >> 24, index);
        EXPECT_EQ(find(cpuid, 0xb, 0)->edx, index);
        EXPECT_EQ(find(cpuid, 0xb, 1)->edx, index);
    }
}

TEST(CpuidTest, IntelReservedAmdFieldsStayUntouched) {
    const auto cpuid = build_cpuid(intel_supported(), 0, 4);
    EXPECT_EQ(find(cpuid, 0x80000008)->ecx, 0u);
    EXPECT_EQ(find(cpuid, 0x80000008)->eax, 0x3027u);
}

TEST(CpuidTest, OtherLeavesPassThrough) {
    const auto supported = intel_supported();
    const auto cpuid = build_cpuid(supported, 1, 4);
    for (uint32_t function : {0x0u, 0x7u, 0x40000001u, 0x80000000u}) {
        const auto before = find(supported, function), after = find(cpuid, function);
        ASSERT_TRUE(before && after);
        EXPECT_EQ(before->eax, after->eax) << std::hex << function;
        EXPECT_EQ(before->ebx, after->ebx) << std::hex << function;
        EXPECT_EQ(before->ecx, after->ecx) << std::hex << function;
        EXPECT_EQ(before->edx, after->edx) << std::hex << function;
        EXPECT_EQ(before->flags, after->flags) << std::hex << function;
    }
}

TEST(CpuidTest, KvmSignatureIsKept) {
    for (const auto& supported : {intel_supported(), amd_supported()}) {
        const auto leaf = find(build_cpuid(supported, 0, 2), 0x40000000);
        ASSERT_TRUE(leaf);
        char signature[13] = {};
        std::memcpy(signature, &leaf->ebx, 4);
        std::memcpy(signature + 4, &leaf->ecx, 4);
        std::memcpy(signature + 8, &leaf->edx, 4);
        EXPECT_STREQ(signature, "KVMKVMKVM");
        EXPECT_EQ(leaf->eax, 0x40000001u);
    }
}

TEST(CpuidTest, AmdCoreCountAndTopologyExtensions) {
    const auto cpuid = build_cpuid(amd_supported(), 5, 6);
    const auto sizes = find(cpuid, 0x80000008);
    ASSERT_TRUE(sizes);
    EXPECT_EQ(sizes->ecx & 0xff, 5u);          // NC = cores - 1
    EXPECT_EQ((sizes->ecx >> 12) & 0xf, 3u);   // ApicIdSize
    EXPECT_EQ(sizes->eax, 0x3030u);

    const auto topology = find(cpuid, 0x8000001e);
    ASSERT_TRUE(topology);
    EXPECT_EQ(topology->eax, 5u);               // extended APIC ID
    EXPECT_EQ(topology->ebx & 0xff, 5u);        // core ID
    EXPECT_EQ((topology->ebx >> 8) & 0xff, 0u); // one thread per core
    EXPECT_EQ(topology->ecx, 0u);               // node 0 of 1

    const auto l1 = find(cpuid, 0x8000001d, 0), l3 = find(cpuid, 0x8000001d, 1);
    ASSERT_TRUE(l1 && l3);
    EXPECT_EQ((l1->eax >> 14) & 0xfff, 0u);
    EXPECT_EQ((l3->eax >> 14) & 0xfff, 5u);
    EXPECT_EQ(find(cpuid, 0xb, 1)->ebx, 6u);
}

}  // namespace
}  // namespace atl::vmm::x86
