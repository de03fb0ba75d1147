// virtio-blk (virtio 1.2 section 5.2) over a raw disk image or block device.
// Requests are taken from the queue on the I/O thread and served by a few
// worker threads of the device's own with preadv/pwritev straight into and out
// of guest memory, so a slow disk neither stalls the VM's other devices nor
// keeps the guest to one request at a time. Without an event loop (unit tests,
// fuzzing) requests are served in place, synchronously.
#pragma once

#include "devices/virtio/device.h"
#include "devices/virtio/guest_error_log.h"

#include <atoll/result.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace atl::vmm::virtio {

class BlockDevice : public Device {
public:
    // Section 5.2.3 feature bits.
    static constexpr uint64_t kFeatureSegMax = 1ull << 2;
    static constexpr uint64_t kFeatureReadOnly = 1ull << 5;
    static constexpr uint64_t kFeatureBlockSize = 1ull << 6;
    static constexpr uint64_t kFeatureFlush = 1ull << 9;
    static constexpr uint64_t kFeatureDiscard = 1ull << 13;
    static constexpr uint64_t kFeatureWriteZeroes = 1ull << 14;

    // Section 5.2.6 request types and status values.
    static constexpr uint32_t kRequestIn = 0;
    static constexpr uint32_t kRequestOut = 1;
    static constexpr uint32_t kRequestFlush = 4;
    static constexpr uint32_t kRequestGetId = 8;
    static constexpr uint32_t kRequestDiscard = 11;
    static constexpr uint32_t kRequestWriteZeroes = 13;
    static constexpr uint8_t kStatusOk = 0;
    static constexpr uint8_t kStatusIoError = 1;
    static constexpr uint8_t kStatusUnsupported = 2;

    static constexpr uint64_t kSectorSize = 512;
    static constexpr size_t kIdBytes = 20;
    // Limits advertised in the configuration space.
    static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per segment
    static constexpr uint32_t kMaxDiscardSegments = 32;
    static constexpr uint32_t kDiscardAlignmentSectors = 8;  // 4 KiB: what file systems deallocate

    // Opens `path` (a regular file or a block device). A writable image is locked
    // exclusively and a read-only one shared (flock), so two VMs cannot write one disk.
    // `serial_id` is what VIRTIO_BLK_T_GET_ID returns (at most 20 bytes are used).
    static Result<std::unique_ptr<BlockDevice>> open(const std::string& path, bool read_only,
                                                     const std::string& serial_id);
    ~BlockDevice() override;
    BlockDevice(const BlockDevice&) = delete;
    BlockDevice& operator=(const BlockDevice&) = delete;

    DeviceType type() const override { return kDeviceBlock; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 1; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    void reset() override;
    std::string name() const override;

    uint64_t capacity_sectors() const { return capacity_sectors_; }
    bool read_only() const { return read_only_; }

    // Counters for tests and diagnostics (updated by the worker threads).
    struct Statistics {
        std::atomic<uint64_t> requests = 0;
        std::atomic<uint64_t> io_errors = 0;      // requests completed with IOERR (guest or host cause)
        std::atomic<uint64_t> unsupported = 0;    // requests completed with UNSUPP
        std::atomic<uint64_t> malformed = 0;      // chains without room for a header or a status byte
        std::atomic<uint64_t> device_errors = 0;  // ring errors that stopped the device
    };
    const Statistics& statistics() const { return statistics_; }

private:
    BlockDevice(int fd, std::string path, bool read_only, std::string serial_id, uint64_t capacity_sectors);

    // Not a virtio status: the request needs a thread that may wait for the disk.
    static constexpr uint8_t kWouldBlock = 0xFF;
    struct Completion {
        uint8_t status;
        uint32_t written_bytes;  // bytes of data written to the guest before the status byte
    };
    class Workers;
    void process_queue(uint16_t queue_index);
    // Serves a chain on a worker; its completion comes back through the event loop.
    void submit(uint16_t queue_index, DescriptorChain chain);
    void complete(uint64_t generation, uint16_t queue_index, uint16_t head, uint32_t used_length);
    // Handles one chain and returns the used length to report. Any thread.
    // With may_block false (the I/O thread), a read whose data is not all in
    // the host's page cache is left undone: nullopt, nothing reported.
    std::optional<uint32_t> handle_chain(const GuestMemory& memory, const DescriptorChain& chain, bool may_block);
    Completion execute(const GuestMemory& memory, uint32_t type, uint64_t sector, ChainReader& reader,
                       const std::vector<Buffer>& data_writable, bool may_block);
    Completion read_sectors(const GuestMemory& memory, uint64_t sector, const std::vector<Buffer>& data_writable,
                            bool may_block);
    Completion write_sectors(uint64_t sector, ChainReader& reader);
    Completion flush();
    Completion get_id(const GuestMemory& memory, const std::vector<Buffer>& data_writable);
    Completion discard_or_write_zeroes(bool write_zeroes, ChainReader& reader);
    bool range_valid(uint64_t sector, uint64_t sector_count) const;
    bool zero_range(uint64_t offset, uint64_t length, bool may_unmap);
    void log_guest_error(const std::string& message);

    int fd_ = -1;
    std::string path_;
    bool read_only_ = false;
    std::string serial_id_;
    uint64_t capacity_sectors_ = 0;

    std::optional<ActivationContext> context_;
    bool stopped_ = false;  // the driver broke the ring: wait for reset()
    Statistics statistics_;
    std::unique_ptr<Workers> workers_;
    // Completions of requests taken before a reset are dropped (I/O thread only).
    uint64_t generation_ = 0;
    // Completions posted to the event loop find out whether the device still exists.
    std::shared_ptr<BlockDevice*> lifetime_ = std::make_shared<BlockDevice*>(this);
    GuestErrorLog guest_errors_;
};

}  // namespace atl::vmm::virtio
