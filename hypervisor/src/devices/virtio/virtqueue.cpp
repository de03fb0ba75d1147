#include "devices/virtio/virtqueue.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

namespace atl::vmm::virtio {

// Virtio 1.x rings are little-endian (section 2.7); so is every host Atoll runs on,
// which lets ring fields be loaded and stored without conversion.
static_assert(std::endian::native == std::endian::little);

namespace {

// Section 2.7.5: struct virtq_desc.
constexpr uint16_t kDescriptorFlagNext = 1;
constexpr uint16_t kDescriptorFlagWrite = 2;
constexpr uint16_t kDescriptorFlagIndirect = 4;
constexpr uint64_t kDescriptorSizeBytes = 16;

// Sections 2.7.6 and 2.7.8: flags of the available and used rings.
constexpr uint16_t kAvailableFlagNoInterrupt = 1;
constexpr uint16_t kUsedFlagNoNotify = 1;

// Offsets inside the available ring (flags, idx, ring[size], used_event)
// and the used ring (flags, idx, ring[size] of {id, len}, avail_event).
constexpr uint64_t kRingFlagsOffset = 0;
constexpr uint64_t kRingIndexOffset = 2;
constexpr uint64_t kRingEntriesOffset = 4;
constexpr uint64_t kAvailableEntrySize = 2;
constexpr uint64_t kUsedEntrySize = 8;

struct RawDescriptor {
    uint64_t address;
    uint32_t length;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(RawDescriptor) == kDescriptorSizeBytes);

// Copies guest memory into a local exactly once. The compiler barrier stops the
// compiler from replacing later uses of the copy by fresh loads from guest memory,
// which the guest may have changed in between (a double fetch).
void copy_from_guest_once(void* destination, const uint8_t* source, size_t length) {
    std::memcpy(destination, source, length);
    asm volatile("" ::: "memory");
}

uint64_t available_ring_bytes(uint16_t size) { return kRingEntriesOffset + kAvailableEntrySize * size + 2; }
uint64_t used_ring_bytes(uint16_t size) { return kRingEntriesOffset + kUsedEntrySize * size + 2; }

// Everything a chain walk accumulates; shared by the direct and indirect parts.
class ChainBuilder {
public:
    ChainBuilder(const GuestMemory& memory, uint16_t head) : memory_(memory) { chain_.head = head; }

    // Returns an error message, empty when the descriptor was accepted.
    std::string add(const RawDescriptor& descriptor, const char* where, uint32_t index) {
        if (++buffer_count_ > Virtqueue::kMaxChainLength)
            return "descriptor chain longer than " + std::to_string(Virtqueue::kMaxChainLength) + " buffers";
        if (descriptor.length == 0) return describe(where, index) + " has length 0";
        // host_pointer checks the whole range against RAM without overflowing, so
        // an address near 2^64 with a large length is refused here.
        if (!memory_.host_pointer(GuestAddress{descriptor.address}, descriptor.length))
            return describe(where, index) + " points outside guest RAM (address 0x" + hex(descriptor.address) +
                   ", length " + std::to_string(descriptor.length) + ")";
        const Buffer buffer{GuestAddress{descriptor.address}, descriptor.length};
        if (descriptor.flags & kDescriptorFlagWrite) {
            chain_.writable.push_back(buffer);
        } else {
            // Section 2.7.4.2: device-writable elements follow all device-readable ones.
            if (!chain_.writable.empty())
                return describe(where, index) + " is device-readable but follows a device-writable one";
            chain_.readable.push_back(buffer);
        }
        return {};
    }

    DescriptorChain take() { return std::move(chain_); }

    static std::string describe(const char* where, uint32_t index) {
        return std::string(where) + " descriptor " + std::to_string(index);
    }
    static std::string hex(uint64_t value) {
        char text[17];
        snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(value));
        return text;
    }

private:
    const GuestMemory& memory_;
    DescriptorChain chain_;
    uint32_t buffer_count_ = 0;
};

// Section 2.7.5.3: walks the table an indirect descriptor points to.
std::string walk_indirect_table(const GuestMemory& memory, const RawDescriptor& table_descriptor,
                                uint32_t referring_index, ChainBuilder& builder) {
    const std::string where = ChainBuilder::describe("indirect", referring_index);
    if (table_descriptor.length == 0 || table_descriptor.length % kDescriptorSizeBytes != 0)
        return where + ": table length " + std::to_string(table_descriptor.length) +
               " is not a non-zero multiple of 16";
    const uint32_t count = table_descriptor.length / kDescriptorSizeBytes;
    if (count > Virtqueue::kMaxChainLength)
        return where + ": table has " + std::to_string(count) + " descriptors, more than the limit of " +
               std::to_string(Virtqueue::kMaxChainLength);
    const uint8_t* table_host = memory.host_pointer(GuestAddress{table_descriptor.address}, table_descriptor.length);
    if (!table_host)
        return where + ": table at 0x" + ChainBuilder::hex(table_descriptor.address) + " is outside guest RAM";

    // The table is read once, as a whole, then only the copy is looked at.
    std::vector<RawDescriptor> table(count);
    copy_from_guest_once(table.data(), table_host, table_descriptor.length);

    uint32_t index = 0;
    for (uint32_t visited = 1;; ++visited) {
        if (index >= count)
            return where + ": next index " + std::to_string(index) + " is outside the table of " +
                   std::to_string(count);
        // A chain inside the table that visits more entries than the table holds must loop.
        if (visited > count) return where + ": the chain inside the table loops";
        const RawDescriptor& descriptor = table[index];
        // Section 2.7.5.3.1: only one table per descriptor (no nesting).
        if (descriptor.flags & kDescriptorFlagIndirect)
            return where + ": nested indirect descriptor at table index " + std::to_string(index);
        if (auto error = builder.add(descriptor, "indirect table", index); !error.empty()) return error;
        if (!(descriptor.flags & kDescriptorFlagNext)) return {};
        index = descriptor.next;
    }
}

}  // namespace

uint64_t DescriptorChain::readable_bytes() const {
    uint64_t total = 0;
    for (const auto& buffer : readable) total += buffer.length;
    return total;
}

uint64_t DescriptorChain::writable_bytes() const {
    uint64_t total = 0;
    for (const auto& buffer : writable) total += buffer.length;
    return total;
}

// ---------------------------------------------------------------------------
// ChainReader / ChainWriter

ChainReader::ChainReader(const GuestMemory& memory, const std::vector<Buffer>& buffers)
    : memory_(memory), buffers_(buffers) {
    for (const auto& buffer : buffers_) remaining_ += buffer.length;
}

bool ChainReader::read(void* destination, uint64_t length) {
    if (length > remaining_) return false;
    auto* out = static_cast<uint8_t*>(destination);
    while (length > 0) {
        const Buffer& buffer = buffers_[index_];
        const uint64_t piece = std::min<uint64_t>(length, buffer.length - offset_);
        const uint8_t* source = memory_.host_pointer(GuestAddress{buffer.address.value + offset_}, piece);
        if (!source) return false;
        copy_from_guest_once(out, source, piece);
        out += piece;
        length -= piece;
        remaining_ -= piece;
        offset_ += piece;
        if (offset_ == buffer.length) {
            ++index_;
            offset_ = 0;
        }
    }
    return true;
}

std::vector<std::pair<uint8_t*, uint64_t>> ChainReader::take_remaining() {
    std::vector<std::pair<uint8_t*, uint64_t>> spans;
    for (; index_ < buffers_.size(); ++index_, offset_ = 0) {
        const Buffer& buffer = buffers_[index_];
        const uint64_t piece = buffer.length - offset_;
        if (piece == 0) continue;
        if (uint8_t* host = memory_.host_pointer(GuestAddress{buffer.address.value + offset_}, piece))
            spans.emplace_back(host, piece);
    }
    remaining_ = 0;
    return spans;
}

ChainWriter::ChainWriter(const GuestMemory& memory, const std::vector<Buffer>& buffers)
    : memory_(memory), buffers_(buffers) {
    for (const auto& buffer : buffers_) remaining_ += buffer.length;
}

bool ChainWriter::write(const void* source, uint64_t length) {
    if (length > remaining_) return false;
    const auto* in = static_cast<const uint8_t*>(source);
    while (length > 0) {
        const Buffer& buffer = buffers_[index_];
        const uint64_t piece = std::min<uint64_t>(length, buffer.length - offset_);
        uint8_t* destination = memory_.host_pointer(GuestAddress{buffer.address.value + offset_}, piece);
        if (!destination) return false;
        std::memcpy(destination, in, piece);
        in += piece;
        length -= piece;
        remaining_ -= piece;
        written_ += piece;
        offset_ += piece;
        if (offset_ == buffer.length) {
            ++index_;
            offset_ = 0;
        }
    }
    return true;
}

std::vector<std::pair<uint8_t*, uint64_t>> ChainWriter::take(uint64_t length) {
    std::vector<std::pair<uint8_t*, uint64_t>> spans;
    length = std::min(length, remaining_);
    while (length > 0 && index_ < buffers_.size()) {
        const Buffer& buffer = buffers_[index_];
        const uint64_t piece = std::min<uint64_t>(length, buffer.length - offset_);
        if (piece > 0) {
            if (uint8_t* host = memory_.host_pointer(GuestAddress{buffer.address.value + offset_}, piece))
                spans.emplace_back(host, piece);
            else
                return spans;  // not RAM (never for a validated chain): hand out nothing past it
        }
        length -= piece;
        remaining_ -= piece;
        written_ += piece;
        offset_ += piece;
        if (offset_ == buffer.length) {
            ++index_;
            offset_ = 0;
        }
    }
    return spans;
}

// ---------------------------------------------------------------------------
// Virtqueue

Virtqueue::Virtqueue(const GuestMemory& memory, QueueLayout layout, bool event_index)
    : memory_(memory), layout_(layout), event_index_(event_index) {
    // A layout the transport should have refused becomes a queue that never has
    // anything available, so no ring access below can leave guest RAM or be misaligned.
    if (!layout_valid(memory_, layout_)) layout_.size = 0;
}

bool Virtqueue::layout_valid(const GuestMemory& memory, const QueueLayout& layout) {
    const uint16_t size = layout.size;
    if (size == 0 || size > kMaxQueueSize || !std::has_single_bit(size)) return false;
    // Section 2.7: alignment 16 / 2 / 4 for the descriptor table, available and used rings.
    if (layout.descriptor_table.value % 16 || layout.available_ring.value % 2 || layout.used_ring.value % 4)
        return false;
    // The sizes include used_event / avail_event, which Linux always allocates.
    return memory.contains(layout.descriptor_table, kDescriptorSizeBytes * size) &&
           memory.contains(layout.available_ring, available_ring_bytes(size)) &&
           memory.contains(layout.used_ring, used_ring_bytes(size));
}

namespace {

// Host pointers to 16-bit ring fields. The layout was validated, so they exist
// and are naturally aligned.
uint16_t* ring_field(const GuestMemory& memory, GuestAddress ring, uint64_t offset) {
    return reinterpret_cast<uint16_t*>(memory.host_pointer(GuestAddress{ring.value + offset}, 2));
}

}  // namespace

Virtqueue::PopResult Virtqueue::pop() {
    PopResult result;
    const uint16_t size = layout_.size;
    if (size == 0) return result;

    // Acquire: the ring entries and descriptors the driver wrote before bumping
    // idx (section 2.7.13.3.1) are visible once we see the new idx.
    const uint16_t available_index =
        __atomic_load_n(ring_field(memory_, layout_.available_ring, kRingIndexOffset), __ATOMIC_ACQUIRE);
    const uint16_t pending = static_cast<uint16_t>(available_index - next_available_);
    if (pending == 0) return result;
    if (pending > size) {
        result.error = "available index jumped from " + std::to_string(next_available_) + " to " +
                       std::to_string(available_index) + " (queue size " + std::to_string(size) + ")";
        return result;
    }

    const uint64_t slot = next_available_ & (size - 1);
    const uint16_t head = __atomic_load_n(
        ring_field(memory_, layout_.available_ring, kRingEntriesOffset + kAvailableEntrySize * slot),
        __ATOMIC_RELAXED);

    ChainBuilder builder(memory_, head);
    // A direct chain cannot be longer than the table without looping (section 2.7.5.3.1).
    const uint32_t direct_limit = std::min<uint32_t>(size, kMaxChainLength);
    uint16_t index = head;
    for (uint32_t visited = 1;; ++visited) {
        if (index >= size) {
            result.error = "descriptor index " + std::to_string(index) + " is outside the queue of size " +
                           std::to_string(size) + " (chain head " + std::to_string(head) + ")";
            return result;
        }
        if (visited > direct_limit) {
            result.error = "descriptor chain from head " + std::to_string(head) + " is longer than " +
                           std::to_string(direct_limit) + " descriptors (loop)";
            return result;
        }
        RawDescriptor descriptor;
        const uint8_t* source =
            memory_.host_pointer(GuestAddress{layout_.descriptor_table.value + kDescriptorSizeBytes * index},
                                 kDescriptorSizeBytes);
        copy_from_guest_once(&descriptor, source, sizeof descriptor);

        if (descriptor.flags & kDescriptorFlagIndirect) {
            // Section 2.7.5.3.1: the driver MUST NOT combine INDIRECT with NEXT, so an
            // indirect descriptor always ends the direct part of the chain (2.7.5.3.2).
            if (descriptor.flags & kDescriptorFlagNext) {
                result.error = "descriptor " + std::to_string(index) + " has both INDIRECT and NEXT set";
                return result;
            }
            if (auto error = walk_indirect_table(memory_, descriptor, index, builder); !error.empty()) {
                result.error = std::move(error);
                return result;
            }
            break;
        }
        if (auto error = builder.add(descriptor, "queue", index); !error.empty()) {
            result.error = std::move(error);
            return result;
        }
        if (!(descriptor.flags & kDescriptorFlagNext)) break;
        index = descriptor.next;
    }

    ++next_available_;
    // With notifications on, keep avail_event just past what we consumed so the
    // driver notifies for the next buffer (section 2.7.10).
    if (event_index_ && notifications_enabled_)
        __atomic_store_n(ring_field(memory_, layout_.used_ring, kRingEntriesOffset + kUsedEntrySize * size),
                         next_available_, __ATOMIC_RELAXED);
    result.chain = builder.take();
    return result;
}

void Virtqueue::undo_pop() { --next_available_; }

void Virtqueue::push_used(uint16_t head, uint32_t written_bytes) {
    const UsedElement element{head, written_bytes};
    push_used_batch(std::span(&element, 1));
}

void Virtqueue::push_used_batch(std::span<const UsedElement> elements) {
    const uint16_t size = layout_.size;
    if (size == 0 || elements.empty()) return;
    for (const auto& element : elements) {
        const uint64_t slot = next_used_ & (size - 1);
        auto* entry = reinterpret_cast<uint32_t*>(memory_.host_pointer(
            GuestAddress{layout_.used_ring.value + kRingEntriesOffset + kUsedEntrySize * slot}, kUsedEntrySize));
        __atomic_store_n(&entry[0], static_cast<uint32_t>(element.head), __ATOMIC_RELAXED);
        __atomic_store_n(&entry[1], element.written_bytes, __ATOMIC_RELAXED);
        ++next_used_;
    }
    // Release: the entry (and the data written into the buffers) is visible
    // before the driver can see the new idx (section 2.7.8.2).
    __atomic_store_n(ring_field(memory_, layout_.used_ring, kRingIndexOffset), next_used_, __ATOMIC_RELEASE);
}

bool Virtqueue::needs_interrupt() {
    const uint16_t size = layout_.size;
    if (size == 0) return false;
    if (next_used_ == signalled_used_) return false;  // nothing new since the last call
    const uint16_t previous = signalled_used_;
    const bool previous_valid = signalled_used_valid_;
    signalled_used_ = next_used_;
    signalled_used_valid_ = true;

    // The used idx store must be globally visible before we read the driver's
    // suppression state, or we could miss the driver re-enabling interrupts.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    if (!event_index_) {
        const uint16_t flags =
            __atomic_load_n(ring_field(memory_, layout_.available_ring, kRingFlagsOffset), __ATOMIC_RELAXED);
        return !(flags & kAvailableFlagNoInterrupt);
    }
    if (!previous_valid) return true;
    const uint16_t used_event = __atomic_load_n(
        ring_field(memory_, layout_.available_ring, kRingEntriesOffset + kAvailableEntrySize * size),
        __ATOMIC_RELAXED);
    // Section 2.7.7.2: interrupt when the used idx moved past used_event, i.e.
    // used_event lies in [previous, next_used_) modulo 2^16.
    return static_cast<uint16_t>(next_used_ - used_event - 1) < static_cast<uint16_t>(next_used_ - previous);
}

bool Virtqueue::enable_notifications() {
    const uint16_t size = layout_.size;
    notifications_enabled_ = true;
    if (size == 0) return false;
    if (event_index_) {
        __atomic_store_n(ring_field(memory_, layout_.used_ring, kRingEntriesOffset + kUsedEntrySize * size),
                         next_available_, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(ring_field(memory_, layout_.used_ring, kRingFlagsOffset), uint16_t{0}, __ATOMIC_RELAXED);
    }
    // Publish the re-enabled state before looking at avail idx again: the driver
    // does the mirror image (update idx, barrier, read flags/avail_event).
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    const uint16_t available_index =
        __atomic_load_n(ring_field(memory_, layout_.available_ring, kRingIndexOffset), __ATOMIC_ACQUIRE);
    return available_index != next_available_;
}

void Virtqueue::disable_notifications() {
    notifications_enabled_ = false;
    if (layout_.size == 0) return;
    // Section 2.7.10: with EVENT_IDX the device MUST keep flags at 0; leaving
    // avail_event behind is what suppresses notifications then.
    if (!event_index_)
        __atomic_store_n(ring_field(memory_, layout_.used_ring, kRingFlagsOffset), kUsedFlagNoNotify,
                         __ATOMIC_RELAXED);
}

void Virtqueue::set_indices(uint16_t next_available, uint16_t next_used) {
    next_available_ = next_available;
    next_used_ = next_used;
    signalled_used_ = next_used;
    signalled_used_valid_ = false;
}

}  // namespace atl::vmm::virtio
