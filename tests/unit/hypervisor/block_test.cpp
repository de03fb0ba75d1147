#include "devices/virtio/block.h"
#include "vmm/event_loop.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace atl::vmm::virtio {
namespace {

using testing::DriverBuffer;
using testing::FakeInterrupt;
using testing::TestDriver;

constexpr uint64_t kDiskBytes = 1 << 20;  // 2048 sectors
constexpr uint64_t kDiskSectors = kDiskBytes / 512;

struct [[gnu::packed]] Header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct [[gnu::packed]] Segment {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

uint8_t pattern_byte(uint64_t offset) { return static_cast<uint8_t>((offset * 131) ^ (offset >> 9)); }

// A disk image file with a known pattern, removed at the end of the test.
class TempDisk {
public:
    explicit TempDisk(uint64_t size_bytes = kDiskBytes) {
        const char* base = getenv("TMPDIR");
        path_ = std::string(base && *base ? base : "/tmp") + "/atoll-block-test-XXXXXX";
        const int fd = mkstemp(path_.data());
        EXPECT_GE(fd, 0);
        std::vector<uint8_t> bytes(size_bytes);
        for (uint64_t i = 0; i < size_bytes; ++i) bytes[i] = pattern_byte(i);
        EXPECT_EQ(pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
        close(fd);
    }
    ~TempDisk() { unlink(path_.c_str()); }
    const std::string& path() const { return path_; }
    std::vector<uint8_t> read(uint64_t offset, uint64_t length) const {
        std::vector<uint8_t> bytes(length);
        const int fd = ::open(path_.c_str(), O_RDONLY);
        EXPECT_EQ(pread(fd, bytes.data(), length, offset), static_cast<ssize_t>(length));
        close(fd);
        return bytes;
    }
    std::vector<uint8_t> expected_pattern(uint64_t offset, uint64_t length) const {
        std::vector<uint8_t> bytes(length);
        for (uint64_t i = 0; i < length; ++i) bytes[i] = pattern_byte(offset + i);
        return bytes;
    }

private:
    std::string path_;
};

struct Outcome {
    uint8_t status = 0xFF;
    uint32_t used_length = 0;
    std::vector<uint8_t> data;  // what the device wrote into the data buffers
    bool completed = false;
};

class BlockTest : public ::testing::Test {
protected:
    void SetUp() override { open_device(false); }

    void open_device(bool read_only, bool event_index = false) {
        device_.reset();
        auto opened = BlockDevice::open(disk_.path(), read_only, "atoll-disk-0");
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        device_ = std::move(*opened);
        ASSERT_TRUE(device_->activate(driver_.activation_context(event_index, &interrupt_)).ok());
    }

    // Submits one request laid out as Linux does: header, data, status byte,
    // each in its own descriptor, and returns what came back.
    Outcome submit(uint32_t type, uint64_t sector, std::vector<uint8_t> out_data = {}, uint32_t in_data_bytes = 0,
                   bool indirect = false) {
        driver_.reset_data();
        std::vector<DriverBuffer> buffers;
        const Header header{type, 0, sector};
        buffers.push_back({driver_.put_object(header), sizeof header, false});
        if (!out_data.empty())
            buffers.push_back({driver_.put(out_data), static_cast<uint32_t>(out_data.size()), false});
        uint64_t in_address = 0;
        if (in_data_bytes > 0) {
            in_address = driver_.fill(in_data_bytes, 0xEE);
            buffers.push_back({in_address, in_data_bytes, true});
        }
        const uint64_t status_address = driver_.fill(1, 0xFF);
        buffers.push_back({status_address, 1, true});
        return run(buffers, status_address, in_address, in_data_bytes, indirect);
    }

    Outcome run(const std::vector<DriverBuffer>& buffers, uint64_t status_address, uint64_t in_address,
                uint32_t in_data_bytes, bool indirect = false) {
        const uint16_t used_before = driver_.used_index();
        const uint16_t head = indirect ? driver_.add_indirect_chain(buffers) : driver_.add_chain(buffers);
        device_->queue_notify(0);
        Outcome outcome;
        if (driver_.used_index() != static_cast<uint16_t>(used_before + 1)) return outcome;
        const auto used = driver_.used_element(used_before);
        EXPECT_EQ(used.id, head);
        outcome.completed = true;
        outcome.used_length = used.length;
        outcome.status = driver_.get_byte(status_address);
        if (in_data_bytes) outcome.data = driver_.get(in_address, in_data_bytes);
        return outcome;
    }

    TempDisk disk_;
    TestDriver driver_{64, 1 << 20};
    FakeInterrupt interrupt_;
    std::unique_ptr<BlockDevice> device_;
};

// ---- opening ---------------------------------------------------------------

TEST(BlockOpen, MissingImageIsNotFound) {
    auto opened = BlockDevice::open("/nonexistent/atoll/disk.img", false, "x");
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().message, "disk image /nonexistent/atoll/disk.img: not found");
}

TEST(BlockOpen, DirectoryIsRefused) {
    auto opened = BlockDevice::open("/tmp", true, "x");
    ASSERT_FALSE(opened.ok());
    EXPECT_NE(opened.error().message.find("disk image /tmp: "), std::string::npos);
}

// The error text for an image the VMM's user may not open. Root bypasses file
// permissions, so as root the open runs in a child that drops to "nobody".
std::string open_error_as_unprivileged_user(const std::string& path, bool read_only) {
    if (geteuid() != 0) {
        auto opened = BlockDevice::open(path, read_only, "x");
        return opened.ok() ? "opened" : opened.error().message;
    }
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return "pipe failed";
    const pid_t child = fork();
    if (child == 0) {
        close(pipe_fds[0]);
        std::string message = "cannot drop privileges";
        if (setgid(65534) == 0 && setuid(65534) == 0) {
            auto opened = BlockDevice::open(path, read_only, "x");
            message = opened.ok() ? "opened" : opened.error().message;
        }
        [[maybe_unused]] auto written = write(pipe_fds[1], message.data(), message.size());
        _exit(0);
    }
    close(pipe_fds[1]);
    std::string message;
    char buffer[256];
    for (ssize_t got; (got = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) message.append(buffer, got);
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    return message;
}

TEST(BlockOpen, UnreadableImageIsPermissionDenied) {
    TempDisk disk;
    chmod(disk.path().c_str(), 0400);
    EXPECT_EQ(open_error_as_unprivileged_user(disk.path(), false),
              "disk image " + disk.path() + ": permission denied (open read-write)");
    chmod(disk.path().c_str(), 0000);
    EXPECT_EQ(open_error_as_unprivileged_user(disk.path(), true),
              "disk image " + disk.path() + ": permission denied (open read-only)");
}

TEST(BlockOpen, AWritableImageCannotBeOpenedTwice) {
    TempDisk disk;
    {
        auto first = BlockDevice::open(disk.path(), false, "a");
        ASSERT_TRUE(first.ok());
        auto second = BlockDevice::open(disk.path(), false, "b");
        ASSERT_FALSE(second.ok());
        EXPECT_EQ(second.error().message,
                  "disk image " + disk.path() + ": in use by another VM or process (it is locked)");
        auto reader = BlockDevice::open(disk.path(), true, "c");
        EXPECT_FALSE(reader.ok());
    }
    // Destroying the device released the lock.
    EXPECT_TRUE(BlockDevice::open(disk.path(), false, "d").ok());
}

TEST(BlockOpen, ReadOnlyImagesCanBeShared) {
    TempDisk disk;
    auto first = BlockDevice::open(disk.path(), true, "a");
    auto second = BlockDevice::open(disk.path(), true, "b");
    EXPECT_TRUE(first.ok());
    EXPECT_TRUE(second.ok());
}

// ---- features and configuration --------------------------------------------

TEST_F(BlockTest, OffersFeaturesAndConfiguration) {
    const uint64_t features = device_->offered_features();
    EXPECT_TRUE(features & kFeatureVersion1);
    EXPECT_TRUE(features & kFeatureRingIndirectDesc);
    EXPECT_TRUE(features & kFeatureRingEventIdx);
    EXPECT_TRUE(features & BlockDevice::kFeatureFlush);
    EXPECT_TRUE(features & BlockDevice::kFeatureDiscard);
    EXPECT_TRUE(features & BlockDevice::kFeatureWriteZeroes);
    EXPECT_TRUE(features & BlockDevice::kFeatureSegMax);
    EXPECT_TRUE(features & BlockDevice::kFeatureBlockSize);
    EXPECT_FALSE(features & BlockDevice::kFeatureReadOnly);
    EXPECT_EQ(device_->type(), kDeviceBlock);
    EXPECT_EQ(device_->queue_count(), 1);

    uint8_t config[64];
    device_->read_config(0, config);
    uint64_t capacity;
    std::memcpy(&capacity, config, 8);
    EXPECT_EQ(capacity, kDiskSectors);
    uint32_t seg_max, blk_size, max_discard_sectors, max_discard_seg, max_wz_sectors, max_wz_seg;
    std::memcpy(&seg_max, config + 12, 4);
    std::memcpy(&blk_size, config + 20, 4);
    std::memcpy(&max_discard_sectors, config + 36, 4);
    std::memcpy(&max_discard_seg, config + 40, 4);
    std::memcpy(&max_wz_sectors, config + 48, 4);
    std::memcpy(&max_wz_seg, config + 52, 4);
    EXPECT_EQ(seg_max, 254u);
    EXPECT_EQ(blk_size, 512u);
    EXPECT_EQ(max_discard_sectors, BlockDevice::kMaxDiscardSectors);
    EXPECT_EQ(max_discard_seg, BlockDevice::kMaxDiscardSegments);
    EXPECT_EQ(max_wz_sectors, BlockDevice::kMaxDiscardSectors);
    EXPECT_EQ(max_wz_seg, BlockDevice::kMaxDiscardSegments);
    EXPECT_EQ(config[56], 1);  // write_zeroes_may_unmap
    EXPECT_EQ(config[60], 0);  // past the structure: zeros

    uint8_t far[4] = {1, 1, 1, 1};
    device_->read_config(~0ull - 1, far);
    EXPECT_EQ(std::vector<uint8_t>(far, far + 4), std::vector<uint8_t>(4, 0));
    // A read in the middle of a field gives its bytes.
    uint8_t middle[2];
    device_->read_config(1, middle);
    EXPECT_EQ(middle[0], config[1]);
    EXPECT_EQ(middle[1], config[2]);
}

// ---- reads and writes ----------------------------------------------------

TEST_F(BlockTest, ReadsSectors) {
    const auto outcome = submit(BlockDevice::kRequestIn, 3, {}, 1024);
    ASSERT_TRUE(outcome.completed);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.used_length, 1025u);
    EXPECT_EQ(outcome.data, disk_.expected_pattern(3 * 512, 1024));
    EXPECT_EQ(interrupt_.queue_notifications, std::vector<uint16_t>{0});
}

TEST_F(BlockTest, ReadsTheLastSector) {
    const auto outcome = submit(BlockDevice::kRequestIn, kDiskSectors - 1, {}, 512);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.data, disk_.expected_pattern(kDiskBytes - 512, 512));
}

TEST_F(BlockTest, WritesSectors) {
    std::vector<uint8_t> data(1024);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 1);
    const auto outcome = submit(BlockDevice::kRequestOut, 5, data);
    ASSERT_TRUE(outcome.completed);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.used_length, 1u);
    EXPECT_EQ(disk_.read(5 * 512, 1024), data);
    // Neighbours untouched.
    EXPECT_EQ(disk_.read(4 * 512, 512), disk_.expected_pattern(4 * 512, 512));
    EXPECT_EQ(disk_.read(7 * 512, 512), disk_.expected_pattern(7 * 512, 512));
}

TEST_F(BlockTest, HandlesHeadersAndDataSplitAcrossDescriptors) {
    const Header header{BlockDevice::kRequestOut, 0, 9};
    const auto* header_bytes = reinterpret_cast<const uint8_t*>(&header);
    std::vector<uint8_t> data(512);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xA0 ^ i);
    const uint64_t status = driver_.fill(1, 0xFF);
    std::vector<DriverBuffer> buffers = {
        {driver_.put(std::span<const uint8_t>(header_bytes, 5)), 5, false},
        {driver_.put(std::span<const uint8_t>(header_bytes + 5, 11)), 11, false},
        {driver_.put(std::span<const uint8_t>(data.data(), 100)), 100, false},
        {driver_.put(std::span<const uint8_t>(data.data() + 100, 412)), 412, false},
        {status, 1, true},
    };
    const auto outcome = run(buffers, status, 0, 0);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(disk_.read(9 * 512, 512), data);
}

TEST_F(BlockTest, StatusSharesTheLastDescriptorWithData) {
    // Data and status in one writable buffer: the status is its last byte.
    const uint64_t header = driver_.put_object(Header{BlockDevice::kRequestIn, 0, 2});
    const uint64_t in = driver_.fill(513, 0xEE);
    const auto outcome = run({{header, 16, false}, {in, 513, true}}, in + 512, in, 512);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.used_length, 513u);
    EXPECT_EQ(outcome.data, disk_.expected_pattern(2 * 512, 512));
}

TEST_F(BlockTest, ServesIndirectRequests) {
    const auto outcome = submit(BlockDevice::kRequestIn, 10, {}, 2048, /*indirect=*/true);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.data, disk_.expected_pattern(10 * 512, 2048));
}

TEST_F(BlockTest, ProcessesEveryAvailableRequestAndInterruptsOnce) {
    std::vector<uint64_t> status_addresses;
    for (int i = 0; i < 8; ++i) {
        const uint64_t header = driver_.put_object(Header{BlockDevice::kRequestIn, 0, static_cast<uint64_t>(i)});
        const uint64_t data = driver_.fill(512, 0);
        const uint64_t status = driver_.fill(1, 0xFF);
        driver_.add_chain({{header, 16, false}, {data, 512, true}, {status, 1, true}});
        status_addresses.push_back(status);
    }
    device_->queue_notify(0);
    EXPECT_EQ(driver_.used_index(), 8);
    for (auto address : status_addresses) EXPECT_EQ(driver_.get_byte(address), BlockDevice::kStatusOk);
    EXPECT_EQ(interrupt_.queue_notifications.size(), 1u);
    EXPECT_EQ(device_->statistics().requests, 8u);
}

TEST_F(BlockTest, EventIndexSuppressesInterrupts) {
    open_device(false, /*event_index=*/true);
    submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(interrupt_.queue_notifications.size(), 1u);  // the first one always goes out
    driver_.set_used_event(5);                              // not before the 6th used entry
    submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(interrupt_.queue_notifications.size(), 1u);
    for (int i = 0; i < 4; ++i) submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(interrupt_.queue_notifications.size(), 2u);
}

// ---- other request types -------------------------------------------------

TEST_F(BlockTest, Flushes) {
    const auto outcome = submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.used_length, 1u);
}

TEST_F(BlockTest, ReturnsTheSerialAsId) {
    const auto outcome = submit(BlockDevice::kRequestGetId, 0, {}, 20);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.used_length, 21u);
    std::vector<uint8_t> expected(20, 0);
    const std::string serial = "atoll-disk-0";
    std::memcpy(expected.data(), serial.data(), serial.size());
    EXPECT_EQ(outcome.data, expected);
}

TEST(BlockId, LongSerialsAreCutTo20BytesWithoutTerminator) {
    TempDisk disk;
    auto device = BlockDevice::open(disk.path(), true, "0123456789abcdefghijKLMNOP");
    ASSERT_TRUE(device.ok());
    TestDriver driver(8);
    FakeInterrupt interrupt;
    ASSERT_TRUE((*device)->activate(driver.activation_context(false, &interrupt)).ok());
    const uint64_t header = driver.put_object(Header{BlockDevice::kRequestGetId, 0, 0});
    const uint64_t id = driver.fill(20, 0xEE);
    const uint64_t status = driver.fill(1, 0xFF);
    driver.add_chain({{header, 16, false}, {id, 20, true}, {status, 1, true}});
    (*device)->queue_notify(0);
    const auto bytes = driver.get(id, 20);
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "0123456789abcdefghij");
    EXPECT_EQ(driver.get_byte(status), BlockDevice::kStatusOk);
}

TEST_F(BlockTest, WriteZeroesZeroesTheRange) {
    for (uint32_t flags : {0u, 1u}) {  // plain, then with unmap allowed
        const uint64_t sector = flags ? 100 : 20;
        const Segment segment{sector, 3, flags};
        std::vector<uint8_t> payload(sizeof segment);
        std::memcpy(payload.data(), &segment, sizeof segment);
        const auto outcome = submit(BlockDevice::kRequestWriteZeroes, 0, payload);
        EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
        EXPECT_EQ(disk_.read(sector * 512, 3 * 512), std::vector<uint8_t>(3 * 512, 0));
        EXPECT_EQ(disk_.read((sector + 3) * 512, 512), disk_.expected_pattern((sector + 3) * 512, 512));
        EXPECT_EQ(disk_.read((sector - 1) * 512, 512), disk_.expected_pattern((sector - 1) * 512, 512));
    }
    struct stat info {};
    stat(disk_.path().c_str(), &info);
    EXPECT_EQ(static_cast<uint64_t>(info.st_size), kDiskBytes);  // never grows or shrinks the image
}

TEST_F(BlockTest, WriteZeroesWithSeveralSegments) {
    const Segment segments[2] = {{0, 1, 0}, {kDiskSectors - 1, 1, 0}};
    std::vector<uint8_t> payload(sizeof segments);
    std::memcpy(payload.data(), segments, sizeof segments);
    EXPECT_EQ(submit(BlockDevice::kRequestWriteZeroes, 0, payload).status, BlockDevice::kStatusOk);
    EXPECT_EQ(disk_.read(0, 512), std::vector<uint8_t>(512, 0));
    EXPECT_EQ(disk_.read(kDiskBytes - 512, 512), std::vector<uint8_t>(512, 0));
    EXPECT_EQ(disk_.read(512, 512), disk_.expected_pattern(512, 512));
}

TEST_F(BlockTest, Discards) {
    const Segment segment{64, 16, 0};
    std::vector<uint8_t> payload(sizeof segment);
    std::memcpy(payload.data(), &segment, sizeof segment);
    const auto outcome = submit(BlockDevice::kRequestDiscard, 0, payload);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(disk_.read(80 * 512, 512), disk_.expected_pattern(80 * 512, 512));
}

TEST_F(BlockTest, DiscardWithUnmapOrUnknownFlagsIsUnsupported) {
    for (auto [type, flags] : {std::pair{BlockDevice::kRequestDiscard, 1u}, std::pair{BlockDevice::kRequestDiscard, 2u},
                               std::pair{BlockDevice::kRequestWriteZeroes, 0x80000000u}}) {
        const Segment segment{1, 1, flags};
        std::vector<uint8_t> payload(sizeof segment);
        std::memcpy(payload.data(), &segment, sizeof segment);
        EXPECT_EQ(submit(type, 0, payload).status, BlockDevice::kStatusUnsupported) << type << " " << flags;
    }
    EXPECT_EQ(disk_.read(512, 512), disk_.expected_pattern(512, 512));
}

std::vector<uint8_t> segments_payload(std::initializer_list<Segment> segments) {
    std::vector<uint8_t> payload;
    for (const auto& segment : segments) {
        const auto* bytes = reinterpret_cast<const uint8_t*>(&segment);
        payload.insert(payload.end(), bytes, bytes + sizeof segment);
    }
    return payload;
}

TEST_F(BlockTest, WriteZeroesOutsideTheDiskChangesNothing) {
    // The second segment is past the end: the first must not be executed either.
    EXPECT_EQ(submit(BlockDevice::kRequestWriteZeroes, 0, segments_payload({{10, 1, 0}, {kDiskSectors, 1, 0}})).status,
              BlockDevice::kStatusIoError);
    EXPECT_EQ(disk_.read(10 * 512, 512), disk_.expected_pattern(10 * 512, 512));

    EXPECT_EQ(submit(BlockDevice::kRequestDiscard, 0, segments_payload({{0, BlockDevice::kMaxDiscardSectors + 1, 0}}))
                  .status,
              BlockDevice::kStatusIoError);
    // A segment payload whose size is not a multiple of 16.
    EXPECT_EQ(submit(BlockDevice::kRequestDiscard, 0, std::vector<uint8_t>(20, 0)).status, BlockDevice::kStatusIoError);
    // More segments than max_discard_seg.
    EXPECT_EQ(
        submit(BlockDevice::kRequestDiscard, 0, std::vector<uint8_t>(16 * (BlockDevice::kMaxDiscardSegments + 1), 0))
            .status,
        BlockDevice::kStatusIoError);
}

// ---- refusals ------------------------------------------------------------

TEST_F(BlockTest, UnknownRequestTypeIsUnsupported) {
    for (uint32_t type : {2u, 3u, 7u, 10u, 14u, 0x80000000u}) {
        const auto outcome = submit(type, 0, {}, 512);
        EXPECT_EQ(outcome.status, BlockDevice::kStatusUnsupported) << type;
        EXPECT_EQ(outcome.used_length, 1u);
    }
    EXPECT_EQ(device_->statistics().unsupported, 6u);
}

TEST_F(BlockTest, OutOfRangeSectorsAreIoErrors) {
    EXPECT_EQ(submit(BlockDevice::kRequestIn, kDiskSectors, {}, 512).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestIn, kDiskSectors - 1, {}, 1024).status, BlockDevice::kStatusIoError);
    // sector * 512 and sector + count overflow 64 bits.
    EXPECT_EQ(submit(BlockDevice::kRequestIn, ~0ull, {}, 512).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestIn, ~0ull / 512 + 1, {}, 512).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestOut, ~0ull - 1, std::vector<uint8_t>(1024, 1)).status,
              BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestOut, kDiskSectors, std::vector<uint8_t>(512, 1)).status,
              BlockDevice::kStatusIoError);
    EXPECT_EQ(disk_.read(kDiskBytes - 1024, 1024), disk_.expected_pattern(kDiskBytes - 1024, 1024));
    EXPECT_EQ(device_->statistics().io_errors, 6u);
}

TEST_F(BlockTest, PartialSectorTransfersAreIoErrors) {
    EXPECT_EQ(submit(BlockDevice::kRequestIn, 0, {}, 100).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestOut, 0, std::vector<uint8_t>(513, 1)).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(disk_.read(0, 1024), disk_.expected_pattern(0, 1024));
}

TEST_F(BlockTest, ReadOnlyDiskRefusesWrites) {
    open_device(true);
    EXPECT_TRUE(device_->offered_features() & BlockDevice::kFeatureReadOnly);
    EXPECT_FALSE(device_->offered_features() & BlockDevice::kFeatureDiscard);
    EXPECT_FALSE(device_->offered_features() & BlockDevice::kFeatureWriteZeroes);

    EXPECT_EQ(submit(BlockDevice::kRequestOut, 0, std::vector<uint8_t>(512, 0x55)).status,
              BlockDevice::kStatusIoError);
    const Segment segment{0, 1, 0};
    std::vector<uint8_t> payload(sizeof segment);
    std::memcpy(payload.data(), &segment, sizeof segment);
    EXPECT_EQ(submit(BlockDevice::kRequestWriteZeroes, 0, payload).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(submit(BlockDevice::kRequestDiscard, 0, payload).status, BlockDevice::kStatusIoError);
    EXPECT_EQ(disk_.read(0, 512), disk_.expected_pattern(0, 512));

    // Reads still work.
    const auto outcome = submit(BlockDevice::kRequestIn, 1, {}, 512);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusOk);
    EXPECT_EQ(outcome.data, disk_.expected_pattern(512, 512));
}

// ---- malformed chains ----------------------------------------------------

TEST_F(BlockTest, ChainWithoutStatusByteIsCompletedWithZeroLength) {
    const uint64_t header = driver_.put_object(Header{BlockDevice::kRequestOut, 0, 0});
    const uint64_t data = driver_.fill(512, 0x11);
    const uint16_t head = driver_.add_chain({{header, 16, false}, {data, 512, false}});
    device_->queue_notify(0);
    ASSERT_EQ(driver_.used_index(), 1);
    EXPECT_EQ(driver_.used_element(0).id, head);
    EXPECT_EQ(driver_.used_element(0).length, 0u);
    EXPECT_EQ(device_->statistics().malformed, 1u);
    EXPECT_EQ(disk_.read(0, 512), disk_.expected_pattern(0, 512));  // nothing written
    // The device keeps working.
    EXPECT_EQ(submit(BlockDevice::kRequestFlush, 0).status, BlockDevice::kStatusOk);
    EXPECT_TRUE(interrupt_.device_errors.empty());
}

TEST_F(BlockTest, ShortHeaderIsAnIoError) {
    const uint64_t header = driver_.fill(8, 0);
    const uint64_t status = driver_.fill(1, 0xFF);
    const auto outcome = run({{header, 8, false}, {status, 1, true}}, status, 0, 0);
    EXPECT_EQ(outcome.status, BlockDevice::kStatusIoError);
    EXPECT_EQ(outcome.used_length, 1u);
    EXPECT_EQ(device_->statistics().malformed, 1u);
}

TEST_F(BlockTest, RingErrorStopsTheDeviceUntilReset) {
    driver_.write_descriptor(0, driver_.fill(16, 0), 16, testing::kDescNext, 0);  // a loop
    driver_.offer(0);
    device_->queue_notify(0);
    ASSERT_EQ(interrupt_.device_errors.size(), 1u);
    EXPECT_NE(interrupt_.device_errors[0].find("virtio-blk atoll-disk-0: "), std::string::npos);
    EXPECT_EQ(driver_.used_index(), 0);

    // Further notifications are ignored, even for good requests.
    driver_.set_next_descriptor(1);
    submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(driver_.used_index(), 0);
    EXPECT_EQ(interrupt_.device_errors.size(), 1u);

    // After a reset and a fresh ring the device serves again.
    device_->reset();
    device_->queue_notify(0);  // not activated: ignored
    TestDriver fresh(16);
    ASSERT_TRUE(device_->activate(fresh.activation_context(false, &interrupt_)).ok());
    const uint64_t header = fresh.put_object(Header{BlockDevice::kRequestFlush, 0, 0});
    const uint64_t status = fresh.fill(1, 0xFF);
    fresh.add_chain({{header, 16, false}, {status, 1, true}});
    device_->queue_notify(0);
    EXPECT_EQ(fresh.used_index(), 1);
    EXPECT_EQ(fresh.get_byte(status), BlockDevice::kStatusOk);
}

TEST_F(BlockTest, DisabledOrUnknownQueuesAreIgnored) {
    auto context = driver_.activation_context(false, &interrupt_);
    context.queue_enabled[0] = false;
    device_->reset();
    ASSERT_TRUE(device_->activate(std::move(context)).ok());
    submit(BlockDevice::kRequestFlush, 0);
    EXPECT_EQ(driver_.used_index(), 0);
    device_->queue_notify(7);
    EXPECT_TRUE(interrupt_.device_errors.empty());
}

TEST(BlockActivate, RefusesAContextWithoutQueues) {
    TempDisk disk;
    auto device = BlockDevice::open(disk.path(), true, "x");
    ASSERT_TRUE(device.ok());
    ActivationContext context;
    context.memory = GuestMemory::create_flat(4096);
    EXPECT_FALSE((*device)->activate(std::move(context)).ok());
}

}  // namespace
}  // namespace atl::vmm::virtio

namespace atl::vmm::virtio {
namespace {

// With an event loop, as in atoll-vmm: requests run on the device's workers and
// complete through the loop, several at a time, and a reset waits for them.
class BlockWorkersTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = BlockDevice::open(disk_.path(), false, "atoll-disk-0");
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        device_ = std::move(*opened);
        auto context = driver_.activation_context(false, &interrupt_);
        context.event_loop = &loop_;
        ASSERT_TRUE(device_->activate(std::move(context)).ok());
    }

    // Offers a read of `sectors` at `sector`; returns the data and status addresses.
    std::pair<uint64_t, uint64_t> offer_read(uint64_t sector, uint32_t sectors) {
        const Header header{BlockDevice::kRequestIn, 0, sector};
        const uint64_t data = driver_.fill(sectors * 512, 0xEE);
        const uint64_t status = driver_.fill(1, 0xFF);
        driver_.add_chain({{driver_.put_object(header), sizeof header, false}, {data, sectors * 512, true}, {status, 1, true}});
        return {data, status};
    }

    // Offers a write of `sectors` at `sector` (writes always go to a worker).
    uint64_t offer_write(uint64_t sector, uint32_t sectors) {
        const Header header{BlockDevice::kRequestOut, 0, sector};
        const uint64_t data = driver_.fill(sectors * 512, 0x5A);
        const uint64_t status = driver_.fill(1, 0xFF);
        driver_.add_chain({{driver_.put_object(header), sizeof header, false}, {data, sectors * 512, false}, {status, 1, true}});
        return status;
    }

    bool run_until_used(uint16_t count) {
        for (int i = 0; i < 500 && driver_.used_index() != count; ++i) loop_.run_once(std::chrono::milliseconds(10));
        return driver_.used_index() == count;
    }

    TempDisk disk_{4 << 20};
    TestDriver driver_{64, 2 << 20};
    FakeInterrupt interrupt_;
    EventLoop loop_;
    std::unique_ptr<BlockDevice> device_;
};

TEST_F(BlockWorkersTest, ManyRequestsCompleteThroughTheLoopWithTheRightData) {
    constexpr uint16_t kRequests = 20;  // 3 descriptors each in a 64-entry table
    std::vector<std::pair<uint64_t, uint64_t>> requests;
    for (uint16_t i = 0; i < kRequests; ++i) requests.push_back(offer_read(i * 64, 64));
    device_->queue_notify(0);
    ASSERT_TRUE(run_until_used(kRequests));
    for (uint16_t i = 0; i < kRequests; ++i) {
        EXPECT_EQ(driver_.get_byte(requests[i].second), BlockDevice::kStatusOk) << i;
        EXPECT_EQ(driver_.get(requests[i].first, 64 * 512), disk_.expected_pattern(i * 64 * 512, 64 * 512)) << i;
    }
    EXPECT_FALSE(interrupt_.queue_notifications.empty());
    EXPECT_EQ(device_->statistics().requests, kRequests);
}

TEST_F(BlockWorkersTest, AReadThePageCacheHoldsCompletesAtOnceOnTheIoThread) {
    // The test disk was just written, so its pages are cached: no worker, no
    // trip through the loop.
    const auto [data, status] = offer_read(8, 16);
    device_->queue_notify(0);
    EXPECT_EQ(driver_.used_index(), 1);
    EXPECT_EQ(driver_.get_byte(status), BlockDevice::kStatusOk);
    EXPECT_EQ(driver_.get(data, 16 * 512), disk_.expected_pattern(8 * 512, 16 * 512));
    EXPECT_EQ(device_->statistics().requests, 1u);
}

TEST_F(BlockWorkersTest, WritesCompleteThroughTheLoopAndReadBack) {
    const uint64_t status = offer_write(100, 8);
    device_->queue_notify(0);
    ASSERT_TRUE(run_until_used(1));
    EXPECT_EQ(driver_.get_byte(status), BlockDevice::kStatusOk);
    const auto [data, read_status] = offer_read(100, 8);
    device_->queue_notify(0);
    ASSERT_TRUE(run_until_used(2));
    EXPECT_EQ(driver_.get_byte(read_status), BlockDevice::kStatusOk);
    EXPECT_EQ(driver_.get(data, 8 * 512), std::vector<uint8_t>(8 * 512, 0x5A));
    EXPECT_EQ(device_->statistics().requests, 2u);
}

TEST_F(BlockWorkersTest, ResetWaitsForRequestsInFlightAndDropsTheirCompletions) {
    for (uint16_t i = 0; i < 16; ++i) offer_write(i * 128, 128);
    device_->queue_notify(0);
    device_->reset();  // on the loop's thread, as the transport does
    EXPECT_EQ(device_->statistics().requests, 16u) << "every request taken ran to its end before the reset";
    for (int i = 0; i < 20; ++i) loop_.run_once(std::chrono::milliseconds(5));
    EXPECT_EQ(driver_.used_index(), 0) << "nothing is used after a reset";
}

TEST_F(BlockWorkersTest, DestroyingTheDeviceWithRequestsInFlightIsSafe) {
    for (uint16_t i = 0; i < 16; ++i) offer_write(i * 128, 128);
    device_->queue_notify(0);
    device_.reset();
    for (int i = 0; i < 20; ++i) loop_.run_once(std::chrono::milliseconds(5));
    SUCCEED();
}

}  // namespace
}  // namespace atl::vmm::virtio
