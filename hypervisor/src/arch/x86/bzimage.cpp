#include "arch/x86/bzimage.h"

#include "arch/x86/e820.h"
#include "arch/x86/layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace atl::vmm::x86 {
namespace {

// Offsets in the zero page (struct boot_params, boot.rst "The zero page" and
// "The real-mode kernel header"). The setup header sits at the same offsets
// in the bzImage file and in the zero page.
constexpr size_t kZeroPageBytes = 4096;
constexpr size_t kAcpiRsdpAddr = 0x070;       // u64, protocol 2.14+
constexpr size_t kExtRamdiskImage = 0x0c0;    // u32: high half of ramdisk_image
constexpr size_t kExtRamdiskSize = 0x0c4;     // u32
constexpr size_t kExtCmdLinePtr = 0x0c8;      // u32
constexpr size_t kE820Entries = 0x1e8;        // u8
constexpr size_t kSetupHeaderStart = 0x1f1;
constexpr size_t kSetupSects = 0x1f1;         // u8; 0 means 4
constexpr size_t kSyssize = 0x1f4;            // u32, 16-byte paragraphs (2.04+)
constexpr size_t kBootFlag = 0x1fe;           // u16, 0xAA55
constexpr size_t kJump = 0x200;               // 2 bytes; the second one bounds the header
constexpr size_t kHeader = 0x202;             // u32, "HdrS"
constexpr size_t kVersion = 0x206;            // u16
constexpr size_t kTypeOfLoader = 0x210;       // u8
constexpr size_t kLoadflags = 0x211;          // u8
constexpr size_t kCode32Start = 0x214;        // u32
constexpr size_t kRamdiskImage = 0x218;       // u32
constexpr size_t kRamdiskSize = 0x21c;        // u32
constexpr size_t kHeapEndPtr = 0x224;         // u16
constexpr size_t kCmdLinePtr = 0x228;         // u32
constexpr size_t kInitrdAddrMax = 0x22c;      // u32: highest address the initrd may occupy
constexpr size_t kKernelAlignment = 0x230;    // u32
constexpr size_t kRelocatableKernel = 0x234;  // u8
constexpr size_t kXloadflags = 0x236;         // u16
constexpr size_t kCmdlineSize = 0x238;        // u32: maximum length, without the NUL
constexpr size_t kPrefAddress = 0x258;        // u64
constexpr size_t kInitSize = 0x260;           // u32
constexpr size_t kE820Table = 0x2d0;          // 128 entries of {u64 addr, u64 size, u32 type}
constexpr size_t kE820EntryBytes = 20;
constexpr size_t kE820MaxEntries = 128;
// The last field this loader reads (init_size) ends here.
constexpr size_t kMinimumHeaderEnd = kInitSize + 4;

constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlagMagic = 0xaa55;
constexpr uint16_t kMinimumProtocol = 0x020c;  // 2.12: xloadflags, XLF_KERNEL_64
constexpr uint16_t kAcpiRsdpProtocol = 0x020e;
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint8_t kKeepSegments = 0x40;
constexpr uint8_t kCanUseHeap = 0x80;
constexpr uint16_t kXlfKernel64 = 0x0001;
constexpr uint8_t kLoaderTypeUndefined = 0xff;  // no assigned boot loader ID
// The setup heap ends here (offset from the real-mode code + 0x200); only the
// 16-bit entry uses it, but the protocol asks for it with CAN_USE_HEAP.
constexpr uint16_t kHeapEnd = 0xfe00;
// Protocol < 2.03 had no initrd_addr_max; the documented default.
constexpr uint32_t kDefaultInitrdAddrMax = 0x37ffffff;
// The 64-bit entry point is 0x200 bytes into the protected-mode kernel.
constexpr uint64_t kEntry64Offset = 0x200;

uint16_t load16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t load64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
void store8(uint8_t* p, uint8_t v) { *p = v; }
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

uint64_t align_up(uint64_t value, uint64_t alignment) { return (value + alignment - 1) & ~(alignment - 1); }
uint64_t align_down(uint64_t value, uint64_t alignment) { return value & ~(alignment - 1); }
bool is_power_of_two(uint64_t value) { return value != 0 && (value & (value - 1)) == 0; }
std::string mib(uint64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

std::string protocol_string(uint16_t version) {
    return std::to_string(version >> 8) + "." + std::to_string(version & 0xff);
}

// An open file that closes itself.
class File {
public:
    explicit File(int fd) : fd_(fd) {}
    ~File() { if (fd_ >= 0) ::close(fd_); }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

struct OpenedFile {
    std::unique_ptr<File> file;
    uint64_t size_bytes = 0;
};

// `what` names the file in errors: "kernel /boot/vmlinuz".
Result<OpenedFile> open_file(const std::string& path, const std::string& what) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return make_error(what + ": not found");
        return make_error(what + ": cannot open: " + std::strerror(errno));
    }
    OpenedFile opened{std::make_unique<File>(fd), 0};
    struct stat status {};
    if (::fstat(fd, &status) != 0) return make_error(what + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(status.st_mode)) return make_error(what + ": not a regular file");
    opened.size_bytes = static_cast<uint64_t>(status.st_size);
    return opened;
}

Result<void> read_exactly(const std::string& what, int fd, uint8_t* destination, uint64_t length, uint64_t offset) {
    while (length > 0) {
        const ssize_t got = ::pread(fd, destination, std::min<uint64_t>(length, 1u << 30), static_cast<off_t>(offset));
        if (got < 0) {
            if (errno == EINTR) continue;
            return make_error(what + ": read failed: " + std::strerror(errno));
        }
        if (got == 0) return make_error(what + ": file shrank while being read");
        destination += got;
        offset += static_cast<uint64_t>(got);
        length -= static_cast<uint64_t>(got);
    }
    return {};
}

// The real-mode part of a bzImage: at most 255 + 1 sectors.
constexpr size_t kMaximumSetupBytes = 256 * 512;

struct KernelImage {
    OpenedFile file;
    std::vector<uint8_t> setup;      // the real-mode part, which holds the setup header
    size_t header_end = 0;           // end of the setup header to copy into the zero page
    uint16_t version = 0;
    uint64_t payload_bytes = 0;      // the protected-mode kernel that follows the setup
};

// Reads and checks the real-mode part only: the protected-mode kernel goes
// straight into guest RAM once it is known to fit.
Result<KernelImage> read_kernel_setup(const std::string& path, const std::string& what) {
    auto opened = open_file(path, what);
    if (!opened) return opened.error();
    KernelImage image;
    image.file = std::move(*opened);
    const uint64_t file_bytes = image.file.size_bytes;
    if (file_bytes < kMinimumHeaderEnd) return make_error(what + ": not a bzImage (too short for a boot header)");
    std::vector<uint8_t> head(std::min<uint64_t>(file_bytes, kMaximumSetupBytes));
    ATOLL_TRY(read_exactly(what, image.file.file->fd(), head.data(), head.size(), 0));
    const uint8_t* file = head.data();

    if (load16(file + kBootFlag) != kBootFlagMagic) return make_error(what + ": not a bzImage (no 0xAA55 boot flag)");
    if (load32(file + kHeader) != kHeaderMagic) return make_error(what + ": not a bzImage (no \"HdrS\" boot header)");
    image.version = load16(file + kVersion);
    if (image.version < kMinimumProtocol)
        return make_error(what + ": boot protocol " + protocol_string(image.version) +
                          " is too old (the 64-bit entry point needs 2.12 or newer)");
    if (!(file[kLoadflags] & kLoadedHigh)) return make_error(what + ": not a bzImage (a zImage, loaded low)");
    if (!(load16(file + kXloadflags) & kXlfKernel64))
        return make_error(what + ": has no 64-bit entry point (XLF_KERNEL_64 is not set)");

    const unsigned setup_sects = file[kSetupSects] == 0 ? 4 : file[kSetupSects];
    const size_t setup_bytes = (setup_sects + 1) * 512u;
    // boot.rst: the header ends at 0x202 plus the byte at 0x201 (the jump's offset).
    image.header_end = std::min<size_t>(kJump + 2 + file[kJump + 1], kZeroPageBytes);
    if (image.header_end < kMinimumHeaderEnd || image.header_end > setup_bytes)
        return make_error(what + ": not a bzImage (setup header of inconsistent size)");
    const uint64_t declared = setup_bytes + uint64_t{load32(file + kSyssize)} * 16;
    if (file_bytes <= setup_bytes || file_bytes < declared)
        return make_error(what + ": truncated (its header declares " + std::to_string(std::max<uint64_t>(declared, setup_bytes + 1)) +
                          " bytes, the file has " + std::to_string(file_bytes) + ")");
    head.resize(setup_bytes);
    image.setup = std::move(head);
    image.payload_bytes = file_bytes - setup_bytes;
    return image;
}

// The decompressor of a 64-bit kernel works in [base, base + init_size), with
// base = pref_address, or for a relocatable kernel the load address rounded
// up to kernel_alignment when that is higher (arch/x86/boot/compressed/head_64.S).
uint64_t kernel_extent_end(const uint8_t* header, uint64_t load_address, uint64_t payload_bytes) {
    const uint64_t pref_address = load64(header + kPrefAddress);
    uint64_t base = pref_address;
    const uint32_t alignment = load32(header + kKernelAlignment);
    if (header[kRelocatableKernel] && is_power_of_two(alignment))
        base = std::max(align_up(load_address, alignment), pref_address);
    return std::max(load_address + payload_bytes, base + load32(header + kInitSize));
}

void write_e820(uint8_t* zero_page, uint64_t ram_bytes) {
    const auto map = build_e820(ram_bytes);
    const size_t count = std::min(map.size(), kE820MaxEntries);
    for (size_t i = 0; i < count; ++i) {
        uint8_t* entry = zero_page + kE820Table + i * kE820EntryBytes;
        store64(entry, map[i].address);
        store64(entry + 8, map[i].size_bytes);
        store32(entry + 16, static_cast<uint32_t>(map[i].type));
    }
    store8(zero_page + kE820Entries, static_cast<uint8_t>(count));
}

}  // namespace

Result<BootInfo> load_linux(GuestMemory& memory, const LinuxBootSpec& spec) {
    const std::string kernel_what = "kernel " + spec.kernel_path;
    auto image = read_kernel_setup(spec.kernel_path, kernel_what);
    if (!image) return image.error();
    const uint8_t* header = image->setup.data();

    const uint64_t ram_bytes = memory.total_size_bytes();
    const uint64_t low_ram_end = low_ram_bytes(ram_bytes);
    const uint64_t kernel_end = kernel_extent_end(header, kKernelLoadAddress, image->payload_bytes);
    if (kernel_end > low_ram_end)
        return make_error(kernel_what + ": needs " + mib(kernel_end) + " of guest RAM to decompress, the VM has " +
                          mib(low_ram_end) + " below 3 GiB");

    // Command line: cmdline_size excludes the terminating NUL (boot.rst, 2.06+).
    const uint32_t cmdline_limit = load32(header + kCmdlineSize);
    if (spec.cmdline.size() > cmdline_limit || spec.cmdline.size() + 1 > kCommandLineMaxBytes)
        return make_error("kernel command line is " + std::to_string(spec.cmdline.size()) + " bytes, " + kernel_what +
                          " accepts at most " + std::to_string(std::min<uint64_t>(cmdline_limit, kCommandLineMaxBytes - 1)));
    if (spec.cmdline.find('\0') != std::string::npos) return make_error("kernel command line contains a NUL byte");

    // Everything below goes into guest RAM: check the fixed places exist.
    if (!memory.contains(GuestAddress{kBootParamsAddress}, kZeroPageBytes) ||
        !memory.contains(GuestAddress{kCommandLineAddress}, spec.cmdline.size() + 1) ||
        !memory.contains(GuestAddress{kKernelLoadAddress}, image->payload_bytes))
        return make_error(kernel_what + ": guest RAM does not cover the boot area (is it laid out by guest_ram_regions?)");

    BootInfo info;
    info.protocol_version = image->version;
    info.kernel_end = kernel_end;

    if (spec.initrd_path) {
        const std::string initrd_what = "initrd " + *spec.initrd_path;
        auto opened = open_file(*spec.initrd_path, initrd_what);
        if (!opened) return opened.error();
        const uint64_t size = opened->size_bytes;
        uint32_t addr_max = load32(header + kInitrdAddrMax);
        if (addr_max == 0) addr_max = kDefaultInitrdAddrMax;
        // As high as allowed, page aligned, and clear of the kernel's decompression area.
        const uint64_t top = std::min<uint64_t>(uint64_t{addr_max} + 1, low_ram_end);
        if (size > top || align_down(top - size, kPageSize) < kernel_end)
            return make_error(initrd_what + ": " + mib(size) + " does not fit in guest RAM between the kernel (up to " +
                              mib(kernel_end) + ") and " + mib(top));
        info.initrd_address = align_down(top - size, kPageSize);
        info.initrd_size_bytes = size;
        if (size > 0) {
            uint8_t* destination = memory.host_pointer(GuestAddress{info.initrd_address}, size);
            if (!destination) return make_error(initrd_what + ": guest RAM does not cover its place");
            ATOLL_TRY(read_exactly(initrd_what, opened->file->fd(), destination, size, 0));
        }
    }

    // The protected-mode kernel.
    ATOLL_TRY(read_exactly(kernel_what, image->file.file->fd(),
                           memory.host_pointer(GuestAddress{kKernelLoadAddress}, image->payload_bytes),
                           image->payload_bytes, image->setup.size()));

    // Command line, NUL terminated.
    if (!memory.write(GuestAddress{kCommandLineAddress}, spec.cmdline.c_str(), spec.cmdline.size() + 1))
        return make_error("kernel command line: cannot be copied into guest RAM");

    // The zero page: all zero, then the file's setup header, then what a boot
    // loader fills in (boot.rst, "64-bit boot protocol" and "Details of header fields").
    std::vector<uint8_t> zero_page(kZeroPageBytes, 0);
    uint8_t* params = zero_page.data();
    std::memcpy(params + kSetupHeaderStart, header + kSetupHeaderStart, image->header_end - kSetupHeaderStart);
    store8(params + kTypeOfLoader, kLoaderTypeUndefined);
    store8(params + kLoadflags, static_cast<uint8_t>((params[kLoadflags] | kCanUseHeap) & ~kKeepSegments));
    store16(params + kHeapEndPtr, kHeapEnd);
    store32(params + kCode32Start, static_cast<uint32_t>(kKernelLoadAddress));
    store32(params + kCmdLinePtr, static_cast<uint32_t>(kCommandLineAddress));
    store32(params + kExtCmdLinePtr, static_cast<uint32_t>(kCommandLineAddress >> 32));
    store32(params + kRamdiskImage, static_cast<uint32_t>(info.initrd_address));
    store32(params + kRamdiskSize, static_cast<uint32_t>(info.initrd_size_bytes));
    store32(params + kExtRamdiskImage, static_cast<uint32_t>(info.initrd_address >> 32));
    store32(params + kExtRamdiskSize, static_cast<uint32_t>(info.initrd_size_bytes >> 32));
    // Older kernels had padding at 0x70; only 2.14+ read the RSDP from there.
    if (image->version >= kAcpiRsdpProtocol) store64(params + kAcpiRsdpAddr, spec.acpi_rsdp_address);
    write_e820(params, ram_bytes);
    if (!memory.write(GuestAddress{kBootParamsAddress}, params, kZeroPageBytes))
        return make_error("boot parameters: cannot be copied into guest RAM");

    info.entry_point = GuestAddress{kKernelLoadAddress + kEntry64Offset};
    info.boot_params = GuestAddress{kBootParamsAddress};
    return info;
}

}  // namespace atl::vmm::x86
