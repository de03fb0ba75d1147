// The guest's physical address map and port assignments: one place that the
// boot loader, the e820 map, the ACPI tables and the device wiring all read,
// so that what the firmware tables promise is what the VMM provides.
#pragma once

#include <algorithm>
#include <cstdint>

namespace atl::vmm::x86 {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;
inline constexpr uint64_t kPageSize = 4 * kKiB;

// --- Conventional memory (below 1 MiB): boot structures ---------------------
// Free low RAM in the PC map; the BIOS data area (0x400-0x4FF) is left alone.
inline constexpr uint64_t kBootGdtAddress = 0x500;
// The zero page (struct boot_params), boot protocol "64-bit boot protocol".
inline constexpr uint64_t kBootParamsAddress = 0x7000;
// [0x8000, 0x9000) is the boot stack; the decompressor switches to its own at once.
inline constexpr uint64_t kBootStackTop = 0x8ff0;
// Identity map of the first 4 GiB with 2 MiB pages: PML4, one PDPT, four PDs.
inline constexpr uint64_t kBootPml4Address = 0x9000;
inline constexpr uint64_t kBootPdptAddress = 0xa000;
inline constexpr uint64_t kBootPageDirectoriesAddress = 0xb000;  // 4 pages, up to 0xefff
inline constexpr uint64_t kBootIdentityMapBytes = 4 * kGiB;
inline constexpr uint64_t kCommandLineAddress = 0x20000;
inline constexpr uint64_t kCommandLineMaxBytes = 64 * kKiB;  // including the NUL
// Extended BIOS data area and BIOS ROM area: reserved in the e820 map.
inline constexpr uint64_t kEbdaStart = 0x9fc00;
// ACPI tables; Linux finds the RSDP by scanning 0xE0000-0xFFFFF (ACPI 6.5, 5.2.5.1).
inline constexpr uint64_t kAcpiTablesStart = 0xe0000;
inline constexpr uint64_t kAcpiTablesEnd = 0x100000;
inline constexpr uint64_t kHighMemoryStart = 1 * kMiB;

// Where the protected-mode kernel of a bzImage is copied (boot protocol: "load
// the protected-mode code at 0x100000"). A relocatable kernel decompresses
// itself to its pref_address from there.
inline constexpr uint64_t kKernelLoadAddress = 0x100000;

// --- The 32-bit hole [3 GiB, 4 GiB) -----------------------------------------
inline constexpr uint64_t kLowRamMaxBytes = 3 * kGiB;
inline constexpr uint64_t kMmio32HoleStart = kLowRamMaxBytes;
inline constexpr uint64_t kPciMmio32Start = 0xc000'0000;
inline constexpr uint64_t kPciMmio32SizeBytes = 0x2000'0000;  // up to the ECAM
// PCIe ECAM (PCIe 4.0, 7.2.2): 1 MiB per bus. The window holds 256 buses but
// Atoll has bus 0 only, so MCFG and the motherboard resources declare 1 MiB.
inline constexpr uint64_t kPcieEcamStart = 0xe000'0000;
inline constexpr uint64_t kPcieEcamWindowBytes = 256 * kMiB;
inline constexpr uint64_t kPcieEcamBytesPerBus = 1 * kMiB;
inline constexpr uint8_t kPciLastBus = 0;
inline constexpr uint64_t kIoapicAddress = 0xfec0'0000;
inline constexpr uint64_t kLocalApicAddress = 0xfee0'0000;
inline constexpr uint64_t kHighRamStart = 4 * kGiB;

// --- Above RAM: the 64-bit PCI MMIO window ------------------------------------
inline constexpr uint64_t kPciMmio64MinStart = 64 * kGiB;
inline constexpr uint64_t kPciMmio64Alignment = 1 * kGiB;
inline constexpr uint64_t kPciMmio64SizeBytes = 64 * kGiB;

constexpr uint64_t low_ram_bytes(uint64_t ram_bytes) { return std::min(ram_bytes, kLowRamMaxBytes); }
constexpr uint64_t high_ram_bytes(uint64_t ram_bytes) { return ram_bytes - low_ram_bytes(ram_bytes); }

struct AddressRange {
    uint64_t base = 0;
    uint64_t size_bytes = 0;
    constexpr uint64_t end() const { return base + size_bytes; }
};

// Starts at 64 GiB, or above the end of RAM for guests with more than 60 GiB.
constexpr AddressRange pci_mmio64_window(uint64_t ram_bytes) {
    const uint64_t ram_end = kHighRamStart + high_ram_bytes(ram_bytes);
    const uint64_t aligned = (ram_end + kPciMmio64Alignment - 1) & ~(kPciMmio64Alignment - 1);
    return {std::max(aligned, kPciMmio64MinStart), kPciMmio64SizeBytes};
}

// --- Interrupts -----------------------------------------------------------------
inline constexpr unsigned kIoapicPinCount = 24;  // KVM's in-kernel IOAPIC
inline constexpr unsigned kSciIrq = 9;           // ACPI SCI, level, active high (MADT override)
inline constexpr unsigned kCom1Irq = 4;

// --- I/O ports ------------------------------------------------------------------
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint16_t kCom1PortCount = 8;
inline constexpr uint16_t kI8042CommandPort = 0x64;
// ACPI fixed hardware (ACPI 6.5, 4.8): PM1a event block (status + enable),
// PM1a control block, then the PM timer.
inline constexpr uint16_t kAcpiPmPortBase = 0x600;
inline constexpr uint16_t kAcpiPmPortCount = 12;
inline constexpr uint16_t kPm1aEventBlockPort = 0x600;
inline constexpr uint8_t kPm1EventBlockBytes = 4;
inline constexpr uint16_t kPm1aControlBlockPort = 0x604;
inline constexpr uint8_t kPm1ControlBlockBytes = 2;
inline constexpr uint16_t kPmTimerPort = 0x608;
inline constexpr uint8_t kPmTimerBytes = 4;
// S5 (soft off): the SLP_TYP value the DSDT's \_S5 package names.
inline constexpr uint8_t kSleepTypeSoftOff = 5;
// PCI configuration mechanism #1 (CONFIG_ADDRESS/CONFIG_DATA), and the reset
// control register that shares its range (FADT RESET_REG).
inline constexpr uint16_t kPciConfigPortBase = 0xcf8;
inline constexpr uint16_t kPciConfigPortCount = 8;
inline constexpr uint16_t kResetControlPort = 0xcf9;
inline constexpr uint8_t kResetControlValue = 0x06;  // SYS_RST | RST_CPU: hard reset

}  // namespace atl::vmm::x86
