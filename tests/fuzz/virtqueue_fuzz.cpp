// Fuzzes the split virtqueue (virtio 1.2 section 2.7) as a hostile driver would:
// the input is the guest's RAM image, rings and descriptors included, so every
// descriptor field, index and ring flag is attacker-chosen.
//
// Input layout:
//   byte 0      queue size = 1 << (byte % 7)           (1..64)
//   byte 1      bit 0: EVENT_IDX; bit 1: re-pop after undo_pop and compare
//   bytes 2-3   the device's starting next_available (little-endian)
//   bytes 4-5   the device's starting next_used
//   bytes 6...  guest RAM image: region A [0, 8 KiB), then region B [16 KiB, 24 KiB)
// Rings: descriptor table at 0x000, available ring at 0x400, used ring at 0x500.
//
// The oracle: no crash or sanitizer report, every buffer of a popped chain lies
// in guest RAM, every host span handed out lies inside a region's mapping, and
// a chain popped twice from unchanged memory is the same.

#include "devices/virtio/virtqueue.h"
#include "fuzz_input.h"
#include "memory/guest_memory.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

using atl::vmm::GuestAddress;
using atl::vmm::GuestMemory;
using atl::vmm::RegionSpec;
using namespace atl::vmm::virtio;

namespace {

constexpr uint64_t kRegionBytes = 8 << 10;
constexpr uint64_t kRegionBBase = 16 << 10;  // leaves a hole [8 KiB, 16 KiB)
constexpr size_t kHeaderBytes = 6;

GuestMemory& guest_memory() {
    static std::shared_ptr<GuestMemory> memory = [] {
        const RegionSpec regions[] = {{0, kRegionBytes}, {kRegionBBase, kRegionBytes}};
        auto created = GuestMemory::create(regions);
        FUZZ_CHECK(created);
        return std::move(*created);
    }();
    return *memory;
}

bool inside_a_region(const GuestMemory& memory, const uint8_t* host, uint64_t length) {
    for (const auto& region : memory.regions()) {
        if (host >= region.host && host <= region.host + region.size_bytes &&
            length <= static_cast<uint64_t>(region.host + region.size_bytes - host))
            return true;
    }
    return false;
}

bool same_buffers(const std::vector<Buffer>& a, const std::vector<Buffer>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].address.value != b[i].address.value || a[i].length != b[i].length) return false;
    return true;
}

// Touches every byte of the chain the way a device would and checks the spans.
uint32_t consume(const GuestMemory& memory, const DescriptorChain& chain) {
    for (const auto* buffers : {&chain.readable, &chain.writable})
        for (const auto& buffer : *buffers) FUZZ_CHECK(memory.contains(buffer.address, buffer.length));
    FUZZ_CHECK(chain.readable.size() + chain.writable.size() <= Virtqueue::kMaxChainLength);

    ChainReader reader(memory, chain.readable);
    FUZZ_CHECK(reader.remaining() == chain.readable_bytes());
    uint8_t header[7];
    const bool has_header = reader.read(header, sizeof header);
    FUZZ_CHECK(has_header == (chain.readable_bytes() >= sizeof header));
    uint64_t checksum = 0;
    for (const auto& [host, length] : reader.take_remaining()) {
        FUZZ_CHECK(inside_a_region(memory, host, length));
        for (uint64_t i = 0; i < length; i += 61) checksum += host[i];
    }
    FUZZ_CHECK(reader.remaining() == 0);

    ChainWriter writer(memory, chain.writable);
    const uint8_t status = static_cast<uint8_t>(checksum);
    if (writer.remaining() > 0) FUZZ_CHECK(writer.write(&status, 1));
    for (const auto& [host, length] : writer.take(writer.remaining() / 2)) {
        FUZZ_CHECK(inside_a_region(memory, host, length));
        std::memset(host, 0x5A, length);
    }
    FUZZ_CHECK(writer.written() <= chain.writable_bytes());
    return static_cast<uint32_t>(writer.written());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < kHeaderBytes) return 0;
    GuestMemory& memory = guest_memory();
    const uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 7));
    const bool event_index = data[1] & 1;
    const bool repop = data[1] & 2;
    uint16_t next_available, next_used;
    std::memcpy(&next_available, data + 2, 2);
    std::memcpy(&next_used, data + 4, 2);

    const uint8_t* image = data + kHeaderBytes;
    const size_t image_size = size - kHeaderBytes;
    uint8_t* region_a = memory.host_pointer(GuestAddress{0}, kRegionBytes);
    uint8_t* region_b = memory.host_pointer(GuestAddress{kRegionBBase}, kRegionBytes);
    std::memset(region_a, 0, kRegionBytes);
    std::memset(region_b, 0, kRegionBytes);
    std::memcpy(region_a, image, std::min<size_t>(image_size, kRegionBytes));
    if (image_size > kRegionBytes)
        std::memcpy(region_b, image + kRegionBytes, std::min<size_t>(image_size - kRegionBytes, kRegionBytes));

    const QueueLayout layout{queue_size, GuestAddress{0x000}, GuestAddress{0x400}, GuestAddress{0x500}};
    FUZZ_CHECK(Virtqueue::layout_valid(memory, layout));
    Virtqueue queue(memory, layout, event_index);
    queue.set_indices(next_available, next_used);

    // A valid ring never offers more than queue_size chains; the bound only
    // guarantees the loop ends however the indices look.
    for (int round = 0; round < 2 * queue_size + 2; ++round) {
        auto popped = queue.pop();
        if (!popped.error.empty()) {
            FUZZ_CHECK(!popped.chain.has_value());
            break;
        }
        if (!popped.chain) {
            if (queue.enable_notifications()) continue;
            break;
        }
        // Only before the device wrote anything to guest memory (with EVENT_IDX, pop
        // writes avail_event, which an indirect table may overlap).
        if (repop && round == 0 && !event_index) {
            queue.undo_pop();
            auto again = queue.pop();
            FUZZ_CHECK(again.error.empty() && again.chain.has_value());
            FUZZ_CHECK(again.chain->head == popped.chain->head);
            FUZZ_CHECK(same_buffers(again.chain->readable, popped.chain->readable));
            FUZZ_CHECK(same_buffers(again.chain->writable, popped.chain->writable));
        }
        FUZZ_CHECK(popped.chain->head < queue_size);
        queue.push_used(popped.chain->head, consume(memory, *popped.chain));
        if (round % 3 == 0) queue.disable_notifications();
        if (round % 2 == 0) (void)queue.needs_interrupt();
    }
    (void)queue.needs_interrupt();
    return 0;
}
