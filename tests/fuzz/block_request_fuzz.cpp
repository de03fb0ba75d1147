// Fuzzes virtio-blk (virtio 1.2 section 5.2) with driver-built requests whose
// every field is fuzz-chosen, served against a 64 KiB temporary disk image.
//
// Input: byte 0 = flags (bit 0: EVENT_IDX, bit 1: use the read-only disk), then
// records until the input ends (at most 64):
//   u8  shape   bits 0-2 request type: IN OUT FLUSH GET_ID DISCARD WRITE_ZEROES 2(unknown) raw-u32
//               bit 3 indirect table; bit 4 no writable buffer at all;
//               bit 5 short header (length = next byte % 16); bit 6 status shares the last data buffer;
//               bit 7 then corrupt the ring (a descriptor loop) and stop
//   [u32 raw type]       when the type bits are 7
//   [u8 header length]   when bit 5 is set
//   u8  sector mode      0: u8 sector; 1: capacity - u8; 2: u64 sector; 3: u16 sector
//   u8/u16/u64 sector
//   u16 readable payload bytes after the header (at most 8 KiB), u16 writable data bytes (at most 8 KiB)
//   u8  piece size per descriptor (0: one descriptor per part)
//   the readable payload itself (zeros when the input runs out)
//
// The oracle: no crash or sanitizer report; each request completes exactly once
// with a used length no larger than its writable bytes and a known status; the
// image never changes size; the read-only image never changes.

#include "devices/virtio/block.h"
#include "fuzz_input.h"
#include "offered_chain.h"
#include "virtio_test_driver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using atl::fuzz::FuzzInput;
using atl::fuzz::OfferedChain;
using atl::vmm::virtio::BlockDevice;
using atl::vmm::virtio::testing::DriverBuffer;
using atl::vmm::virtio::testing::FakeInterrupt;
using atl::vmm::virtio::testing::TestDriver;

namespace {

constexpr uint64_t kDiskBytes = 64 << 10;
constexpr uint64_t kDiskSectors = kDiskBytes / 512;
constexpr uint32_t kMaxPartBytes = 8 << 10;
constexpr uint16_t kQueueSize = 64;
constexpr int kMaxRecords = 64;

uint8_t pattern_byte(uint64_t offset) { return static_cast<uint8_t>(offset * 37 + 11); }

struct Disk {
    std::string path;
    std::unique_ptr<BlockDevice> device;
    int observer_fd = -1;  // the test's own view of the image
};

Disk make_disk(const char* name, bool read_only) {
    const char* base = getenv("TMPDIR");
    Disk disk;
    disk.path = std::string(base && *base ? base : "/tmp") + "/atoll-fuzz-" + name + "-XXXXXX";
    const int fd = mkstemp(disk.path.data());
    FUZZ_CHECK(fd >= 0);
    std::vector<uint8_t> bytes(kDiskBytes);
    for (uint64_t i = 0; i < kDiskBytes; ++i) bytes[i] = pattern_byte(i);
    FUZZ_CHECK(pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    close(fd);
    auto opened = BlockDevice::open(disk.path, read_only, "fuzz-disk");
    FUZZ_CHECK(opened.ok());
    disk.device = std::move(*opened);
    disk.observer_fd = ::open(disk.path.c_str(), O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(disk.observer_fd >= 0);
    // Both descriptors stay open; the name can go now.
    unlink(disk.path.c_str());
    return disk;
}

Disk& disk(bool read_only) {
    static Disk writable = make_disk("rw", false);
    static Disk readonly = make_disk("ro", true);
    return read_only ? readonly : writable;
}

const uint32_t kTypes[] = {BlockDevice::kRequestIn,      BlockDevice::kRequestOut,
                           BlockDevice::kRequestFlush,   BlockDevice::kRequestGetId,
                           BlockDevice::kRequestDiscard, BlockDevice::kRequestWriteZeroes,
                           2};

// Splits [address, address + length) into descriptors of at most `piece` bytes,
// coarsening the pieces so the whole part stays within `max_pieces`.
void add_part(std::vector<DriverBuffer>& buffers, uint64_t address, uint32_t length, uint32_t piece,
              bool writable, uint32_t max_pieces) {
    if (length == 0) return;
    if (piece == 0 || piece > length) piece = length;
    piece = std::max(piece, (length + max_pieces - 1) / max_pieces);
    for (uint32_t done = 0; done < length; done += piece)
        buffers.push_back({address + done, std::min(piece, length - done), writable});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    FuzzInput input(data, size);
    const uint8_t flags = input.byte();
    const bool event_index = flags & 1;
    const bool read_only = flags & 2;
    BlockDevice& device = *disk(read_only).device;

    TestDriver driver(kQueueSize, 1 << 20);
    FakeInterrupt interrupt;
    device.reset();
    FUZZ_CHECK(device.activate(driver.activation_context(event_index, &interrupt)).ok());

    for (int record = 0; record < kMaxRecords && !input.empty(); ++record) {
        driver.reset_data();
        const uint8_t shape = input.byte();
        const uint32_t type = (shape & 7) == 7 ? input.take<uint32_t>() : kTypes[shape & 7];
        const bool indirect = shape & 8;
        const bool no_writable = shape & 16;
        const uint32_t header_length = (shape & 32) ? input.byte() % 16 : 16;
        const bool status_shares_data = shape & 64;
        const bool corrupt = shape & 128;

        uint64_t sector = 0;
        switch (input.byte() % 4) {
        case 0: sector = input.byte(); break;
        case 1: sector = kDiskSectors - input.byte(); break;
        case 2: sector = input.take<uint64_t>(); break;
        default: sector = input.take<uint16_t>(); break;
        }
        const uint32_t out_length = input.take<uint16_t>() % (kMaxPartBytes + 1);
        const uint32_t in_length = input.take<uint16_t>() % (kMaxPartBytes + 1);
        const uint32_t piece = input.byte();
        const auto payload = input.bytes(out_length);

        uint8_t header[16];
        std::memcpy(header, &type, 4);
        std::memset(header + 4, 0, 4);
        std::memcpy(header + 8, &sector, 8);

        // Direct chains must fit the ring; indirect tables get up to 1024 entries.
        const uint32_t max_pieces = indirect ? 300 : 18;
        std::vector<DriverBuffer> buffers;
        if (header_length > 0)
            add_part(buffers, driver.put(std::span<const uint8_t>(header, header_length)), header_length, piece,
                     false, max_pieces);
        if (out_length > 0) add_part(buffers, driver.put(payload), out_length, piece, false, max_pieces);
        uint64_t status_address = 0;
        uint64_t writable_bytes = 0;
        if (!no_writable) {
            const uint32_t data_bytes = in_length + (status_shares_data ? 1 : 0);
            const uint64_t in_address = driver.fill(data_bytes + 1, 0xEE);
            if (data_bytes > 0) add_part(buffers, in_address, data_bytes, piece, true, max_pieces);
            if (status_shares_data) {
                status_address = in_address + data_bytes - 1;
            } else {
                status_address = in_address + data_bytes;
                buffers.push_back({status_address, 1, true});
            }
            writable_bytes = in_length + 1;
        }
        if (buffers.empty()) buffers.push_back({driver.fill(16, 0), 16, false});

        const OfferedChain chain(driver.queue(0), interrupt, buffers, indirect, corrupt, driver.data_base());
        device.queue_notify(0);

        if (corrupt) {
            chain.check_broken_ring();
            break;
        }
        chain.check_completed_at_once(writable_bytes);
        if (!no_writable) {
            const uint8_t status = driver.get_byte(status_address);
            FUZZ_CHECK(status == BlockDevice::kStatusOk || status == BlockDevice::kStatusIoError ||
                       status == BlockDevice::kStatusUnsupported);
        }
    }

    // Neither request kind may grow or shrink the image (FALLOC_FL_KEEP_SIZE),
    // and nothing may change a read-only one.
    const Disk& used_disk = disk(read_only);
    struct stat info {};
    FUZZ_CHECK(fstat(used_disk.observer_fd, &info) == 0 && static_cast<uint64_t>(info.st_size) == kDiskBytes);
    if (read_only) {
        static std::vector<uint8_t> contents(kDiskBytes);
        FUZZ_CHECK(pread(used_disk.observer_fd, contents.data(), kDiskBytes, 0) == static_cast<ssize_t>(kDiskBytes));
        for (uint64_t i = 0; i < kDiskBytes; ++i) FUZZ_CHECK(contents[i] == pattern_byte(i));
    }
    return 0;
}
