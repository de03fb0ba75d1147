#include "devices/virtio/block.h"

#include "vmm/event_loop.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace atl::vmm::virtio {

namespace {

// Section 5.2.4: struct virtio_blk_config, up to the write-zeroes fields (the
// secure-erase and zoned fields that follow belong to features not offered).
struct [[gnu::packed]] BlockConfig {
    uint64_t capacity;
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t geometry_cylinders;
    uint8_t geometry_heads;
    uint8_t geometry_sectors;
    uint32_t blk_size;
    uint8_t topology_physical_block_exp;
    uint8_t topology_alignment_offset;
    uint16_t topology_min_io_size;
    uint32_t topology_opt_io_size;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
};
static_assert(offsetof(BlockConfig, blk_size) == 20);
static_assert(offsetof(BlockConfig, max_discard_sectors) == 36);
static_assert(offsetof(BlockConfig, write_zeroes_may_unmap) == 56);
static_assert(sizeof(BlockConfig) == 60);

// Section 5.2.6: the header every request starts with.
struct RequestHeader {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

// Section 5.2.6: one range of a DISCARD or WRITE_ZEROES request.
struct DiscardWriteZeroesSegment {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};
static_assert(sizeof(DiscardWriteZeroesSegment) == 16);
constexpr uint32_t kSegmentFlagUnmap = 1;

// Section 2.7.4.2: drivers MUST NOT add chains longer than 2^32 bytes; anything
// that large is refused, which also keeps the used length within 32 bits.
constexpr uint64_t kMaxTransferBytes = (1ull << 32) - 1024;

using Spans = std::vector<std::pair<uint8_t*, uint64_t>>;

// Moves all of `spans` to or from the file at `offset`; returns 0 or an errno.
// A read that hits end of file (the image shrank under us) is an I/O error.
int transfer_all(int fd, bool to_file, const Spans& spans, uint64_t offset) {
    std::vector<iovec> iov;
    iov.reserve(spans.size());
    for (const auto& [host, length] : spans) iov.push_back(iovec{host, static_cast<size_t>(length)});
    size_t first = 0;
    while (first < iov.size()) {
        const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        const ssize_t done = to_file ? pwritev(fd, &iov[first], count, static_cast<off_t>(offset))
                                     : preadv(fd, &iov[first], count, static_cast<off_t>(offset));
        if (done < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (done == 0) return EIO;
        offset += static_cast<uint64_t>(done);
        size_t left = static_cast<size_t>(done);
        while (left > 0 && first < iov.size()) {
            if (left >= iov[first].iov_len) {
                left -= iov[first].iov_len;
                ++first;
            } else {
                iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
                iov[first].iov_len -= left;
                left = 0;
            }
        }
    }
    return 0;
}

// Reads all of `spans` at `offset` if the page cache holds all of it, without
// waiting for the disk (RWF_NOWAIT); false if anything is missing or failed:
// the caller then reads on a worker, where errors are reported.
bool read_cached(int fd, const Spans& spans, uint64_t offset) {
    if (spans.size() > IOV_MAX) return false;
    std::vector<iovec> iov;
    iov.reserve(spans.size());
    uint64_t length = 0;
    for (const auto& [host, span_length] : spans) {
        iov.push_back(iovec{host, static_cast<size_t>(span_length)});
        length += span_length;
    }
    const ssize_t done = preadv2(fd, iov.data(), static_cast<int>(iov.size()), static_cast<off_t>(offset), RWF_NOWAIT);
    return done >= 0 && static_cast<uint64_t>(done) == length;
}

uint64_t total_length(const std::vector<Buffer>& buffers) {
    uint64_t total = 0;
    for (const auto& buffer : buffers) total += buffer.length;
    return total;
}

std::string open_error(const std::string& path, bool read_only, int error) {
    const std::string mode = read_only ? "open read-only" : "open read-write";
    const std::string prefix = "disk image " + path + ": ";
    switch (error) {
    case ENOENT: return prefix + "not found";
    case EACCES:
    case EPERM: return prefix + "permission denied (" + mode + ")";
    case EROFS: return prefix + "on a read-only file system (" + mode + "); attach it read-only";
    case EISDIR: return prefix + "is a directory, not a disk image";
    case ENOTDIR: return prefix + "a parent of it is not a directory";
    default: return prefix + strerror(error) + " (" + mode + ")";
    }
}

}  // namespace

// A few threads that run the device's requests; enough to keep a disk busy
// with a guest's queue depth, few enough not to crowd two host cores.
class BlockDevice::Workers {
public:
    static constexpr unsigned kThreads = 4;

    Workers() {
        for (unsigned i = 0; i < kThreads; ++i) threads_.emplace_back([this] { run(); });
    }
    ~Workers() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        work_added_.notify_all();
        for (auto& thread : threads_) thread.join();
    }

    void add(std::function<void()> job) {
        {
            std::lock_guard lock(mutex_);
            jobs_.push_back(std::move(job));
            ++unfinished_;
        }
        work_added_.notify_one();
    }

    // Until every job added so far has run.
    void drain() {
        std::unique_lock lock(mutex_);
        all_done_.wait(lock, [this] { return unfinished_ == 0; });
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            work_added_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) return;  // stopping, nothing left
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            lock.lock();
            if (--unfinished_ == 0) all_done_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_added_;
    std::condition_variable all_done_;
    std::deque<std::function<void()>> jobs_;
    size_t unfinished_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

Result<std::unique_ptr<BlockDevice>> BlockDevice::open(const std::string& path, bool read_only,
                                                       const std::string& serial_id) {
    const int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return make_error(open_error(path, read_only, errno));

    struct stat info {};
    uint64_t size_bytes = 0;
    if (fstat(fd, &info) != 0) {
        const int error = errno;
        close(fd);
        return make_error("disk image " + path + ": " + strerror(error));
    }
    if (S_ISREG(info.st_mode)) {
        size_bytes = static_cast<uint64_t>(info.st_size);
    } else if (S_ISBLK(info.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size_bytes) != 0) {
            const int error = errno;
            close(fd);
            return make_error("disk image " + path + ": cannot read the block device size: " + strerror(error));
        }
    } else {
        close(fd);
        return make_error("disk image " + path + ": not a regular file or block device");
    }

    // Two writers (or a writer and a reader) on one image corrupt the guest's file system.
    if (flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        const int error = errno;
        close(fd);
        if (error == EWOULDBLOCK)
            return make_error("disk image " + path + ": in use by another VM or process (" +
                              (read_only ? "it is open read-write elsewhere" : "it is locked") + ")");
        return make_error("disk image " + path + ": cannot lock: " + strerror(error));
    }

    // Section 5.2.6: the ID is at most 20 bytes; a longer one is cut, not refused,
    // so generated identifiers (UUIDs) still work.
    std::string serial = serial_id.substr(0, kIdBytes);
    return std::unique_ptr<BlockDevice>(
        new BlockDevice(fd, path, read_only, std::move(serial), size_bytes / kSectorSize));
}

BlockDevice::BlockDevice(int fd, std::string path, bool read_only, std::string serial_id, uint64_t capacity_sectors)
    : fd_(fd),
      path_(std::move(path)),
      read_only_(read_only),
      serial_id_(std::move(serial_id)),
      capacity_sectors_(capacity_sectors) {}

BlockDevice::~BlockDevice() {
    workers_.reset();  // finishes what is in flight: it writes guest memory and uses fd_
    if (fd_ >= 0) close(fd_);
}

uint64_t BlockDevice::offered_features() const {
    uint64_t features = kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx | kFeatureSegMax |
                        kFeatureBlockSize | kFeatureFlush;
    if (read_only_)
        features |= kFeatureReadOnly;
    else
        features |= kFeatureDiscard | kFeatureWriteZeroes;  // both modify the disk
    return features;
}

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    BlockConfig config{};
    config.capacity = capacity_sectors_;
    // Header and status take two descriptors of a chain no longer than the queue.
    config.seg_max = max_queue_size() - 2;
    config.blk_size = kSectorSize;
    config.num_queues = 1;
    config.max_discard_sectors = kMaxDiscardSectors;
    config.max_discard_seg = kMaxDiscardSegments;
    config.discard_sector_alignment = kDiscardAlignmentSectors;
    config.max_write_zeroes_sectors = kMaxDiscardSectors;
    config.max_write_zeroes_seg = kMaxDiscardSegments;
    config.write_zeroes_may_unmap = 1;  // an unmap request punches a hole
    read_config_window(config, offset, data);
}

Result<void> BlockDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.empty()) return make_error(name() + ": the driver set up no request queue");
    context_.emplace(std::move(context));
    stopped_ = false;
    if (context_->event_loop && !workers_) workers_ = std::make_unique<Workers>();
    return {};
}

void BlockDevice::reset() {
    // Section 2.4: after a reset the device uses none of the driver's buffers.
    if (workers_) workers_->drain();
    ++generation_;
    context_.reset();
    stopped_ = false;
}

std::string BlockDevice::name() const {
    return "virtio-blk " + (serial_id_.empty() ? path_ : serial_id_);
}

void BlockDevice::queue_notify(uint16_t queue) {
    if (!context_ || stopped_ || queue >= context_->queues.size()) return;
    if (queue < context_->queue_enabled.size() && !context_->queue_enabled[queue]) return;
    process_queue(queue);
}

void BlockDevice::process_queue(uint16_t queue_index) {
    Virtqueue& queue = context_->queues[queue_index];
    // A read the page cache can answer is answered here at once: handing it to
    // a worker and its completion back costs two thread wake-ups, which is
    // most of a cached read's time (half the throughput in the nested test
    // host). Everything else, which may wait for the disk, goes to a worker.
    auto error = queue.serve_available([&](DescriptorChain chain) {
        const bool async = workers_ && context_->event_loop;
        if (auto used = handle_chain(*context_->memory, chain, !async)) queue.push_used(chain.head, *used);
        else submit(queue_index, std::move(chain));
    });
    if (error) {
        stopped_ = true;
        ++statistics_.device_errors;
        log_guest_error("stopped until reset: " + *error);
        if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + *error);
        return;
    }
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(queue_index);
}

void BlockDevice::submit(uint16_t queue_index, DescriptorChain chain) {
    workers_->add([this, memory = context_->memory, loop = context_->event_loop, generation = generation_,
                   queue_index, chain = std::move(chain), alive = std::weak_ptr<BlockDevice*>(lifetime_)] {
        const uint32_t used_length = *handle_chain(*memory, chain, true);
        loop->post([alive, generation, queue_index, head = chain.head, used_length] {
            if (auto device = alive.lock()) (*device)->complete(generation, queue_index, head, used_length);
        });
    });
}

void BlockDevice::complete(uint64_t generation, uint16_t queue_index, uint16_t head, uint32_t used_length) {
    if (generation != generation_ || !context_ || stopped_) return;
    Virtqueue& queue = context_->queues[queue_index];
    queue.push_used(head, used_length);
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(queue_index);
}

std::optional<uint32_t> BlockDevice::handle_chain(const GuestMemory& memory, const DescriptorChain& chain,
                                                   bool may_block) {
    // Section 5.2.6: the status is the last byte of the device-writable part.
    if (chain.writable.empty()) {
        ++statistics_.requests;
        ++statistics_.malformed;
        log_guest_error("request without a status byte");
        return 0;
    }
    std::vector<Buffer> data_writable = chain.writable;
    Buffer& last = data_writable.back();
    const GuestAddress status_address{last.address.value + last.length - 1};
    if (--last.length == 0) data_writable.pop_back();

    ChainReader reader(memory, chain.readable);
    RequestHeader header{};
    Completion completion{kStatusIoError, 0};
    if (!reader.read_object(header)) {
        ++statistics_.malformed;
        log_guest_error("request header shorter than 16 bytes");
    } else {
        completion = execute(memory, header.type, header.sector, reader, data_writable, may_block);
        if (completion.status == kWouldBlock) return std::nullopt;
    }
    ++statistics_.requests;
    if (completion.status == kStatusIoError) ++statistics_.io_errors;
    if (completion.status == kStatusUnsupported) ++statistics_.unsupported;
    memory.write_object(status_address, completion.status);
    return completion.written_bytes + 1;
}

BlockDevice::Completion BlockDevice::execute(const GuestMemory& memory, uint32_t type, uint64_t sector,
                                             ChainReader& reader, const std::vector<Buffer>& data_writable,
                                             bool may_block) {
    switch (type) {
    case kRequestIn: return read_sectors(memory, sector, data_writable, may_block);
    case kRequestOut: return may_block ? write_sectors(sector, reader) : Completion{kWouldBlock, 0};
    case kRequestFlush: return may_block ? flush() : Completion{kWouldBlock, 0};
    case kRequestGetId: return get_id(memory, data_writable);
    case kRequestDiscard:
        return may_block ? discard_or_write_zeroes(false, reader) : Completion{kWouldBlock, 0};
    case kRequestWriteZeroes:
        return may_block ? discard_or_write_zeroes(true, reader) : Completion{kWouldBlock, 0};
    default: return {kStatusUnsupported, 0};
    }
}

bool BlockDevice::range_valid(uint64_t sector, uint64_t sector_count) const {
    // Written so that nothing can overflow: sector may be any 64-bit value.
    return sector <= capacity_sectors_ && sector_count <= capacity_sectors_ - sector;
}

BlockDevice::Completion BlockDevice::read_sectors(const GuestMemory& memory, uint64_t sector,
                                                  const std::vector<Buffer>& data_writable, bool may_block) {
    const uint64_t length = total_length(data_writable);
    if (length % kSectorSize != 0 || length > kMaxTransferBytes) {
        log_guest_error("read of " + std::to_string(length) + " bytes: not a multiple of 512 or too large");
        return {kStatusIoError, 0};
    }
    if (!range_valid(sector, length / kSectorSize)) {
        log_guest_error("read past the end of the disk (sector " + std::to_string(sector) + ", " +
                        std::to_string(length / kSectorSize) + " sectors, capacity " +
                        std::to_string(capacity_sectors_) + ")");
        return {kStatusIoError, 0};
    }
    ChainWriter writer(memory, data_writable);
    const auto spans = writer.take(length);
    if (!may_block) return read_cached(fd_, spans, sector * kSectorSize) ? Completion{kStatusOk, static_cast<uint32_t>(length)}
                                                                          : Completion{kWouldBlock, 0};
    if (const int error = transfer_all(fd_, false, spans, sector * kSectorSize)) {
        log_guest_error(std::string("read failed on the host: ") + strerror(error));
        return {kStatusIoError, 0};
    }
    return {kStatusOk, static_cast<uint32_t>(length)};
}

BlockDevice::Completion BlockDevice::write_sectors(uint64_t sector, ChainReader& reader) {
    // Section 5.2.6.2: IOERR for any write to a VIRTIO_BLK_F_RO device, nothing written.
    if (read_only_) {
        log_guest_error("write to a read-only disk");
        return {kStatusIoError, 0};
    }
    const uint64_t length = reader.remaining();
    if (length % kSectorSize != 0 || length > kMaxTransferBytes) {
        log_guest_error("write of " + std::to_string(length) + " bytes: not a multiple of 512 or too large");
        return {kStatusIoError, 0};
    }
    if (!range_valid(sector, length / kSectorSize)) {
        log_guest_error("write past the end of the disk (sector " + std::to_string(sector) + ", " +
                        std::to_string(length / kSectorSize) + " sectors, capacity " +
                        std::to_string(capacity_sectors_) + ")");
        return {kStatusIoError, 0};
    }
    if (const int error = transfer_all(fd_, true, reader.take_remaining(), sector * kSectorSize)) {
        log_guest_error(std::string("write failed on the host: ") + strerror(error));
        return {kStatusIoError, 0};
    }
    return {kStatusOk, 0};
}

BlockDevice::Completion BlockDevice::flush() {
    // Section 5.2.6.2: a completed flush makes every completed write stable.
    if (fdatasync(fd_) != 0) {
        log_guest_error(std::string("flush failed on the host: ") + strerror(errno));
        return {kStatusIoError, 0};
    }
    return {kStatusOk, 0};
}

BlockDevice::Completion BlockDevice::get_id(const GuestMemory& memory, const std::vector<Buffer>& data_writable) {
    // NUL-padded, no terminator when all 20 bytes are used (section 5.2.6).
    uint8_t id[kIdBytes] = {};
    std::memcpy(id, serial_id_.data(), std::min(serial_id_.size(), kIdBytes));
    ChainWriter writer(memory, data_writable);
    const uint64_t length = std::min<uint64_t>(kIdBytes, writer.remaining());
    if (!writer.write(id, length)) return {kStatusIoError, 0};
    return {kStatusOk, static_cast<uint32_t>(length)};
}

BlockDevice::Completion BlockDevice::discard_or_write_zeroes(bool write_zeroes, ChainReader& reader) {
    const char* what = write_zeroes ? "write-zeroes" : "discard";
    if (read_only_) {
        log_guest_error(std::string(what) + " on a read-only disk");
        return {kStatusIoError, 0};
    }
    const uint64_t payload = reader.remaining();
    if (payload == 0 || payload % sizeof(DiscardWriteZeroesSegment) != 0 ||
        payload / sizeof(DiscardWriteZeroesSegment) > kMaxDiscardSegments) {
        log_guest_error(std::string(what) + " with " + std::to_string(payload) + " bytes of segments");
        return {kStatusIoError, 0};
    }
    // Every segment is checked before any is executed, so a bad one changes nothing.
    std::vector<DiscardWriteZeroesSegment> segments(payload / sizeof(DiscardWriteZeroesSegment));
    for (auto& segment : segments) {
        if (!reader.read_object(segment)) return {kStatusIoError, 0};
        // Section 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP.
        if ((segment.flags & ~kSegmentFlagUnmap) || (!write_zeroes && (segment.flags & kSegmentFlagUnmap)))
            return {kStatusUnsupported, 0};
        if (segment.num_sectors > kMaxDiscardSectors || !range_valid(segment.sector, segment.num_sectors)) {
            log_guest_error(std::string(what) + " outside the disk or above the limit (sector " +
                            std::to_string(segment.sector) + ", " + std::to_string(segment.num_sectors) +
                            " sectors)");
            return {kStatusIoError, 0};
        }
    }
    for (const auto& segment : segments) {
        const uint64_t offset = segment.sector * kSectorSize;
        const uint64_t length = uint64_t{segment.num_sectors} * kSectorSize;
        if (length == 0) continue;
        if (write_zeroes) {
            if (!zero_range(offset, length, segment.flags & kSegmentFlagUnmap)) return {kStatusIoError, 0};
        } else if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                             static_cast<off_t>(length)) != 0 &&
                   errno != EOPNOTSUPP && errno != ENOSYS) {
            // A file system that cannot punch holes simply keeps the data: discard is a hint.
            log_guest_error(std::string("discard failed on the host: ") + strerror(errno));
            return {kStatusIoError, 0};
        }
    }
    return {kStatusOk, 0};
}

bool BlockDevice::zero_range(uint64_t offset, uint64_t length, bool may_unmap) {
    const auto file_offset = static_cast<off_t>(offset);
    const auto file_length = static_cast<off_t>(length);
    // Section 5.2.6.2: with unmap the range may be deallocated, as long as it reads back as zeroes.
    if (may_unmap && fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, file_offset, file_length) == 0)
        return true;
    if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, file_offset, file_length) == 0) return true;
    // The file system supports neither: write the zeroes.
    static const std::vector<uint8_t> zeroes(64 << 10, 0);
    while (length > 0) {
        const size_t piece = static_cast<size_t>(std::min<uint64_t>(length, zeroes.size()));
        const ssize_t done = pwrite(fd_, zeroes.data(), piece, static_cast<off_t>(offset));
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) {
            log_guest_error(std::string("write-zeroes failed on the host: ") + strerror(done < 0 ? errno : EIO));
            return false;
        }
        offset += static_cast<uint64_t>(done);
        length -= static_cast<uint64_t>(done);
    }
    return true;
}

void BlockDevice::log_guest_error(const std::string& message) { guest_errors_.write(name(), message); }

}  // namespace atl::vmm::virtio
