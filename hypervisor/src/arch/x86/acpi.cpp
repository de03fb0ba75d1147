#include "arch/x86/acpi.h"

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace atl::vmm::x86 {
namespace {

using Bytes = std::vector<uint8_t>;

// Identification in every table header (ACPI 6.5, 5.2.6).
constexpr std::string_view kOemId = "ATOLL ";       // 6 bytes
constexpr std::string_view kOemTableId = "ATOLLVM ";  // 8 bytes
constexpr uint32_t kOemRevision = 1;
constexpr std::string_view kCreatorId = "ATOL";
constexpr uint32_t kCreatorRevision = 1;
constexpr size_t kHeaderBytes = 36;

// Table revisions: ACPI 6.3 layouts, which Linux 4.x and later all parse.
constexpr uint8_t kXsdtRevision = 1;
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorVersion = 3;
constexpr uint8_t kMadtRevision = 5;
constexpr uint8_t kMcfgRevision = 1;
constexpr uint8_t kDsdtRevision = 2;  // 2 and up: AML integers are 64 bits wide
constexpr uint8_t kRsdpRevision = 2;  // ACPI 2.0+ RSDP with the XSDT address
constexpr uint8_t kFacsVersion = 2;

void put8(Bytes& b, size_t offset, uint8_t value) { b[offset] = value; }
void put16(Bytes& b, size_t offset, uint16_t value) { std::memcpy(&b[offset], &value, 2); }
void put32(Bytes& b, size_t offset, uint32_t value) { std::memcpy(&b[offset], &value, 4); }
void put64(Bytes& b, size_t offset, uint64_t value) { std::memcpy(&b[offset], &value, 8); }
void put_text(Bytes& b, size_t offset, std::string_view text) { std::memcpy(&b[offset], text.data(), text.size()); }

void append8(Bytes& b, uint8_t value) { b.push_back(value); }
void append16(Bytes& b, uint16_t value) { for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(value >> (8 * i))); }
void append32(Bytes& b, uint32_t value) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(value >> (8 * i))); }
void append64(Bytes& b, uint64_t value) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(value >> (8 * i))); }

uint8_t checksum_of(const uint8_t* bytes, size_t length) {
    uint8_t sum = 0;
    for (size_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
    return static_cast<uint8_t>(-sum);
}

// A System Description Table header with length and checksum left at zero.
Bytes table_header(std::string_view signature, uint8_t revision) {
    Bytes table(kHeaderBytes, 0);
    put_text(table, 0, signature);
    put8(table, 8, revision);
    put_text(table, 10, kOemId);
    put_text(table, 16, kOemTableId);
    put32(table, 24, kOemRevision);
    put_text(table, 28, kCreatorId);
    put32(table, 32, kCreatorRevision);
    return table;
}

// Fills in the length and makes the bytes sum to zero.
Bytes finish_table(Bytes table) {
    put32(table, 4, static_cast<uint32_t>(table.size()));
    put8(table, 9, 0);
    put8(table, 9, checksum_of(table.data(), table.size()));
    return table;
}

// Generic Address Structure (5.2.3.2).
enum class AddressSpace : uint8_t { SystemMemory = 0, SystemIo = 1 };
enum class AccessSize : uint8_t { Undefined = 0, Byte = 1, Word = 2, Dword = 3, Qword = 4 };

void put_gas(Bytes& b, size_t offset, AddressSpace space, uint8_t bit_width, AccessSize access, uint64_t address) {
    put8(b, offset, static_cast<uint8_t>(space));
    put8(b, offset + 1, bit_width);
    put8(b, offset + 2, 0);  // bit offset
    put8(b, offset + 3, static_cast<uint8_t>(access));
    put64(b, offset + 4, address);
}

// --- FADT (5.2.9) -----------------------------------------------------------------
namespace fadt {
constexpr size_t kFirmwareCtrl = 36;
constexpr size_t kDsdt = 40;
constexpr size_t kPreferredPmProfile = 45;
constexpr size_t kSciInt = 46;
constexpr size_t kSmiCmd = 48;
constexpr size_t kPm1aEvtBlk = 56;
constexpr size_t kPm1aCntBlk = 64;
constexpr size_t kPmTmrBlk = 76;
constexpr size_t kPm1EvtLen = 88;
constexpr size_t kPm1CntLen = 89;
constexpr size_t kPmTmrLen = 91;
constexpr size_t kPLvl2Lat = 96;
constexpr size_t kPLvl3Lat = 98;
constexpr size_t kCentury = 108;
constexpr size_t kIapcBootArch = 109;
constexpr size_t kFlags = 112;
constexpr size_t kResetReg = 116;
constexpr size_t kResetValue = 128;
constexpr size_t kMinorVersion = 131;
constexpr size_t kXDsdt = 140;
constexpr size_t kXPm1aEvtBlk = 148;
constexpr size_t kXPm1aCntBlk = 172;
constexpr size_t kXPmTmrBlk = 208;
constexpr size_t kHypervisorVendorId = 268;
constexpr size_t kLength = 276;

// Fixed feature flags (table 5.10).
constexpr uint32_t kWbinvd = 1u << 0;          // required of ACPI-compatible systems
constexpr uint32_t kProcC1 = 1u << 2;          // HLT works on every CPU
constexpr uint32_t kSlpButton = 1u << 5;       // no fixed sleep button
constexpr uint32_t kFixRtc = 1u << 6;          // no RTC wake status in PM1
constexpr uint32_t kTmrValExt = 1u << 8;       // the PM timer counts 32 bits
constexpr uint32_t kResetRegSup = 1u << 10;
// The power button is the fixed-feature one (PWR_BUTTON flag clear): PM1
// PWRBTN_STS/EN, which AcpiPmDevice implements.

// IA-PC boot architecture flags (table 5.11). The 8042 flag stays clear: there
// is no keyboard controller (only a reset stub), so Linux does not probe it.
constexpr uint16_t kLegacyDevices = 1u << 0;  // COM1, PIT, PIC on the "ISA bus"
constexpr uint16_t kVgaNotPresent = 1u << 2;
constexpr uint16_t kCmosRtcNotPresent = 1u << 5;

// P_LVL2_LAT > 100 and P_LVL3_LAT > 1000 say "C2/C3 not supported".
constexpr uint16_t kC2Unsupported = 101;
constexpr uint16_t kC3Unsupported = 1001;
constexpr uint8_t kRtcCenturyRegister = 0x32;
}  // namespace fadt

Bytes build_fadt(const AcpiSpec& spec, uint64_t dsdt_address, uint64_t facs_address) {
    Bytes table = table_header("FACP", kFadtRevision);
    table.resize(fadt::kLength, 0);
    put32(table, fadt::kFirmwareCtrl, static_cast<uint32_t>(facs_address));
    put32(table, fadt::kDsdt, static_cast<uint32_t>(dsdt_address));
    put8(table, fadt::kPreferredPmProfile, 0);  // unspecified
    put16(table, fadt::kSciInt, kSciIrq);
    // SMI_CMD = 0: no SMI command port, so the OS finds ACPI mode already
    // enabled (SCI_EN reads 1) and never tries to switch (5.2.9, SMI_CMD).
    put32(table, fadt::kSmiCmd, 0);
    put32(table, fadt::kPm1aEvtBlk, kPm1aEventBlockPort);
    put32(table, fadt::kPm1aCntBlk, kPm1aControlBlockPort);
    put32(table, fadt::kPmTmrBlk, kPmTimerPort);
    put8(table, fadt::kPm1EvtLen, kPm1EventBlockBytes);
    put8(table, fadt::kPm1CntLen, kPm1ControlBlockBytes);
    put8(table, fadt::kPmTmrLen, kPmTimerBytes);
    put16(table, fadt::kPLvl2Lat, fadt::kC2Unsupported);
    put16(table, fadt::kPLvl3Lat, fadt::kC3Unsupported);
    uint16_t boot_arch = fadt::kLegacyDevices | fadt::kVgaNotPresent;
    if (spec.cmos_rtc_present) put8(table, fadt::kCentury, fadt::kRtcCenturyRegister);
    else boot_arch |= fadt::kCmosRtcNotPresent;
    put16(table, fadt::kIapcBootArch, boot_arch);
    put32(table, fadt::kFlags, fadt::kWbinvd | fadt::kProcC1 | fadt::kSlpButton | fadt::kFixRtc | fadt::kTmrValExt |
                                   fadt::kResetRegSup);
    put_gas(table, fadt::kResetReg, AddressSpace::SystemIo, 8, AccessSize::Byte, kResetControlPort);
    put8(table, fadt::kResetValue, kResetControlValue);
    put8(table, fadt::kMinorVersion, kFadtMinorVersion);
    // X_FIRMWARE_CTRL stays 0: with both set, ACPICA maps the FACS twice.
    put64(table, fadt::kXDsdt, dsdt_address);
    // The X_ blocks repeat the legacy ones; their bit widths must be 8 times
    // the legacy lengths or ACPICA warns about a mismatch.
    put_gas(table, fadt::kXPm1aEvtBlk, AddressSpace::SystemIo, kPm1EventBlockBytes * 8, AccessSize::Word,
            kPm1aEventBlockPort);
    put_gas(table, fadt::kXPm1aCntBlk, AddressSpace::SystemIo, kPm1ControlBlockBytes * 8, AccessSize::Word,
            kPm1aControlBlockPort);
    put_gas(table, fadt::kXPmTmrBlk, AddressSpace::SystemIo, kPmTimerBytes * 8, AccessSize::Dword, kPmTimerPort);
    put_text(table, fadt::kHypervisorVendorId, "ATOLLVMM");
    return finish_table(std::move(table));
}

// --- FACS (5.2.10): no checksum, 64-byte aligned ------------------------------------
constexpr size_t kFacsBytes = 64;
constexpr uint64_t kFacsAlignment = 64;

Bytes build_facs() {
    Bytes facs(kFacsBytes, 0);
    put_text(facs, 0, "FACS");
    put32(facs, 4, kFacsBytes);
    put8(facs, 32, kFacsVersion);
    return facs;
}

// --- MADT (5.2.12) ------------------------------------------------------------------
namespace madt {
constexpr uint32_t kPcatCompat = 1u << 0;  // dual 8259s present: mask them when using the IOAPIC
constexpr uint8_t kTypeLocalApic = 0;
constexpr uint8_t kTypeIoApic = 1;
constexpr uint8_t kTypeInterruptSourceOverride = 2;
constexpr uint8_t kTypeLocalApicNmi = 4;
constexpr uint32_t kLocalApicEnabled = 1u << 0;
// MPS INTI flags (table 5.26): polarity bits 1-0, trigger mode bits 3-2.
constexpr uint16_t kActiveHigh = 0x1;
constexpr uint16_t kEdgeTriggered = 0x1 << 2;
constexpr uint16_t kLevelTriggered = 0x3 << 2;
constexpr uint16_t kConforming = 0;
constexpr uint8_t kAllProcessors = 0xff;
}  // namespace madt

Bytes build_madt(const AcpiSpec& spec) {
    Bytes table = table_header("APIC", kMadtRevision);
    append32(table, static_cast<uint32_t>(kLocalApicAddress));
    append32(table, madt::kPcatCompat);
    // Processor UID = APIC ID = vCPU index; the DSDT's ACPI0007 _UIDs match.
    for (unsigned cpu = 0; cpu < spec.vcpu_count; ++cpu) {
        append8(table, madt::kTypeLocalApic);
        append8(table, 8);
        append8(table, static_cast<uint8_t>(cpu));
        append8(table, static_cast<uint8_t>(cpu));
        append32(table, madt::kLocalApicEnabled);
    }
    append8(table, madt::kTypeIoApic);
    append8(table, 12);
    append8(table, static_cast<uint8_t>(spec.vcpu_count));  // the first ID after the CPUs'
    append8(table, 0);
    append32(table, static_cast<uint32_t>(kIoapicAddress));
    append32(table, 0);  // GSI base
    // ISA IRQ 0 (the PIT) arrives at IOAPIC pin 2, as on PC chipsets where
    // pin 0 carries the 8259's INTR.
    auto override_irq = [&](uint8_t irq, uint32_t gsi, uint16_t flags) {
        append8(table, madt::kTypeInterruptSourceOverride);
        append8(table, 10);
        append8(table, 0);  // bus: ISA
        append8(table, irq);
        append32(table, gsi);
        append16(table, flags);
    };
    override_irq(0, 2, madt::kActiveHigh | madt::kEdgeTriggered);
    // The SCI is level triggered (ACPI 6.5, 4.8.2.1.1); active high on our IOAPIC.
    override_irq(kSciIrq, kSciIrq, madt::kActiveHigh | madt::kLevelTriggered);
    append8(table, madt::kTypeLocalApicNmi);
    append8(table, 6);
    append8(table, madt::kAllProcessors);
    append16(table, madt::kConforming);
    append8(table, 1);  // LINT1
    return finish_table(std::move(table));
}

// --- MCFG (PCI Firmware Specification 3.2, 4.1.2) -------------------------------------
Bytes build_mcfg() {
    Bytes table = table_header("MCFG", kMcfgRevision);
    append64(table, 0);  // reserved
    append64(table, kPcieEcamStart);
    append16(table, 0);  // PCI segment group
    append8(table, 0);   // start bus
    append8(table, kPciLastBus);
    append32(table, 0);  // reserved
    return finish_table(std::move(table));
}

// --- XSDT (5.2.8) and RSDP (5.2.5.3) -----------------------------------------------------
Bytes build_xsdt(const std::vector<uint64_t>& tables) {
    Bytes table = table_header("XSDT", kXsdtRevision);
    for (uint64_t address : tables) append64(table, address);
    return finish_table(std::move(table));
}

constexpr size_t kRsdpBytes = 36;

Bytes build_rsdp(uint64_t xsdt_address) {
    Bytes rsdp(kRsdpBytes, 0);
    put_text(rsdp, 0, "RSD PTR ");
    put_text(rsdp, 9, kOemId);
    put8(rsdp, 15, kRsdpRevision);
    put32(rsdp, 16, 0);  // no RSDT: every table is reached through the XSDT
    put32(rsdp, 20, kRsdpBytes);
    put64(rsdp, 24, xsdt_address);
    put8(rsdp, 8, checksum_of(rsdp.data(), 20));           // ACPI 1.0 part
    put8(rsdp, 32, checksum_of(rsdp.data(), kRsdpBytes));  // the whole structure
    return rsdp;
}

std::string processor_name(unsigned index) {
    char name[5];
    std::snprintf(name, sizeof(name), "CP%02X", index & 0xff);
    return name;
}

}  // namespace

std::vector<uint8_t> build_dsdt(const AcpiSpec& spec) {
    using namespace aml;
    const AddressRange mmio64 = pci_mmio64_window(spec.ram_bytes);

    // The host bridge's windows (PCI Firmware 3.2, 4.1.1; ACPI 6.5, 6.4.3.5).
    // Both memory windows are non-prefetchable so Linux may place any BAR in
    // either; ports 0xCF8-0xCFF belong to the bridge itself.
    ResourceTemplate host_bridge_resources;
    host_bridge_resources.word_bus_number(0, kPciLastBus)
        .word_io(0x0000, kPciConfigPortBase - 1)
        .word_io(kPciConfigPortBase + kPciConfigPortCount, 0xffff)
        .dword_memory(static_cast<uint32_t>(kPciMmio32Start),
                      static_cast<uint32_t>(kPciMmio32Start + kPciMmio32SizeBytes - 1))
        .qword_memory(mmio64.base, mmio64.end() - 1);

    Bytes pci0 = device("PCI0", {
                                    name("_HID", eisa_id("PNP0A08")),  // PCI Express root bridge
                                    name("_CID", eisa_id("PNP0A03")),  // PCI root bridge
                                    name("_SEG", integer(0)),
                                    name("_BBN", integer(0)),
                                    name("_UID", integer(0)),
                                    name("_CRS", host_bridge_resources.to_buffer()),
                                });

    // Linux accepts the MCFG region once a motherboard resource (PNP0C02)
    // reserves it, without needing configuration mechanism #1 to check e820.
    ResourceTemplate ecam_resources;
    ecam_resources.memory32_fixed(static_cast<uint32_t>(kPcieEcamStart),
                                  static_cast<uint32_t>(kPcieEcamBytesPerBus * (kPciLastBus + 1)));
    Bytes motherboard = device("MRES", {
                                           name("_HID", eisa_id("PNP0C02")),
                                           name("_UID", integer(0)),
                                           name("_CRS", ecam_resources.to_buffer()),
                                       });

    ResourceTemplate com1_resources;
    com1_resources.io(kCom1Port, kCom1Port, 0, kCom1PortCount).irq_no_flags({kCom1Irq});
    Bytes com1 = device("COM1", {
                                    name("_HID", eisa_id("PNP0501")),  // 16550A-compatible UART
                                    name("_UID", integer(1)),
                                    name("_CRS", com1_resources.to_buffer()),
                                });

    std::vector<Bytes> system_bus{pci0, motherboard, com1};
    // Processor devices (ACPI 6.5, 8.4): _UID matches the MADT's ACPI Processor UID.
    for (unsigned cpu = 0; cpu < spec.vcpu_count; ++cpu)
        system_bus.push_back(device(processor_name(cpu), {name("_HID", string("ACPI0007")), name("_UID", integer(cpu))}));

    Bytes table = table_header("DSDT", kDsdtRevision);
    const Bytes sb = scope("\\_SB", system_bus);
    table.insert(table.end(), sb.begin(), sb.end());
    // \_S5: SLP_TYP values for PM1a and PM1b, then two reserved (7.4.2).
    const Bytes s5 = name("\\_S5", package({integer(kSleepTypeSoftOff), integer(kSleepTypeSoftOff), integer(0), integer(0)}));
    table.insert(table.end(), s5.begin(), s5.end());
    return finish_table(std::move(table));
}

Result<uint64_t> write_acpi_tables(GuestMemory& memory, const AcpiSpec& spec) {
    if (spec.vcpu_count == 0 || spec.vcpu_count > kAcpiMaxVcpus)
        return make_error("ACPI tables: " + std::to_string(spec.vcpu_count) + " vCPUs; xAPIC IDs allow 1 to " +
                          std::to_string(kAcpiMaxVcpus));

    // The RSDP first (at 0xE0000, 16-byte aligned as the scan requires), then
    // the tables in the order they refer to each other.
    const uint64_t rsdp_address = kAcpiTablesStart;
    uint64_t cursor = rsdp_address + kRsdpBytes;
    std::string failure;
    auto place = [&](const Bytes& table, uint64_t alignment) -> uint64_t {
        if (!failure.empty()) return 0;
        const uint64_t address = (cursor + alignment - 1) & ~(alignment - 1);
        if (address + table.size() > kAcpiTablesEnd) {
            failure = "ACPI tables: do not fit in the BIOS area 0xE0000-0xFFFFF";
            return 0;
        }
        if (!memory.write(GuestAddress{address}, table.data(), table.size())) {
            failure = "ACPI tables: guest RAM does not cover the BIOS area 0xE0000-0xFFFFF";
            return 0;
        }
        cursor = address + table.size();
        return address;
    };

    const uint64_t dsdt = place(build_dsdt(spec), 16);
    const uint64_t facs = place(build_facs(), kFacsAlignment);
    const uint64_t fadt = place(build_fadt(spec, dsdt, facs), 16);
    const uint64_t madt = place(build_madt(spec), 16);
    const uint64_t mcfg = place(build_mcfg(), 16);
    const uint64_t xsdt = place(build_xsdt({fadt, madt, mcfg}), 16);
    if (!failure.empty()) return make_error(failure);
    const Bytes rsdp = build_rsdp(xsdt);
    if (!memory.write(GuestAddress{rsdp_address}, rsdp.data(), rsdp.size()))
        return make_error("ACPI tables: guest RAM does not cover the RSDP at 0xE0000");
    return rsdp_address;
}

}  // namespace atl::vmm::x86
