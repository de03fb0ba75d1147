// ACPI tables as the guest finds them: from the RSDP at 0xE0000 through the
// XSDT to every table, checksums, MADT contents, the DSDT's AML framing; and
// the AML encoder itself. When iasl (Debian: acpica-tools) is installed, the
// tables are also disassembled and the DSDT recompiled without errors.
#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace atl::vmm::x86 {
namespace {

namespace fs = std::filesystem;
using aml::Bytes;

template <class T>
T load(const uint8_t* p) {
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
}

uint8_t sum_of(const uint8_t* p, size_t length) {
    uint8_t sum = 0;
    for (size_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + p[i]);
    return sum;
}

// The tables reached from the RSDP, by signature, as copies of guest memory.
struct FoundTables {
    uint64_t rsdp_address = 0;
    std::vector<uint8_t> rsdp;
    std::map<std::string, std::vector<uint8_t>> by_signature;
    std::map<std::string, uint64_t> addresses;
    std::vector<uint64_t> xsdt_entries;
};

std::vector<uint8_t> copy_table(const GuestMemory& memory, uint64_t address) {
    uint32_t length = 0;
    EXPECT_TRUE(memory.read_object(GuestAddress{address + 4}, length));
    std::vector<uint8_t> table(length);
    EXPECT_TRUE(memory.read(GuestAddress{address}, table.data(), length)) << std::hex << address;
    return table;
}

FoundTables find_tables(const GuestMemory& memory, uint64_t rsdp_address) {
    FoundTables found;
    found.rsdp_address = rsdp_address;
    found.rsdp.resize(36);
    EXPECT_TRUE(memory.read(GuestAddress{rsdp_address}, found.rsdp.data(), 36));
    const uint64_t xsdt_address = load<uint64_t>(&found.rsdp[24]);
    auto xsdt = copy_table(memory, xsdt_address);
    found.addresses["XSDT"] = xsdt_address;
    for (size_t offset = 36; offset + 8 <= xsdt.size(); offset += 8) {
        const uint64_t address = load<uint64_t>(&xsdt[offset]);
        found.xsdt_entries.push_back(address);
        auto table = copy_table(memory, address);
        const std::string signature(table.begin(), table.begin() + 4);
        found.addresses[signature] = address;
        found.by_signature[signature] = std::move(table);
    }
    found.by_signature["XSDT"] = std::move(xsdt);
    if (found.by_signature.count("FACP")) {
        const auto& fadt = found.by_signature["FACP"];
        const uint64_t dsdt_address = load<uint64_t>(&fadt[140]);
        found.addresses["DSDT"] = dsdt_address;
        found.by_signature["DSDT"] = copy_table(memory, dsdt_address);
        const uint64_t facs_address = load<uint32_t>(&fadt[36]);
        found.addresses["FACS"] = facs_address;
        std::vector<uint8_t> facs(64);
        EXPECT_TRUE(memory.read(GuestAddress{facs_address}, facs.data(), facs.size()));
        found.by_signature["FACS"] = facs;
    }
    return found;
}

class AcpiTablesTest : public ::testing::Test {
protected:
    FoundTables write(AcpiSpec spec) {
        // Low RAM covering the BIOS area is all the tables need.
        memory_ = GuestMemory::create_flat(2 * kMiB);
        auto rsdp = write_acpi_tables(*memory_, spec);
        EXPECT_TRUE(rsdp.ok()) << (rsdp.ok() ? "" : rsdp.error().message);
        return rsdp.ok() ? find_tables(*memory_, *rsdp) : FoundTables{};
    }
    std::shared_ptr<GuestMemory> memory_;
};

TEST_F(AcpiTablesTest, RsdpIsWhereLinuxScansAndChecksums) {
    const auto found = write({4, 1 * kGiB});
    EXPECT_EQ(found.rsdp_address, 0xe0000u);
    EXPECT_EQ(found.rsdp_address % 16, 0u);
    EXPECT_EQ(std::string(found.rsdp.begin(), found.rsdp.begin() + 8), "RSD PTR ");
    EXPECT_EQ(found.rsdp[15], 2);  // revision: has XSDT
    EXPECT_EQ(load<uint32_t>(&found.rsdp[20]), 36u);
    EXPECT_EQ(sum_of(found.rsdp.data(), 20), 0);
    EXPECT_EQ(sum_of(found.rsdp.data(), 36), 0);
}

TEST_F(AcpiTablesTest, EveryTableChecksumsAndLiesInTheBiosArea) {
    const auto found = write({4, 1 * kGiB});
    for (const char* signature : {"XSDT", "FACP", "APIC", "MCFG", "DSDT"}) {
        ASSERT_TRUE(found.by_signature.count(signature)) << signature;
        const auto& table = found.by_signature.at(signature);
        EXPECT_EQ(sum_of(table.data(), table.size()), 0) << signature;
        EXPECT_EQ(load<uint32_t>(&table[4]), table.size()) << signature;
        EXPECT_EQ(std::string(table.begin() + 10, table.begin() + 16), "ATOLL ") << signature;
        const uint64_t address = found.addresses.at(signature);
        EXPECT_GE(address, kAcpiTablesStart) << signature;
        EXPECT_LE(address + table.size(), kAcpiTablesEnd) << signature;
    }
}

TEST_F(AcpiTablesTest, XsdtPointsAtEveryTable) {
    const auto found = write({2, 1 * kGiB});
    ASSERT_EQ(found.xsdt_entries.size(), 3u);
    EXPECT_TRUE(found.by_signature.count("FACP"));
    EXPECT_TRUE(found.by_signature.count("APIC"));
    EXPECT_TRUE(found.by_signature.count("MCFG"));
}

TEST_F(AcpiTablesTest, FadtDescribesLegacyPmHardware) {
    const auto found = write({2, 1 * kGiB});
    const auto& fadt = found.by_signature.at("FACP");
    ASSERT_EQ(fadt.size(), 276u);
    EXPECT_EQ(fadt[8], 6);                                   // revision
    EXPECT_EQ(load<uint32_t>(&fadt[40]), found.addresses.at("DSDT"));  // DSDT == X_DSDT
    EXPECT_EQ(load<uint64_t>(&fadt[140]), found.addresses.at("DSDT"));
    EXPECT_EQ(load<uint64_t>(&fadt[132]), 0u);  // X_FIRMWARE_CTRL: FIRMWARE_CTRL says it
    EXPECT_EQ(found.addresses.at("FACS") % 64, 0u);
    EXPECT_EQ(std::string(found.by_signature.at("FACS").begin(), found.by_signature.at("FACS").begin() + 4), "FACS");
    EXPECT_EQ(load<uint16_t>(&fadt[46]), 9);                 // SCI_INT
    EXPECT_EQ(load<uint32_t>(&fadt[48]), 0u);                // SMI_CMD: ACPI mode always on
    EXPECT_EQ(load<uint32_t>(&fadt[56]), 0x600u);            // PM1a_EVT_BLK
    EXPECT_EQ(load<uint32_t>(&fadt[64]), 0x604u);            // PM1a_CNT_BLK
    EXPECT_EQ(fadt[88], 4);                                  // PM1_EVT_LEN
    EXPECT_EQ(fadt[89], 2);                                  // PM1_CNT_LEN
    const uint32_t flags = load<uint32_t>(&fadt[112]);
    EXPECT_TRUE(flags & (1u << 10));                         // RESET_REG_SUP
    EXPECT_FALSE(flags & (1u << 20));                        // not HW_REDUCED_ACPI
    EXPECT_FALSE(flags & (1u << 4));                         // fixed power button
    EXPECT_EQ(fadt[116], 1);                                 // RESET_REG in SystemIO
    EXPECT_EQ(load<uint64_t>(&fadt[120]), 0xcf9u);
    EXPECT_EQ(fadt[128], 6);                                 // RESET_VALUE
    const uint16_t boot_arch = load<uint16_t>(&fadt[109]);
    EXPECT_FALSE(boot_arch & (1u << 1));                     // no 8042
    EXPECT_TRUE(boot_arch & (1u << 2));                      // no VGA
    EXPECT_TRUE(boot_arch & (1u << 5));                      // no CMOS RTC
    EXPECT_EQ(fadt[148], 1);                                 // X_PM1a_EVT_BLK: SystemIO
    EXPECT_EQ(fadt[149], 32);                                //   32 bits wide
    EXPECT_EQ(load<uint64_t>(&fadt[152]), 0x600u);
    EXPECT_EQ(fadt[173], 16);                                // X_PM1a_CNT_BLK: 16 bits
    EXPECT_EQ(load<uint64_t>(&fadt[176]), 0x604u);
}

TEST_F(AcpiTablesTest, FadtSaysWhenAnRtcExists) {
    AcpiSpec spec{2, 1 * kGiB};
    spec.cmos_rtc_present = true;
    const auto found = write(spec);
    const auto& fadt = found.by_signature.at("FACP");
    EXPECT_FALSE(load<uint16_t>(&fadt[109]) & (1u << 5));
    EXPECT_EQ(fadt[108], 0x32);  // CENTURY register
}

TEST_F(AcpiTablesTest, MadtHasOneEnabledLocalApicPerVcpuAndTheIoapic) {
    const unsigned vcpus = 5;
    const auto found = write({vcpus, 1 * kGiB});
    const auto& madt = found.by_signature.at("APIC");
    EXPECT_EQ(load<uint32_t>(&madt[36]), 0xfee00000u);
    EXPECT_EQ(load<uint32_t>(&madt[40]) & 1, 1u);  // PCAT_COMPAT
    std::vector<std::pair<uint8_t, uint8_t>> local_apics;  // (uid, apic id)
    int ioapics = 0, overrides = 0, nmis = 0;
    for (size_t offset = 44; offset < madt.size();) {
        const uint8_t type = madt[offset], length = madt[offset + 1];
        ASSERT_GE(length, 2);
        ASSERT_LE(offset + length, madt.size());
        if (type == 0) {
            EXPECT_EQ(length, 8);
            EXPECT_EQ(load<uint32_t>(&madt[offset + 4]) & 1, 1u) << "enabled";
            local_apics.emplace_back(madt[offset + 2], madt[offset + 3]);
        } else if (type == 1) {
            ++ioapics;
            EXPECT_EQ(madt[offset + 2], vcpus);  // IOAPIC ID
            EXPECT_EQ(load<uint32_t>(&madt[offset + 4]), 0xfec00000u);
            EXPECT_EQ(load<uint32_t>(&madt[offset + 8]), 0u);
        } else if (type == 2) {
            ++overrides;
            const uint8_t irq = madt[offset + 3];
            const uint32_t gsi = load<uint32_t>(&madt[offset + 4]);
            const uint16_t flags = load<uint16_t>(&madt[offset + 8]);
            if (irq == 0) {
                EXPECT_EQ(gsi, 2u);
                EXPECT_EQ((flags >> 2) & 3, 1) << "edge";
            } else {
                EXPECT_EQ(irq, 9);
                EXPECT_EQ(gsi, 9u);
                EXPECT_EQ(flags & 3, 1) << "active high";
                EXPECT_EQ((flags >> 2) & 3, 3) << "level";
            }
        } else if (type == 4) {
            ++nmis;
            EXPECT_EQ(madt[offset + 5], 1) << "LINT1";
        }
        offset += length;
    }
    ASSERT_EQ(local_apics.size(), vcpus);
    for (unsigned i = 0; i < vcpus; ++i) EXPECT_EQ(local_apics[i], std::make_pair(uint8_t(i), uint8_t(i)));
    EXPECT_EQ(ioapics, 1);
    EXPECT_EQ(overrides, 2);
    EXPECT_EQ(nmis, 1);
}

TEST_F(AcpiTablesTest, McfgCoversBusZero) {
    const auto found = write({1, 1 * kGiB});
    const auto& mcfg = found.by_signature.at("MCFG");
    ASSERT_EQ(mcfg.size(), 44u + 16u);
    EXPECT_EQ(load<uint64_t>(&mcfg[44]), 0xe0000000u);
    EXPECT_EQ(load<uint16_t>(&mcfg[52]), 0);
    EXPECT_EQ(mcfg[54], 0);
    EXPECT_EQ(mcfg[55], 0);
}

// Decodes a PkgLength; returns its value and advances `offset` past it.
uint32_t decode_pkg_length(const std::vector<uint8_t>& aml, size_t& offset) {
    const uint8_t lead = aml[offset];
    const unsigned following = lead >> 6;
    uint32_t length = following == 0 ? (lead & 0x3f) : (lead & 0x0f);
    for (unsigned i = 0; i < following; ++i) length |= uint32_t{aml[offset + 1 + i]} << (4 + 8 * i);
    offset += 1 + following;
    return length;
}

TEST_F(AcpiTablesTest, DsdtAmlIsFramedByItsLengths) {
    const unsigned vcpus = 3;
    const auto found = write({vcpus, 1 * kGiB});
    const auto& dsdt = found.by_signature.at("DSDT");
    EXPECT_EQ(dsdt[8], 2);  // revision 2: 64-bit integers
    // Body: Scope(\_SB) { ... } then Name(\_S5_, Package).
    size_t offset = 36;
    ASSERT_EQ(dsdt[offset], 0x10);  // ScopeOp
    const size_t scope_start = ++offset;
    const uint32_t scope_length = decode_pkg_length(dsdt, offset);
    EXPECT_EQ(std::string(dsdt.begin() + offset, dsdt.begin() + offset + 5), "\\_SB_");
    offset = scope_start + scope_length;
    ASSERT_LT(offset, dsdt.size());
    ASSERT_EQ(dsdt[offset], 0x08);  // NameOp
    EXPECT_EQ(std::string(dsdt.begin() + offset + 1, dsdt.begin() + offset + 6), "\\_S5_");
    offset += 6;
    ASSERT_EQ(dsdt[offset], 0x12);  // PackageOp
    const size_t package_start = ++offset;
    const uint32_t package_length = decode_pkg_length(dsdt, offset);
    EXPECT_EQ(dsdt[offset], 4);  // elements
    EXPECT_EQ(dsdt[offset + 1], 0x0a);
    EXPECT_EQ(dsdt[offset + 2], 5);  // SLP_TYP for S5
    EXPECT_EQ(package_start + package_length, dsdt.size());

    // Devices inside \_SB: walk them by their lengths.
    std::vector<std::string> devices;
    offset = scope_start;
    decode_pkg_length(dsdt, offset);
    offset += 5;  // \_SB_
    while (offset < scope_start + scope_length) {
        ASSERT_EQ(dsdt[offset], 0x5b);
        ASSERT_EQ(dsdt[offset + 1], 0x82);  // DeviceOp
        offset += 2;
        const size_t device_start = offset;
        const uint32_t device_length = decode_pkg_length(dsdt, offset);
        devices.emplace_back(dsdt.begin() + offset, dsdt.begin() + offset + 4);
        offset = device_start + device_length;
    }
    EXPECT_EQ(offset, scope_start + scope_length);
    const std::vector<std::string> expected = {"PCI0", "MRES", "COM1", "CP00", "CP01", "CP02"};
    EXPECT_EQ(devices, expected);

    // EISA IDs: PNP0A08, PNP0A03, PNP0501 as DWORDs.
    const std::string text(dsdt.begin(), dsdt.end());
    EXPECT_NE(text.find(std::string("\x0c\x41\xd0\x0a\x08", 5)), std::string::npos);
    EXPECT_NE(text.find(std::string("\x0c\x41\xd0\x0a\x03", 5)), std::string::npos);
    EXPECT_NE(text.find(std::string("\x0c\x41\xd0\x05\x01", 5)), std::string::npos);
    size_t processors = 0;
    for (size_t at = text.find("ACPI0007"); at != std::string::npos; at = text.find("ACPI0007", at + 1)) ++processors;
    EXPECT_EQ(processors, vcpus);
}

TEST_F(AcpiTablesTest, DsdtDeclaresTheSixtyFourBitWindowAboveRam) {
    auto find_qword_memory = [](const std::vector<uint8_t>& dsdt) {
        for (size_t i = 0; i + 46 <= dsdt.size(); ++i)
            if (dsdt[i] == 0x8a && dsdt[i + 1] == 43 && dsdt[i + 2] == 0 && dsdt[i + 3] == 0)
                return std::make_pair(load<uint64_t>(&dsdt[i + 14]), load<uint64_t>(&dsdt[i + 22]));
        return std::make_pair(uint64_t{0}, uint64_t{0});
    };
    auto small = write({1, 1 * kGiB});
    EXPECT_EQ(find_qword_memory(small.by_signature.at("DSDT")), std::make_pair(64 * kGiB, 128 * kGiB - 1));
    auto large = write({1, 100 * kGiB});
    const auto window = pci_mmio64_window(100 * kGiB);
    EXPECT_GE(window.base, 4 * kGiB + 97 * kGiB);
    EXPECT_EQ(window.base % kGiB, 0u);
    EXPECT_EQ(find_qword_memory(large.by_signature.at("DSDT")), std::make_pair(window.base, window.end() - 1));
}

TEST_F(AcpiTablesTest, ManyVcpusStillFit) {
    const auto found = write({kAcpiMaxVcpus, 1 * kGiB});
    EXPECT_EQ(found.by_signature.at("APIC")[44 + 8 * kAcpiMaxVcpus + 2], kAcpiMaxVcpus);  // IOAPIC ID
    const auto& dsdt = found.by_signature.at("DSDT");
    EXPECT_EQ(sum_of(dsdt.data(), dsdt.size()), 0);
    const std::string text(dsdt.begin(), dsdt.end());
    EXPECT_NE(text.find("CPFD"), std::string::npos);
}

TEST(AcpiTablesErrorsTest, RefusesZeroOrTooManyVcpus) {
    auto memory = GuestMemory::create_flat(2 * kMiB);
    auto none = write_acpi_tables(*memory, {0, kGiB});
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().message, "ACPI tables: 0 vCPUs; xAPIC IDs allow 1 to 254");
    EXPECT_FALSE(write_acpi_tables(*memory, {255, kGiB}).ok());
}

TEST(AcpiTablesErrorsTest, NeedsRamUnderTheBiosArea) {
    auto memory = GuestMemory::create_flat(512 * kKiB);
    auto result = write_acpi_tables(*memory, {1, 512 * kKiB});
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().message.find("guest RAM does not cover"), std::string::npos);
}

// --- iasl, when installed ---

bool have_iasl() { return std::system("command -v iasl >/dev/null 2>&1") == 0; }

std::string run(const std::string& command, int& status) {
    std::string output;
    if (FILE* pipe = popen((command + " 2>&1").c_str(), "r")) {
        char buffer[4096];
        size_t got;
        while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, got);
        status = pclose(pipe);
    } else {
        status = -1;
    }
    return output;
}

TEST_F(AcpiTablesTest, IaslDisassemblesEveryTableAndRecompilesTheDsdt) {
    if (!have_iasl()) GTEST_SKIP() << "iasl not installed (Debian package acpica-tools); skipping disassembly";
    const auto found = write({4, 6 * kGiB});
    char pattern[] = "/tmp/atoll-acpi-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    const fs::path dir = pattern;
    for (const auto& [signature, table] : found.by_signature) {
        const fs::path file = dir / (signature + ".dat");
        std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(table.data()), table.size());
        int status = 0;
        const std::string output = run("cd " + dir.string() + " && iasl -d " + file.filename().string(), status);
        EXPECT_EQ(status, 0) << signature << ":\n" << output;
        EXPECT_EQ(output.find("Error"), std::string::npos) << signature << ":\n" << output;
        EXPECT_EQ(output.find("Warning"), std::string::npos) << signature << ":\n" << output;
        EXPECT_TRUE(fs::exists(dir / (signature + ".dsl"))) << signature << ":\n" << output;
    }
    // The disassembled DSDT must compile back cleanly: names, resource
    // templates and lengths that iasl itself accepts.
    int status = 0;
    const std::string output = run("cd " + dir.string() + " && iasl -p recompiled DSDT.dsl", status);
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find("0 Errors, 0 Warnings"), std::string::npos) << output;
    std::ifstream dsl(dir / "DSDT.dsl");
    std::stringstream source;
    source << dsl.rdbuf();
    for (const char* expected : {"Device (PCI0)", "EisaId (\"PNP0A08\")", "WordBusNumber", "QWordMemory",
                                 "Device (COM1)", "IRQNoFlags", "\"ACPI0007\"", "Name (\\_S5"})
        EXPECT_NE(source.str().find(expected), std::string::npos) << expected;
    fs::remove_all(dir);
}

// --- The AML encoder ---

TEST(AmlTest, PkgLengthUsesOneToFourBytes) {
    EXPECT_EQ(aml::pkg_length(0), (Bytes{0x01}));
    EXPECT_EQ(aml::pkg_length(62), (Bytes{0x3f}));
    // 63 bytes of contents + 2 bytes of length = 65 = 0x41.
    EXPECT_EQ(aml::pkg_length(63), (Bytes{0x41, 0x04}));
    EXPECT_EQ(aml::pkg_length(0xffd), (Bytes{0x4f, 0xff}));         // 0xfff total
    EXPECT_EQ(aml::pkg_length(0xffe), (Bytes{0x81, 0x00, 0x01}));   // 0x1001 total
    EXPECT_EQ(aml::pkg_length(0xffffc), (Bytes{0x8f, 0xff, 0xff}));
    EXPECT_EQ(aml::pkg_length(0xffffd), (Bytes{0xc1, 0x00, 0x00, 0x01}));
    EXPECT_TRUE(aml::pkg_length(0x10000000).empty());
}

TEST(AmlTest, NameStrings) {
    EXPECT_EQ(aml::name_string("_HID"), (Bytes{'_', 'H', 'I', 'D'}));
    EXPECT_EQ(aml::name_string("\\_SB"), (Bytes{'\\', '_', 'S', 'B', '_'}));
    EXPECT_EQ(aml::name_string("\\_SB.PCI0"), (Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}));
    EXPECT_EQ(aml::name_string("^A.B.C"),
              (Bytes{'^', 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'}));
    EXPECT_EQ(aml::name_string("\\"), (Bytes{'\\', 0x00}));
}

TEST(AmlTest, IntegersUseTheNarrowestEncoding) {
    EXPECT_EQ(aml::integer(0), (Bytes{0x00}));
    EXPECT_EQ(aml::integer(1), (Bytes{0x01}));
    EXPECT_EQ(aml::integer(5), (Bytes{0x0a, 0x05}));
    EXPECT_EQ(aml::integer(0x1234), (Bytes{0x0b, 0x34, 0x12}));
    EXPECT_EQ(aml::integer(0x12345678), (Bytes{0x0c, 0x78, 0x56, 0x34, 0x12}));
    EXPECT_EQ(aml::integer(0x1'0000'0000), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
    EXPECT_EQ(aml::word_integer(1), (Bytes{0x0b, 0x01, 0x00}));
    EXPECT_EQ(aml::dword_integer(0), (Bytes{0x0c, 0, 0, 0, 0}));
}

TEST(AmlTest, StringsAndEisaIds) {
    EXPECT_EQ(aml::string("AB"), (Bytes{0x0d, 'A', 'B', 0}));
    // Values as the ACPI spec and every DSDT encode them.
    EXPECT_EQ(aml::eisa_id("PNP0A03"), aml::dword_integer(0x030ad041));
    EXPECT_EQ(aml::eisa_id("PNP0A08"), aml::dword_integer(0x080ad041));
    EXPECT_EQ(aml::eisa_id("PNP0501"), aml::dword_integer(0x0105d041));
    EXPECT_EQ(aml::eisa_id("PNP0C02"), aml::dword_integer(0x020cd041));
}

TEST(AmlTest, PackagesBuffersAndNames) {
    EXPECT_EQ(aml::package({aml::integer(5), aml::integer(0)}), (Bytes{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}));
    const uint8_t bytes[] = {0xaa, 0xbb};
    EXPECT_EQ(aml::buffer(bytes), (Bytes{0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb}));
    EXPECT_EQ(aml::name("_UID", aml::integer(1)), (Bytes{0x08, '_', 'U', 'I', 'D', 0x01}));
}

TEST(AmlTest, DevicesScopesAndMethods) {
    EXPECT_EQ(aml::device("DEV0", {aml::name("_UID", aml::integer(0))}),
              (Bytes{0x5b, 0x82, 0x0b, 'D', 'E', 'V', '0', 0x08, '_', 'U', 'I', 'D', 0x00}));
    EXPECT_EQ(aml::scope("\\_SB", {}), (Bytes{0x10, 0x06, '\\', '_', 'S', 'B', '_'}));
    // Method(_OSC, 4, NotSerialized) { Return (Arg3) }
    EXPECT_EQ(aml::method("_OSC", 4, false, {aml::return_value(aml::arg(3))}),
              (Bytes{0x14, 0x08, '_', 'O', 'S', 'C', 0x04, 0xa4, 0x6b}));
    EXPECT_EQ(aml::method("_STA", 0, true, {aml::return_value(aml::integer(0x0f))})[6], 0x08);
    EXPECT_EQ(aml::local(2), (Bytes{0x62}));
}

TEST(AmlTest, LargeDeviceGetsAMultiBytePkgLength) {
    std::vector<Bytes> names;
    for (int i = 0; i < 20; ++i) names.push_back(aml::name("_UID", aml::integer(0x1234)));
    const Bytes encoded = aml::device("BIG0", names);
    // 4 (name) + 20 * 8 contents = 164 bytes + 2 bytes of PkgLength = 166.
    ASSERT_EQ(encoded.size(), 2u + 2u + 164u);
    EXPECT_EQ(encoded[2], 0x40 | (166 & 0xf));
    EXPECT_EQ(encoded[3], 166 >> 4);
}

TEST(AmlTest, ResourceTemplates) {
    aml::ResourceTemplate com;
    com.io(0x3f8, 0x3f8, 0, 8).irq_no_flags({4});
    EXPECT_EQ(com.to_buffer(), (Bytes{0x11, 0x10, 0x0a, 0x0d,                          // Buffer(13)
                                      0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,  // IO
                                      0x22, 0x10, 0x00,                                // IRQNoFlags {4}
                                      0x79, 0x00}));                                   // End
    aml::ResourceTemplate bus;
    bus.word_bus_number(0, 0);
    const Bytes buffer = bus.to_buffer();
    // Buffer header (4 bytes), then the descriptor: tag, length 13, type 2 (bus), flags.
    EXPECT_EQ(Bytes(buffer.begin() + 4, buffer.begin() + 9), (Bytes{0x88, 0x0d, 0x00, 0x02, 0x0c}));
    EXPECT_EQ(load<uint16_t>(&buffer[4 + 14]), 1);  // length = max - min + 1
    aml::ResourceTemplate memory;
    memory.dword_memory(0xc0000000, 0xdfffffff).qword_memory(0x10'0000'0000, 0x1f'ffff'ffff).memory32_fixed(0xe0000000, 0x100000);
    const Bytes descriptors = memory.to_buffer();
    // BufferOp, a 2-byte PkgLength and BytePrefix size: 5 bytes before the data.
    ASSERT_EQ(descriptors.size(), 5u + 26u + 46u + 12u + 2u);
    EXPECT_EQ(descriptors[5], 0x87);
    EXPECT_EQ(descriptors[5 + 5], 0x01);  // read/write, non-cacheable
    EXPECT_EQ(load<uint32_t>(&descriptors[5 + 22]), 0x20000000u);
    EXPECT_EQ(descriptors[5 + 26], 0x8a);
    EXPECT_EQ(load<uint64_t>(&descriptors[5 + 26 + 14]), 0x10'0000'0000u);  // minimum
    EXPECT_EQ(descriptors[5 + 72], 0x86);
}

}  // namespace
}  // namespace atl::vmm::x86
