// The split virtqueue (virtio 1.2, section 2.7), device side. Everything the
// driver writes into the rings is hostile: each descriptor is validated against
// guest RAM, chains are bounded, and indirect tables are read once.
#pragma once

#include "memory/guest_memory.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace atl::vmm::virtio {

constexpr uint16_t kMaxQueueSize = 32768;

// Where the driver put the rings (set through the transport).
struct QueueLayout {
    uint16_t size = 0;
    GuestAddress descriptor_table;
    GuestAddress available_ring;
    GuestAddress used_ring;
};

struct Buffer {
    GuestAddress address;
    uint32_t length = 0;
};

// One request: the device-readable buffers followed by the device-writable ones.
struct DescriptorChain {
    uint16_t head = 0;
    std::vector<Buffer> readable;
    std::vector<Buffer> writable;

    uint64_t readable_bytes() const;
    uint64_t writable_bytes() const;
};

// Reads sequentially across a chain's readable buffers.
class ChainReader {
public:
    ChainReader(const GuestMemory& memory, const std::vector<Buffer>& buffers);
    // Copies exactly `length` bytes or returns false (short chain).
    bool read(void* destination, uint64_t length);
    template <class T>
    bool read_object(T& out) { return read(&out, sizeof(T)); }
    uint64_t remaining() const { return remaining_; }
    // The rest of the chain as host iovec-like spans, consuming it.
    std::vector<std::pair<uint8_t*, uint64_t>> take_remaining();

private:
    const GuestMemory& memory_;
    const std::vector<Buffer>& buffers_;
    size_t index_ = 0;
    uint64_t offset_ = 0;
    uint64_t remaining_ = 0;
};

// Writes sequentially across a chain's writable buffers.
class ChainWriter {
public:
    ChainWriter(const GuestMemory& memory, const std::vector<Buffer>& buffers);
    bool write(const void* source, uint64_t length);
    template <class T>
    bool write_object(const T& in) { return write(&in, sizeof(T)); }
    uint64_t remaining() const { return remaining_; }
    uint64_t written() const { return written_; }
    // Host spans for the next `length` writable bytes (or all remaining when
    // length exceeds it), consuming them: for readv/recv straight into the guest.
    std::vector<std::pair<uint8_t*, uint64_t>> take(uint64_t length);

private:
    const GuestMemory& memory_;
    const std::vector<Buffer>& buffers_;
    size_t index_ = 0;
    uint64_t offset_ = 0;
    uint64_t remaining_ = 0;
    uint64_t written_ = 0;
};

class Virtqueue {
public:
    // The transport validates the layout with `layout_valid` before building one.
    Virtqueue(const GuestMemory& memory, QueueLayout layout, bool event_index);

    // The rings lie inside guest RAM, are aligned as the spec requires, and the
    // size is a power of two no larger than kMaxQueueSize.
    static bool layout_valid(const GuestMemory& memory, const QueueLayout& layout);

    struct PopResult {
        std::optional<DescriptorChain> chain;  // empty: nothing available
        std::string error;                     // non-empty: the driver broke the ring
    };
    // Takes the next available chain. On a malformed ring the error is set;
    // the device should then report NEEDS_RESET and stop using the queue.
    PopResult pop();
    // Puts a popped chain back so the next pop() returns it again (device ran out of space).
    void undo_pop();

    void push_used(uint16_t head, uint32_t written_bytes);
    // Several used entries published with one index update, so the driver sees
    // them all at once (a merged receive buffer spans several chains, section 5.1.6.4).
    struct UsedElement {
        uint16_t head = 0;
        uint32_t written_bytes = 0;
    };
    void push_used_batch(std::span<const UsedElement> elements);
    // True when the driver wants an interrupt for what was pushed since the
    // last call (VIRTQ_AVAIL_F_NO_INTERRUPT or used_event with EVENT_IDX).
    bool needs_interrupt();

    // Before sleeping, a device re-enables notifications and checks again
    // (returns true when more buffers arrived meanwhile).
    bool enable_notifications();
    void disable_notifications();

    // Hands every chain the driver has made available to `serve`, with the
    // driver's notifications off meanwhile and back on before returning, then
    // one more look so a chain added at that moment is not missed (sections
    // 2.7.10, 2.7.13). `serve` pushes the used entry itself (now or later).
    // Returns the ring error that stopped it: the device must then stop.
    template <class Serve>
    std::optional<std::string> serve_available(Serve&& serve) {
        for (;;) {
            disable_notifications();
            for (;;) {
                auto popped = pop();
                if (!popped.error.empty()) return std::move(popped.error);
                if (!popped.chain) break;
                serve(std::move(*popped.chain));
            }
            if (!enable_notifications()) return std::nullopt;
        }
    }

    uint16_t size() const { return layout_.size; }
    uint16_t next_available_index() const { return next_available_; }
    uint16_t next_used_index() const { return next_used_; }
    // For restore after migration.
    void set_indices(uint16_t next_available, uint16_t next_used);

    // Maximum descriptors one chain may have (direct + indirect).
    static constexpr uint32_t kMaxChainLength = 1024;

private:
    const GuestMemory& memory_;
    QueueLayout layout_;
    bool event_index_;
    uint16_t next_available_ = 0;
    uint16_t next_used_ = 0;
    uint16_t signalled_used_ = 0;
    bool signalled_used_valid_ = false;
    bool notifications_enabled_ = true;
};

}  // namespace atl::vmm::virtio
