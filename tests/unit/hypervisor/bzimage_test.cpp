// The Linux boot path: bzImage loading (zero page, command line, initrd),
// the e820 map and the boot vCPU state. Fake bzImages are built in a temp
// directory; a real kernel is tried when one is at hand.
#include "arch/x86/boot_cpu.h"
#include "arch/x86/bzimage.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace atl::vmm::x86 {
namespace {

namespace fs = std::filesystem;

template <class T>
T read_at(const GuestMemory& memory, uint64_t address) {
    T value{};
    EXPECT_TRUE(memory.read_object(GuestAddress{address}, value)) << std::hex << address;
    return value;
}

template <class T>
void put(std::vector<uint8_t>& bytes, size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// The setup header fields a fake bzImage carries (boot.rst offsets).
struct FakeKernel {
    uint8_t setup_sects = 4;
    uint16_t boot_flag = 0xaa55;
    uint32_t magic = 0x53726448;  // "HdrS"
    uint16_t version = 0x020f;
    uint8_t loadflags = 0x01;     // LOADED_HIGH
    uint16_t xloadflags = 0x0003;  // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    uint32_t cmdline_size = 2047;
    uint32_t initrd_addr_max = 0x7fffffff;
    uint32_t kernel_alignment = 0x200000;
    uint8_t relocatable = 1;
    uint64_t pref_address = 0x1000000;
    uint32_t init_size = 8 << 20;
    size_t payload_bytes = 64 * 1024;
    // Bytes to cut from the end of the file after syssize was computed.
    size_t truncate_bytes = 0;

    std::vector<uint8_t> build() const {
        const size_t setup_bytes = (setup_sects + 1) * 512u;
        std::vector<uint8_t> file(setup_bytes + payload_bytes, 0);
        put<uint8_t>(file, 0x1f1, setup_sects);
        put<uint32_t>(file, 0x1f4, static_cast<uint32_t>((payload_bytes + 15) / 16));
        put<uint16_t>(file, 0x1fe, boot_flag);
        file[0x200] = 0xeb;                              // jmp short
        file[0x201] = static_cast<uint8_t>(0x26c - 0x202);  // header ends at 0x26c
        put<uint32_t>(file, 0x202, magic);
        put<uint16_t>(file, 0x206, version);
        put<uint8_t>(file, 0x211, loadflags);
        put<uint32_t>(file, 0x214, 0x100000);
        put<uint32_t>(file, 0x22c, initrd_addr_max);
        put<uint32_t>(file, 0x230, kernel_alignment);
        put<uint8_t>(file, 0x234, relocatable);
        put<uint16_t>(file, 0x236, xloadflags);
        put<uint32_t>(file, 0x238, cmdline_size);
        put<uint64_t>(file, 0x258, pref_address);
        put<uint32_t>(file, 0x260, init_size);
        for (size_t i = 0; i < payload_bytes; ++i) file[setup_bytes + i] = static_cast<uint8_t>(i * 7 + 3);
        file.resize(file.size() - truncate_bytes);
        return file;
    }
};

class BzImageTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/atoll-bzimage-test-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes) {
        const std::string path = (dir_ / name).string();
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return path;
    }

    std::shared_ptr<GuestMemory> memory(uint64_t ram_bytes) {
        auto created = GuestMemory::create(guest_ram_regions(ram_bytes));
        EXPECT_TRUE(created.ok());
        return created.ok() ? *created : nullptr;
    }

    fs::path dir_;
};

TEST_F(BzImageTest, LoadsKernelAndFillsTheZeroPage) {
    const FakeKernel kernel;
    const auto image = kernel.build();
    const std::string path = write_file("vmlinuz", image);
    auto ram = memory(64 * kMiB);
    LinuxBootSpec spec{path, std::nullopt, "console=ttyS0 reboot=acpi", 0xe0000};

    auto boot = load_linux(*ram, spec);
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(boot->entry_point.value, 0x100200u);
    EXPECT_EQ(boot->boot_params.value, kBootParamsAddress);
    EXPECT_EQ(boot->protocol_version, 0x020f);
    EXPECT_EQ(boot->kernel_end, 0x1000000u + (8u << 20));
    EXPECT_EQ(boot->initrd_size_bytes, 0u);

    // The protected-mode kernel, byte for byte, at 1 MiB.
    std::vector<uint8_t> loaded(kernel.payload_bytes);
    ASSERT_TRUE(ram->read(GuestAddress{kKernelLoadAddress}, loaded.data(), loaded.size()));
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), image.begin() + 5 * 512));

    const uint64_t zp = kBootParamsAddress;
    EXPECT_EQ(read_at<uint16_t>(*ram, zp + 0x1fe), 0xaa55);
    EXPECT_EQ(read_at<uint32_t>(*ram, zp + 0x202), 0x53726448u);
    EXPECT_EQ(read_at<uint16_t>(*ram, zp + 0x206), 0x020f);
    EXPECT_EQ(read_at<uint8_t>(*ram, zp + 0x210), 0xff);  // type_of_loader
    const auto loadflags = read_at<uint8_t>(*ram, zp + 0x211);
    EXPECT_TRUE(loadflags & 0x01);   // LOADED_HIGH kept
    EXPECT_TRUE(loadflags & 0x80);   // CAN_USE_HEAP
    EXPECT_FALSE(loadflags & 0x40);  // KEEP_SEGMENTS
    EXPECT_EQ(read_at<uint32_t>(*ram, zp + 0x228), kCommandLineAddress);
    EXPECT_EQ(read_at<uint32_t>(*ram, zp + 0x0c8), 0u);
    EXPECT_EQ(read_at<uint32_t>(*ram, zp + 0x218), 0u);  // no initrd
    EXPECT_EQ(read_at<uint32_t>(*ram, zp + 0x21c), 0u);
    EXPECT_EQ(read_at<uint64_t>(*ram, zp + 0x070), 0xe0000u);  // acpi_rsdp_addr
    EXPECT_EQ(read_at<uint8_t>(*ram, zp + 0x1ef), 0);  // sentinel: untouched
    EXPECT_EQ(read_at<uint64_t>(*ram, zp + 0x258), 0x1000000u);  // header copied

    char cmdline[64] = {};
    ASSERT_TRUE(ram->read(GuestAddress{kCommandLineAddress}, cmdline, sizeof(cmdline)));
    EXPECT_STREQ(cmdline, "console=ttyS0 reboot=acpi");

    // e820 in the zero page: what build_e820 says for 64 MiB.
    const auto expected = build_e820(64 * kMiB);
    ASSERT_EQ(read_at<uint8_t>(*ram, zp + 0x1e8), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        const uint64_t entry = zp + 0x2d0 + 20 * i;
        EXPECT_EQ(read_at<uint64_t>(*ram, entry), expected[i].address) << i;
        EXPECT_EQ(read_at<uint64_t>(*ram, entry + 8), expected[i].size_bytes) << i;
        EXPECT_EQ(read_at<uint32_t>(*ram, entry + 16), static_cast<uint32_t>(expected[i].type)) << i;
    }
}

TEST_F(BzImageTest, PlacesTheInitrdHighAndPageAligned) {
    const std::string kernel = write_file("vmlinuz", FakeKernel{}.build());
    std::vector<uint8_t> initrd(1 * kMiB + 123);
    for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i ^ (i >> 8));
    const std::string initrd_path = write_file("initrd.img", initrd);
    auto ram = memory(64 * kMiB);

    auto boot = load_linux(*ram, {kernel, initrd_path, "", 0});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(boot->initrd_address % kPageSize, 0u);
    EXPECT_EQ(boot->initrd_size_bytes, initrd.size());
    EXPECT_LE(boot->initrd_address + initrd.size(), 64 * kMiB);
    EXPECT_GT(boot->initrd_address + initrd.size() + kPageSize, 64 * kMiB);  // as high as it goes
    EXPECT_GE(boot->initrd_address, boot->kernel_end);
    std::vector<uint8_t> loaded(initrd.size());
    ASSERT_TRUE(ram->read(GuestAddress{boot->initrd_address}, loaded.data(), loaded.size()));
    EXPECT_EQ(loaded, initrd);
    EXPECT_EQ(read_at<uint32_t>(*ram, kBootParamsAddress + 0x218), boot->initrd_address);
    EXPECT_EQ(read_at<uint32_t>(*ram, kBootParamsAddress + 0x21c), initrd.size());
    EXPECT_EQ(read_at<uint32_t>(*ram, kBootParamsAddress + 0x0c0), 0u);
    EXPECT_EQ(read_at<uint32_t>(*ram, kBootParamsAddress + 0x0c4), 0u);
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootParamsAddress + 0x070), 0u);
}

TEST_F(BzImageTest, KeepsTheInitrdBelowInitrdAddrMax) {
    FakeKernel fake;
    fake.initrd_addr_max = 32 * kMiB - 1;
    const std::string kernel = write_file("vmlinuz", fake.build());
    const std::string initrd = write_file("initrd.img", std::vector<uint8_t>(3 * kMiB, 0x5a));
    auto ram = memory(64 * kMiB);
    auto boot = load_linux(*ram, {kernel, initrd, "", 0});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(boot->initrd_address, 29 * kMiB);
}

TEST_F(BzImageTest, KeepsTheInitrdBelowTheHoleWithLargeRam) {
    FakeKernel fake;
    fake.initrd_addr_max = 0xffffffff;
    const std::string kernel = write_file("vmlinuz", fake.build());
    const std::string initrd = write_file("initrd.img", std::vector<uint8_t>(kMiB, 1));
    auto ram = memory(5 * kGiB);
    ASSERT_NE(ram, nullptr);
    auto boot = load_linux(*ram, {kernel, initrd, "", 0});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(boot->initrd_address, 3 * kGiB - kMiB);
}

TEST_F(BzImageTest, AcceptsACommandLineOfExactlyCmdlineSize) {
    const std::string kernel = write_file("vmlinuz", FakeKernel{}.build());
    auto ram = memory(64 * kMiB);
    const std::string longest(2047, 'x');
    auto boot = load_linux(*ram, {kernel, std::nullopt, longest, 0});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(read_at<uint8_t>(*ram, kCommandLineAddress + 2046), 'x');
    EXPECT_EQ(read_at<uint8_t>(*ram, kCommandLineAddress + 2047), 0);
}

TEST_F(BzImageTest, Protocol212DoesNotGetTheRsdpField) {
    FakeKernel fake;
    fake.version = 0x020c;
    const std::string kernel = write_file("vmlinuz", fake.build());
    auto ram = memory(64 * kMiB);
    auto boot = load_linux(*ram, {kernel, std::nullopt, "", 0xe0000});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootParamsAddress + 0x070), 0u);
}

// --- Errors: one line each, naming the file ---

std::string load_error(std::shared_ptr<GuestMemory> ram, const LinuxBootSpec& spec) {
    auto boot = load_linux(*ram, spec);
    EXPECT_FALSE(boot.ok());
    if (boot.ok()) return "";
    EXPECT_EQ(boot.error().message.find('\n'), std::string::npos);
    return boot.error().message;
}

TEST_F(BzImageTest, MissingKernel) {
    const std::string path = (dir_ / "nope").string();
    EXPECT_EQ(load_error(memory(64 * kMiB), {path, std::nullopt, "", 0}), "kernel " + path + ": not found");
}

TEST_F(BzImageTest, KernelIsADirectory) {
    EXPECT_EQ(load_error(memory(64 * kMiB), {dir_.string(), std::nullopt, "", 0}),
              "kernel " + dir_.string() + ": not a regular file");
}

TEST_F(BzImageTest, BadMagic) {
    FakeKernel fake;
    fake.magic = 0x12345678;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_EQ(message.rfind("kernel " + path + ": not a bzImage", 0), 0u) << message;
}

TEST_F(BzImageTest, BadBootFlag) {
    FakeKernel fake;
    fake.boot_flag = 0;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("not a bzImage"), std::string::npos) << message;
}

TEST_F(BzImageTest, TooShortForAHeader) {
    const std::string path = write_file("vmlinuz", std::vector<uint8_t>(100, 0));
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("not a bzImage"), std::string::npos) << message;
}

TEST_F(BzImageTest, TruncatedKernel) {
    FakeKernel fake;
    fake.truncate_bytes = 4096;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(BzImageTest, SetupOnlyIsTruncated) {
    FakeKernel fake;
    fake.payload_bytes = 0;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(BzImageTest, OldProtocol) {
    FakeKernel fake;
    fake.version = 0x020a;
    const std::string path = write_file("vmlinuz", fake.build());
    EXPECT_EQ(load_error(memory(64 * kMiB), {path, std::nullopt, "", 0}),
              "kernel " + path + ": boot protocol 2.10 is too old (the 64-bit entry point needs 2.12 or newer)");
}

TEST_F(BzImageTest, NoSixtyFourBitEntry) {
    FakeKernel fake;
    fake.xloadflags = 0;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("64-bit entry point"), std::string::npos) << message;
}

TEST_F(BzImageTest, ZImageIsRefused) {
    FakeKernel fake;
    fake.loadflags = 0;
    const std::string path = write_file("vmlinuz", fake.build());
    const auto message = load_error(memory(64 * kMiB), {path, std::nullopt, "", 0});
    EXPECT_NE(message.find("zImage"), std::string::npos) << message;
}

TEST_F(BzImageTest, CommandLineTooLong) {
    const std::string path = write_file("vmlinuz", FakeKernel{}.build());
    EXPECT_EQ(load_error(memory(64 * kMiB), {path, std::nullopt, std::string(2048, 'x'), 0}),
              "kernel command line is 2048 bytes, kernel " + path + " accepts at most 2047");
}

TEST_F(BzImageTest, KernelTooBigForRam) {
    const std::string path = write_file("vmlinuz", FakeKernel{}.build());
    // pref_address 16 MiB + init_size 8 MiB does not fit in 16 MiB.
    EXPECT_EQ(load_error(memory(16 * kMiB), {path, std::nullopt, "", 0}),
              "kernel " + path + ": needs 24 MiB of guest RAM to decompress, the VM has 16 MiB below 3 GiB");
}

TEST_F(BzImageTest, NonRelocatableKernelDecompressesAtPrefAddress) {
    FakeKernel fake;
    fake.relocatable = 0;
    fake.pref_address = 0x2000000;
    const std::string path = write_file("vmlinuz", fake.build());
    auto ram = memory(64 * kMiB);
    auto boot = load_linux(*ram, {path, std::nullopt, "", 0});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_EQ(boot->kernel_end, 0x2000000u + (8u << 20));
}

TEST_F(BzImageTest, InitrdTooLarge) {
    const std::string kernel = write_file("vmlinuz", FakeKernel{}.build());
    const std::string initrd = write_file("initrd.img", std::vector<uint8_t>(41 * kMiB, 0));
    const auto message = load_error(memory(64 * kMiB), {kernel, initrd, "", 0});
    EXPECT_EQ(message, "initrd " + initrd + ": 41 MiB does not fit in guest RAM between the kernel (up to 24 MiB) and 64 MiB");
}

TEST_F(BzImageTest, MissingInitrd) {
    const std::string kernel = write_file("vmlinuz", FakeKernel{}.build());
    const std::string initrd = (dir_ / "missing.img").string();
    EXPECT_EQ(load_error(memory(64 * kMiB), {kernel, initrd, "", 0}), "initrd " + initrd + ": not found");
}

// A real kernel, when one is around: $ATOLL_TEST_KERNEL, the test host's
// cached guest kernel (tests/testhost/fetch-assets), else /boot/vmlinuz-*.
std::string find_real_kernel() {
    if (const char* path = std::getenv("ATOLL_TEST_KERNEL"); path && fs::exists(path)) return path;
    std::string cache;
    if (const char* dir = std::getenv("ATOLL_CACHE")) cache = dir;
    else if (const char* home = std::getenv("HOME")) cache = std::string(home) + "/.cache/atoll";
    if (!cache.empty() && fs::exists(cache + "/testhost/guest-vmlinuz")) return cache + "/testhost/guest-vmlinuz";
    std::error_code error;
    for (const auto& entry : fs::directory_iterator("/boot", error))
        if (entry.path().filename().string().rfind("vmlinuz-", 0) == 0 && access(entry.path().c_str(), R_OK) == 0)
            return entry.path().string();
    return "";
}

TEST_F(BzImageTest, LoadsARealKernel) {
    const std::string path = find_real_kernel();
    if (path.empty()) GTEST_SKIP() << "no kernel: set ATOLL_TEST_KERNEL, run tests/testhost/fetch-assets or install one in /boot";
    auto ram = memory(512 * kMiB);
    auto boot = load_linux(*ram, {path, std::nullopt, "console=ttyS0", 0xe0000});
    ASSERT_TRUE(boot.ok()) << boot.error().message;
    EXPECT_GE(boot->protocol_version, 0x020c);
    EXPECT_EQ(boot->entry_point.value, 0x100200u);
    EXPECT_GT(boot->kernel_end, 0x1000000u);
    EXPECT_LT(boot->kernel_end, 256 * kMiB);
    EXPECT_EQ(read_at<uint32_t>(*ram, kBootParamsAddress + 0x202), 0x53726448u);
    EXPECT_EQ(read_at<uint8_t>(*ram, kBootParamsAddress + 0x1e8), build_e820(512 * kMiB).size());
}

// --- e820 ---

TEST(E820Test, SmallGuest) {
    const auto map = build_e820(256 * kMiB);
    const std::vector<E820Entry> expected = {
        {0, 0x9fc00, E820Type::Ram},
        {0x9fc00, 0x100000 - 0x9fc00, E820Type::Reserved},
        {0x100000, 256 * kMiB - 0x100000, E820Type::Ram},
        {0xe0000000, 256 * kMiB, E820Type::Reserved},
    };
    EXPECT_EQ(map, expected);
}

TEST(E820Test, ExactlyThreeGiBHasNoHighRam) {
    const auto map = build_e820(3 * kGiB);
    ASSERT_EQ(map.size(), 4u);
    EXPECT_EQ(map[2].end(), 3 * kGiB);
}

TEST(E820Test, LargeGuestSplitsAroundTheHole) {
    const auto map = build_e820(6 * kGiB);
    ASSERT_EQ(map.size(), 5u);
    EXPECT_EQ(map[2], (E820Entry{kMiB, 3 * kGiB - kMiB, E820Type::Ram}));
    EXPECT_EQ(map[4], (E820Entry{4 * kGiB, 3 * kGiB, E820Type::Ram}));
    for (size_t i = 1; i < map.size(); ++i) EXPECT_LE(map[i - 1].end(), map[i].address);
}

TEST(E820Test, RegionsMatchTheMap) {
    const auto regions = guest_ram_regions(6 * kGiB);
    ASSERT_EQ(regions.size(), 2u);
    EXPECT_EQ(regions[0].guest_base, 0u);
    EXPECT_EQ(regions[0].size_bytes, 3 * kGiB);
    EXPECT_EQ(regions[1].guest_base, 4 * kGiB);
    EXPECT_EQ(regions[1].size_bytes, 3 * kGiB);
    EXPECT_EQ(guest_ram_regions(512 * kMiB).size(), 1u);
}

// --- The boot vCPU ---

class FakeVcpu : public hv::Vcpu {
public:
    explicit FakeVcpu(unsigned index) : index_(index) {
        // KVM's reset state for the parts setup_boot_vcpu keeps.
        sregs_.tr.type = 0xb;
        sregs_.tr.present = 1;
        sregs_.tr.limit = 0xffff;
        sregs_.apic_base = 0xfee00900;
    }
    unsigned index() const override { return index_; }
    Result<hv::VcpuExit> run() override { return make_error("not runnable"); }
    void request_exit() override {}
    void clear_exit_request() override {}
    Result<hv::Registers> registers() override { return regs_; }
    Result<void> set_registers(const hv::Registers& regs) override {
        regs_ = regs;
        ++set_registers_calls;
        return {};
    }
    Result<hv::SpecialRegisters> special_registers() override { return sregs_; }
    Result<void> set_special_registers(const hv::SpecialRegisters& sregs) override {
        sregs_ = sregs;
        ++set_special_registers_calls;
        return {};
    }
    Result<void> set_cpuid(std::span<const hv::CpuidEntry>) override { return {}; }
    Result<void> set_msrs(std::span<const hv::MsrEntry> msrs) override {
        msrs_.assign(msrs.begin(), msrs.end());
        return {};
    }
    Result<void> reset_fpu() override {
        ++reset_fpu_calls;
        return {};
    }
    Result<void> configure_local_apic_lints() override {
        ++lint_calls;
        return {};
    }

    unsigned index_;
    hv::Registers regs_{};
    hv::SpecialRegisters sregs_{};
    std::vector<hv::MsrEntry> msrs_;
    int set_registers_calls = 0, set_special_registers_calls = 0, reset_fpu_calls = 0, lint_calls = 0;
};

TEST(BootCpuTest, BootVcpuEntersLongModeAtTheKernel) {
    auto ram = GuestMemory::create_flat(16 * kMiB);
    FakeVcpu vcpu(0);
    BootInfo boot;
    boot.entry_point = GuestAddress{0x100200};
    boot.boot_params = GuestAddress{kBootParamsAddress};
    auto result = setup_boot_vcpu(vcpu, *ram, boot);
    ASSERT_TRUE(result.ok()) << result.error().message;

    EXPECT_EQ(vcpu.regs_.rip, 0x100200u);
    EXPECT_EQ(vcpu.regs_.rsi, kBootParamsAddress);
    EXPECT_EQ(vcpu.regs_.rflags, 0x2u);
    EXPECT_EQ(vcpu.regs_.rsp, kBootStackTop);

    const auto& sregs = vcpu.sregs_;
    EXPECT_EQ(sregs.cr3, kBootPml4Address);
    EXPECT_EQ(sregs.cr0 & 0x80000001u, 0x80000001u);  // PG | PE
    EXPECT_EQ(sregs.cr4 & 0x20u, 0x20u);              // PAE
    EXPECT_EQ(sregs.efer & 0x500u, 0x500u);           // LME | LMA
    EXPECT_EQ(sregs.cs.selector, kBootCodeSelector);
    EXPECT_EQ(sregs.cs.l, 1);
    EXPECT_EQ(sregs.cs.db, 0);
    EXPECT_EQ(sregs.cs.type, 0xb);
    for (const auto* segment : {&sregs.ds, &sregs.es, &sregs.ss, &sregs.fs, &sregs.gs}) {
        EXPECT_EQ(segment->selector, kBootDataSelector);
        EXPECT_EQ(segment->present, 1);
        EXPECT_EQ(segment->base, 0u);
        EXPECT_EQ(segment->limit, 0xffffffffu);
    }
    EXPECT_EQ(sregs.tr.type, 0xb);  // kept from the reset state
    EXPECT_EQ(sregs.apic_base, 0xfee00900u);
    EXPECT_EQ(sregs.gdt.base, kBootGdtAddress);
    EXPECT_EQ(sregs.gdt.limit, 31);

    // GDT: the descriptors at the selectors must describe the same segments.
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootGdtAddress + kBootCodeSelector), 0x00af9b000000ffffu);
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootGdtAddress + kBootDataSelector), 0x00cf93000000ffffu);

    // Page tables: identity map of 4 GiB in 2 MiB pages.
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootPml4Address), kBootPdptAddress | 3);
    for (uint64_t i = 0; i < 4; ++i)
        EXPECT_EQ(read_at<uint64_t>(*ram, kBootPdptAddress + 8 * i), (kBootPageDirectoriesAddress + i * kPageSize) | 3);
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootPdptAddress + 8 * 4), 0u);
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootPageDirectoriesAddress), 0x83u);
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootPageDirectoriesAddress + 3 * kPageSize + 8 * 511),
              (4 * kGiB - 2 * kMiB) | 0x83);

    EXPECT_EQ(vcpu.reset_fpu_calls, 1);
    EXPECT_EQ(vcpu.lint_calls, 1);
    bool mtrr_enabled = false;
    for (const auto& msr : vcpu.msrs_) mtrr_enabled |= msr.index == 0x2ff && (msr.data & 0x800);
    EXPECT_TRUE(mtrr_enabled);
}

TEST(BootCpuTest, ApplicationProcessorsKeepTheirResetState) {
    auto ram = GuestMemory::create_flat(16 * kMiB);
    FakeVcpu vcpu(1);
    ASSERT_TRUE(setup_boot_vcpu(vcpu, *ram, BootInfo{}).ok());
    EXPECT_EQ(vcpu.set_registers_calls, 0);
    EXPECT_EQ(vcpu.set_special_registers_calls, 0);
    EXPECT_EQ(vcpu.reset_fpu_calls, 1);
    EXPECT_EQ(vcpu.lint_calls, 1);
    EXPECT_EQ(vcpu.msrs_.size(), boot_msrs().size());
    EXPECT_EQ(read_at<uint64_t>(*ram, kBootPml4Address), 0u);  // nothing written
}

TEST(BootCpuTest, FailsWithoutLowRam) {
    RegionSpec high{4 * kGiB, 2 * kMiB};
    auto ram = GuestMemory::create(std::span<const RegionSpec>(&high, 1));
    ASSERT_TRUE(ram.ok());
    FakeVcpu vcpu(0);
    auto result = setup_boot_vcpu(vcpu, **ram, BootInfo{});
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().message.find("page tables"), std::string::npos);
}

}  // namespace
}  // namespace atl::vmm::x86
