#include "arch/x86/boot_cpu.h"

#include "arch/x86/layout.h"

#include <array>

namespace atl::vmm::x86 {
namespace {

// Page table entry bits (Intel SDM vol. 3A, 4.5).
constexpr uint64_t kPresent = 1u << 0;
constexpr uint64_t kWritable = 1u << 1;
constexpr uint64_t kLargePage = 1u << 7;  // PS: a 2 MiB page in a page directory

constexpr uint64_t kCr0ProtectionEnable = 1u << 0;
constexpr uint64_t kCr0ExtensionType = 1u << 4;
constexpr uint64_t kCr0Paging = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLongModeEnable = 1u << 8;
constexpr uint64_t kEferLongModeActive = 1u << 10;
constexpr uint64_t kRflagsReserved = 1u << 1;  // always 1; interrupts stay off (IF = 0)

// GDT entries, descriptor format of SDM vol. 3A, 3.4.5: flat 4 GiB, G = 1.
constexpr uint64_t kNullDescriptor = 0;
constexpr uint64_t kCode64Descriptor = 0x00af'9b00'0000'ffff;  // L = 1, P, DPL 0, execute/read, accessed
constexpr uint64_t kData32Descriptor = 0x00cf'9300'0000'ffff;  // D/B = 1, P, DPL 0, read/write, accessed
constexpr std::array<uint64_t, 4> kGdt = {kNullDescriptor, kNullDescriptor, kCode64Descriptor, kData32Descriptor};

// MSRs (SDM vol. 4).
constexpr uint32_t kMsrIa32SysenterCs = 0x174;
constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
constexpr uint32_t kMsrIa32SysenterEip = 0x176;
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1u << 0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMtrrEnable = 1u << 11;
constexpr uint64_t kMtrrTypeWriteBack = 6;
constexpr uint32_t kMsrStar = 0xc000'0081;
constexpr uint32_t kMsrLstar = 0xc000'0082;
constexpr uint32_t kMsrCstar = 0xc000'0083;
constexpr uint32_t kMsrSyscallMask = 0xc000'0084;
constexpr uint32_t kMsrKernelGsBase = 0xc000'0102;

hv::Segment flat_segment(uint16_t selector, uint8_t type, bool long_mode) {
    hv::Segment segment;
    segment.base = 0;
    segment.limit = 0xffff'ffff;
    segment.selector = selector;
    segment.type = type;
    segment.present = 1;
    segment.dpl = 0;
    segment.db = long_mode ? 0 : 1;  // D must be 0 when L is 1
    segment.s = 1;
    segment.l = long_mode ? 1 : 0;
    segment.g = 1;
    return segment;
}

}  // namespace

Result<void> write_identity_page_tables(GuestMemory& memory) {
    constexpr uint64_t kDirectoryCount = kBootIdentityMapBytes / kGiB;
    constexpr uint64_t kEntriesPerTable = 512;
    std::array<uint64_t, kEntriesPerTable> table{};

    table[0] = kBootPdptAddress | kPresent | kWritable;
    if (!memory.write_object(GuestAddress{kBootPml4Address}, table))
        return make_error("boot page tables: guest RAM does not cover the PML4");

    table.fill(0);
    for (uint64_t i = 0; i < kDirectoryCount; ++i)
        table[i] = (kBootPageDirectoriesAddress + i * kPageSize) | kPresent | kWritable;
    if (!memory.write_object(GuestAddress{kBootPdptAddress}, table))
        return make_error("boot page tables: guest RAM does not cover the PDPT");

    for (uint64_t directory = 0; directory < kDirectoryCount; ++directory) {
        for (uint64_t i = 0; i < kEntriesPerTable; ++i)
            table[i] = (directory * kGiB + i * 2 * kMiB) | kPresent | kWritable | kLargePage;
        if (!memory.write_object(GuestAddress{kBootPageDirectoriesAddress + directory * kPageSize}, table))
            return make_error("boot page tables: guest RAM does not cover the page directories");
    }
    return {};
}

Result<void> write_boot_gdt(GuestMemory& memory) {
    if (!memory.write_object(GuestAddress{kBootGdtAddress}, kGdt)) return make_error("boot GDT: not in guest RAM");
    return {};
}

hv::SpecialRegisters long_mode_special_registers(hv::SpecialRegisters sregs) {
    sregs.gdt = {kBootGdtAddress, static_cast<uint16_t>(sizeof(kGdt) - 1)};
    // No IDT: interrupts are off until the kernel loads its own.
    sregs.idt = {0, 0};
    sregs.cs = flat_segment(kBootCodeSelector, 0xb, true);
    const hv::Segment data = flat_segment(kBootDataSelector, 0x3, false);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    // TR and LDTR keep KVM's reset values: VM entry needs a usable busy TSS,
    // which the reset state has, and the kernel loads its own.
    sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType | kCr0Paging;
    sregs.cr3 = kBootPml4Address;
    sregs.cr4 = kCr4Pae;
    sregs.efer = kEferLongModeEnable | kEferLongModeActive;
    return sregs;
}

std::vector<hv::MsrEntry> boot_msrs() {
    return {
        {kMsrIa32SysenterCs, 0},
        {kMsrIa32SysenterEsp, 0},
        {kMsrIa32SysenterEip, 0},
        {kMsrStar, 0},
        {kMsrLstar, 0},
        {kMsrCstar, 0},
        {kMsrSyscallMask, 0},
        {kMsrKernelGsBase, 0},
        // Firmware enables fast string operations; Linux warns when it finds them off.
        {kMsrIa32MiscEnable, kMiscEnableFastStrings},
        // Firmware enables the MTRRs with write-back as the default type. With
        // them disabled Linux also disables PAT, and write-combining mappings
        // (framebuffers) silently become uncached. Same value on every vCPU, as
        // Linux checks that the MTRRs agree.
        {kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack},
    };
}

Result<void> setup_boot_vcpu(hv::Vcpu& vcpu, GuestMemory& memory, const BootInfo& boot) {
    ATOLL_TRY(vcpu.set_msrs(boot_msrs()));
    ATOLL_TRY(vcpu.reset_fpu());
    ATOLL_TRY(vcpu.configure_local_apic_lints());
    if (vcpu.index() != 0) return {};

    ATOLL_TRY(write_identity_page_tables(memory));
    ATOLL_TRY(write_boot_gdt(memory));

    auto sregs = vcpu.special_registers();
    if (!sregs) return sregs.error();
    ATOLL_TRY(vcpu.set_special_registers(long_mode_special_registers(*sregs)));

    hv::Registers regs{};
    regs.rip = boot.entry_point.value;
    regs.rsi = boot.boot_params.value;
    regs.rsp = kBootStackTop;
    regs.rflags = kRflagsReserved;
    ATOLL_TRY(vcpu.set_registers(regs));
    return {};
}

}  // namespace atl::vmm::x86
