#include "devices/virtio/virtqueue.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

namespace atl::vmm::virtio {
namespace {

using testing::DriverBuffer;
using testing::TestDriver;
using testing::kDescIndirect;
using testing::kDescNext;
using testing::kDescWrite;

DescriptorChain pop_chain(Virtqueue& queue) {
    auto popped = queue.pop();
    EXPECT_EQ(popped.error, "");
    EXPECT_TRUE(popped.chain.has_value());
    return popped.chain ? std::move(*popped.chain) : DescriptorChain{};
}

std::string pop_error(Virtqueue& queue) {
    auto popped = queue.pop();
    EXPECT_FALSE(popped.chain.has_value());
    return popped.error;
}

// ---- layout ------------------------------------------------------------

TEST(VirtqueueLayout, AcceptsWhatTheDriverLaysOut) {
    TestDriver driver(256);
    EXPECT_TRUE(Virtqueue::layout_valid(*driver.memory(), driver.layout()));
}

TEST(VirtqueueLayout, RefusesBadSizesAlignmentAndAddresses) {
    TestDriver driver(256);
    const auto& memory = *driver.memory();
    auto layout = driver.layout();

    auto bad = layout;
    bad.size = 0;
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
    bad.size = 100;  // not a power of two
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
    bad.size = 65535;
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));

    bad = layout;
    bad.descriptor_table.value += 8;  // needs 16-byte alignment
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
    bad = layout;
    bad.available_ring.value += 1;
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
    bad = layout;
    bad.used_ring.value += 2;
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));

    bad = layout;
    bad.used_ring.value = driver.memory_end() - 8;  // ring runs past the end of RAM
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
    bad = layout;
    bad.descriptor_table.value = 0xFFFFFFFFFFFFFFF0ull;
    EXPECT_FALSE(Virtqueue::layout_valid(memory, bad));
}

TEST(VirtqueueLayout, InvalidLayoutGivesAQueueThatNeverHasWork) {
    TestDriver driver(8);
    auto layout = driver.layout();
    layout.used_ring.value = driver.memory_end();  // outside RAM
    Virtqueue queue(*driver.memory(), layout, false);
    driver.add_chain({{driver.fill(16, 1), 16, false}});
    auto popped = queue.pop();
    EXPECT_FALSE(popped.chain.has_value());
    EXPECT_EQ(popped.error, "");
    EXPECT_EQ(queue.size(), 0);
    EXPECT_FALSE(queue.needs_interrupt());
}

// ---- normal chains -----------------------------------------------------

TEST(Virtqueue, EmptyQueuePopsNothing) {
    TestDriver driver(16);
    auto queue = driver.make_queue(false);
    auto popped = queue.pop();
    EXPECT_FALSE(popped.chain.has_value());
    EXPECT_EQ(popped.error, "");
}

TEST(Virtqueue, BatchPublishesAllEntriesWithOneIndexUpdate) {
    TestDriver driver(16);
    auto queue = driver.make_queue(false);
    const Virtqueue::UsedElement used[] = {{3, 100}, {7, 200}, {1, 0}};
    queue.push_used_batch(used);
    EXPECT_EQ(driver.used_index(), 3);
    EXPECT_EQ(queue.next_used_index(), 3);
    for (uint16_t i = 0; i < 3; ++i) {
        EXPECT_EQ(driver.used_element(i).id, used[i].head);
        EXPECT_EQ(driver.used_element(i).length, used[i].written_bytes);
    }
    queue.push_used_batch({});
    EXPECT_EQ(driver.used_index(), 3) << "an empty batch publishes nothing";
}

TEST(Virtqueue, PopsReadableThenWritableBuffers) {
    TestDriver driver(16);
    auto queue = driver.make_queue(false);
    const uint64_t header = driver.fill(16, 0xAA);
    const uint64_t data = driver.fill(512, 0xBB);
    const uint64_t status = driver.fill(1, 0xCC);
    const uint16_t head = driver.add_chain({{header, 16, false}, {data, 512, true}, {status, 1, true}});

    auto chain = pop_chain(queue);
    EXPECT_EQ(chain.head, head);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_EQ(chain.readable[0].address.value, header);
    EXPECT_EQ(chain.readable[0].length, 16u);
    EXPECT_EQ(chain.writable[0].address.value, data);
    EXPECT_EQ(chain.writable[1].address.value, status);
    EXPECT_EQ(chain.readable_bytes(), 16u);
    EXPECT_EQ(chain.writable_bytes(), 513u);
    EXPECT_EQ(queue.next_available_index(), 1);

    EXPECT_FALSE(queue.pop().chain.has_value());
}

TEST(Virtqueue, PopsChainsInOrderAndPushesUsedEntries) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    std::vector<uint16_t> heads;
    for (int i = 0; i < 3; ++i) heads.push_back(driver.add_chain({{driver.fill(8, 0), 8, true}}));

    for (int i = 0; i < 3; ++i) {
        auto chain = pop_chain(queue);
        EXPECT_EQ(chain.head, heads[i]);
        queue.push_used(chain.head, 100 + i);
    }
    EXPECT_EQ(driver.used_index(), 3);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(driver.used_element(i).id, heads[i]);
        EXPECT_EQ(driver.used_element(i).length, 100u + i);
    }
    EXPECT_EQ(queue.next_used_index(), 3);
}

TEST(Virtqueue, IndicesWrapAround16Bits) {
    TestDriver driver(4);
    auto queue = driver.make_queue(false);
    driver.set_available_index(65534);
    queue.set_indices(65534, 65534);
    for (int i = 0; i < 4; ++i) driver.add_chain({{driver.fill(4, 0), 4, true}});
    EXPECT_EQ(driver.available_index(), 2);
    for (int i = 0; i < 4; ++i) queue.push_used(pop_chain(queue).head, 4);
    EXPECT_FALSE(queue.pop().chain.has_value());
    EXPECT_EQ(queue.next_available_index(), 2);
    EXPECT_EQ(driver.used_index(), 2);
}

TEST(Virtqueue, UndoPopReturnsTheSameChainAgain) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint16_t first = driver.add_chain({{driver.fill(4, 0), 4, true}});
    driver.add_chain({{driver.fill(4, 0), 4, true}});
    EXPECT_EQ(pop_chain(queue).head, first);
    queue.undo_pop();
    EXPECT_EQ(queue.next_available_index(), 0);
    EXPECT_EQ(pop_chain(queue).head, first);
}

TEST(Virtqueue, AcceptsAFullRing) {
    TestDriver driver(4);
    auto queue = driver.make_queue(false);
    for (int i = 0; i < 4; ++i) driver.add_chain({{driver.fill(4, 0), 4, true}});
    for (int i = 0; i < 4; ++i) pop_chain(queue);
}

// ---- chain readers and writers ---------------------------------------------

TEST(ChainReader, ReadsAcrossBufferBoundaries) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const std::vector<uint8_t> first = {1, 2, 3};
    const std::vector<uint8_t> second = {4, 5, 6, 7, 8};
    driver.add_chain({{driver.put(first), 3, false}, {driver.put(second), 5, false}});
    auto chain = pop_chain(queue);

    ChainReader reader(*driver.memory(), chain.readable);
    EXPECT_EQ(reader.remaining(), 8u);
    uint8_t bytes[4] = {};
    ASSERT_TRUE(reader.read(bytes, 4));
    EXPECT_EQ(std::vector<uint8_t>(bytes, bytes + 4), (std::vector<uint8_t>{1, 2, 3, 4}));
    EXPECT_EQ(reader.remaining(), 4u);
    uint8_t too_many[5];
    EXPECT_FALSE(reader.read(too_many, 5));  // short chain: nothing consumed
    EXPECT_EQ(reader.remaining(), 4u);

    auto spans = reader.take_remaining();
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].second, 4u);
    EXPECT_EQ(spans[0].first[0], 5);
    EXPECT_EQ(spans[0].first[3], 8);
    EXPECT_EQ(reader.remaining(), 0u);
}

TEST(ChainWriter, WritesAcrossBuffersAndHandsOutSpans) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t a = driver.fill(2, 0);
    const uint64_t b = driver.fill(6, 0);
    driver.add_chain({{a, 2, true}, {b, 6, true}});
    auto chain = pop_chain(queue);

    ChainWriter writer(*driver.memory(), chain.writable);
    const uint8_t bytes[3] = {9, 8, 7};
    ASSERT_TRUE(writer.write(bytes, 3));
    EXPECT_EQ(driver.get(a, 2), (std::vector<uint8_t>{9, 8}));
    EXPECT_EQ(driver.get_byte(b), 7);
    EXPECT_EQ(writer.written(), 3u);
    EXPECT_EQ(writer.remaining(), 5u);

    auto spans = writer.take(4);
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].second, 4u);
    EXPECT_EQ(writer.remaining(), 1u);
    EXPECT_EQ(writer.written(), 7u);
    uint8_t two[2] = {};
    EXPECT_FALSE(writer.write(two, 2));
    auto rest = writer.take(100);
    ASSERT_EQ(rest.size(), 1u);
    EXPECT_EQ(rest[0].second, 1u);
    EXPECT_EQ(rest[0].first, driver.memory()->host_pointer(GuestAddress{b + 5}, 1));
}

// ---- indirect descriptors ----------------------------------------------

TEST(Virtqueue, FollowsIndirectTables) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t header = driver.fill(16, 0);
    const uint64_t data = driver.fill(4096, 0);
    const uint64_t status = driver.fill(1, 0);
    const uint16_t head = driver.add_indirect_chain({{header, 16, false}, {data, 4096, true}, {status, 1, true}});

    auto chain = pop_chain(queue);
    EXPECT_EQ(chain.head, head);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_EQ(chain.writable[0].address.value, data);
    EXPECT_EQ(chain.writable[0].length, 4096u);
}

TEST(Virtqueue, AcceptsDirectDescriptorsFollowedByAnIndirectOne) {
    // Section 2.7.5.3.2: zero or more chained descriptors, then one indirect.
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t header = driver.fill(16, 0);
    const uint64_t data = driver.fill(64, 0);
    const uint64_t table = driver.allocate(16);
    driver.write_descriptor_at(table, data, 64, kDescWrite, 0);
    driver.write_descriptor(0, header, 16, kDescNext, 1);
    driver.write_descriptor(1, table, 16, kDescIndirect | kDescWrite /* ignored on the table */, 0);
    driver.offer(0);

    auto chain = pop_chain(queue);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_EQ(chain.writable[0].address.value, data);
}

TEST(Virtqueue, RefusesNestedIndirectTables) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t inner = driver.allocate(16);
    driver.write_descriptor_at(inner, driver.fill(8, 0), 8, 0, 0);
    const uint64_t outer = driver.allocate(16);
    driver.write_descriptor_at(outer, inner, 16, kDescIndirect, 0);
    driver.write_descriptor(0, outer, 16, kDescIndirect, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("nested"), std::string::npos);
}

TEST(Virtqueue, RefusesIndirectCombinedWithNext) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t table = driver.allocate(16);
    driver.write_descriptor_at(table, driver.fill(8, 0), 8, 0, 0);
    driver.write_descriptor(0, table, 16, kDescIndirect | kDescNext, 1);
    driver.write_descriptor(1, driver.fill(8, 0), 8, 0, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("INDIRECT and NEXT"), std::string::npos);
}

TEST(Virtqueue, RefusesIndirectTablesOfBadLength) {
    for (uint32_t length : {0u, 8u, 24u}) {
        TestDriver driver(8);
        auto queue = driver.make_queue(false);
        const uint64_t table = driver.allocate(32);
        driver.write_descriptor_at(table, driver.fill(8, 0), 8, 0, 0);
        driver.write_descriptor(0, table, length, kDescIndirect, 0);
        driver.offer(0);
        EXPECT_NE(pop_error(queue).find("multiple of 16"), std::string::npos) << "length " << length;
    }
}

TEST(Virtqueue, RefusesIndirectTablesOutsideRam) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.write_descriptor(0, driver.memory_end() - 16, 32, kDescIndirect, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("outside guest RAM"), std::string::npos);
}

TEST(Virtqueue, RefusesLoopsInsideIndirectTables) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t table = driver.allocate(32);
    const uint64_t data = driver.fill(8, 0);
    driver.write_descriptor_at(table, data, 8, kDescNext, 1);
    driver.write_descriptor_at(table + 16, data, 8, kDescNext, 0);
    driver.write_descriptor(0, table, 32, kDescIndirect, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("loops"), std::string::npos);
}

TEST(Virtqueue, RefusesNextOutsideIndirectTable) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t table = driver.allocate(32);
    const uint64_t data = driver.fill(8, 0);
    driver.write_descriptor_at(table, data, 8, kDescNext, 2);  // the table has 2 entries
    driver.write_descriptor_at(table + 16, data, 8, 0, 0);
    driver.write_descriptor(0, table, 32, kDescIndirect, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("outside the table"), std::string::npos);
}

// ---- hostile direct chains ------------------------------------------------

TEST(Virtqueue, RefusesDescriptorLoops) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    driver.write_descriptor(0, data, 8, kDescNext, 1);
    driver.write_descriptor(1, data, 8, kDescNext, 2);
    driver.write_descriptor(2, data, 8, kDescNext, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("loop"), std::string::npos);
}

TEST(Virtqueue, RefusesASelfReferencingDescriptor) {
    TestDriver driver(1);
    auto queue = driver.make_queue(false);
    driver.write_descriptor(0, driver.fill(8, 0), 8, kDescNext, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("loop"), std::string::npos);
}

TEST(Virtqueue, RefusesNextIndexOutOfRange) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.write_descriptor(0, driver.fill(8, 0), 8, kDescNext, 8);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("descriptor index 8 is outside"), std::string::npos);
}

TEST(Virtqueue, RefusesHeadIndexOutOfRange) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.offer(200);
    EXPECT_NE(pop_error(queue).find("descriptor index 200"), std::string::npos);
}

TEST(Virtqueue, RefusesBuffersOutsideRam) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{driver.memory_end(), 1, true}});
    EXPECT_NE(pop_error(queue).find("outside guest RAM"), std::string::npos);
}

TEST(Virtqueue, RefusesBuffersRunningPastTheEndOfRam) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{driver.memory_end() - 10, 11, false}});
    EXPECT_NE(pop_error(queue).find("outside guest RAM"), std::string::npos);
}

TEST(Virtqueue, RefusesLengthsThatWouldOverflowTheAddressSpace) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{0xFFFFFFFFFFFFFF00ull, 0xFFFFFFFFu, true}});
    EXPECT_NE(pop_error(queue).find("outside guest RAM"), std::string::npos);

    TestDriver second(8);
    auto second_queue = second.make_queue(false);
    second.add_chain({{0xFFFFFFFFFFFFFFFFull, 2, false}});
    EXPECT_NE(pop_error(second_queue).find("outside guest RAM"), std::string::npos);
}

TEST(Virtqueue, RefusesZeroLengthBuffers) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{driver.fill(8, 0), 8, false}, {driver.data_base(), 0, true}});
    EXPECT_NE(pop_error(queue).find("length 0"), std::string::npos);
}

TEST(Virtqueue, RefusesReadableAfterWritable) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{driver.fill(8, 0), 8, true}, {driver.fill(8, 0), 8, false}});
    EXPECT_NE(pop_error(queue).find("follows a device-writable"), std::string::npos);
}

TEST(Virtqueue, RefusesAvailableIndexJumpingPastQueueSize) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    driver.set_available_index(9);
    EXPECT_NE(pop_error(queue).find("jumped"), std::string::npos);

    // Going backwards is the same as jumping ~65535 ahead.
    TestDriver second(8);
    auto second_queue = second.make_queue(false);
    second_queue.set_indices(10, 10);
    second.set_available_index(9);
    EXPECT_NE(pop_error(second_queue).find("jumped"), std::string::npos);
}

TEST(Virtqueue, AcceptsTheLongestDirectChainAndRefusesLonger) {
    // 2048 descriptors in the table, so only kMaxChainLength bounds the chain.
    TestDriver driver(2048, 64 << 10);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    std::vector<DriverBuffer> buffers(Virtqueue::kMaxChainLength, DriverBuffer{data, 8, false});
    driver.add_chain(buffers);
    auto chain = pop_chain(queue);
    EXPECT_EQ(chain.readable.size(), Virtqueue::kMaxChainLength);
    EXPECT_EQ(chain.readable_bytes(), 8ull * Virtqueue::kMaxChainLength);

    buffers.push_back(DriverBuffer{data, 8, false});
    driver.add_chain(buffers);
    EXPECT_NE(pop_error(queue).find("longer than 1024"), std::string::npos);
}

TEST(Virtqueue, BoundsChainsByQueueSize) {
    // A chain as long as the table is the most a loop-free chain can be.
    TestDriver driver(16);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    driver.add_chain(std::vector<DriverBuffer>(16, DriverBuffer{data, 8, false}));
    EXPECT_EQ(pop_chain(queue).readable.size(), 16u);
}

TEST(Virtqueue, BoundsIndirectTables) {
    TestDriver driver(8, 256 << 10);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    driver.add_indirect_chain(std::vector<DriverBuffer>(Virtqueue::kMaxChainLength, DriverBuffer{data, 8, true}));
    EXPECT_EQ(pop_chain(queue).writable.size(), Virtqueue::kMaxChainLength);

    driver.add_indirect_chain(
        std::vector<DriverBuffer>(Virtqueue::kMaxChainLength + 1, DriverBuffer{data, 8, true}));
    EXPECT_NE(pop_error(queue).find("more than the limit"), std::string::npos);
}

TEST(Virtqueue, BoundsDirectPlusIndirectTotal) {
    TestDriver driver(1024, 256 << 10);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    const uint64_t table = driver.allocate(16 * 100);
    for (uint16_t i = 0; i < 100; ++i)
        driver.write_descriptor_at(table + 16 * i, data, 8, i + 1 < 100 ? kDescNext : 0, i + 1);
    for (uint16_t i = 0; i < 1000; ++i) driver.write_descriptor(i, data, 8, kDescNext, i + 1);
    driver.write_descriptor(1000, table, 16 * 100, kDescIndirect, 0);
    driver.offer(0);
    EXPECT_NE(pop_error(queue).find("longer than 1024 buffers"), std::string::npos);
}

TEST(Virtqueue, ValidatesADescriptorCopyNotTheLiveTable) {
    // The chain is captured at pop time: later guest changes do not alter it.
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    const uint64_t data = driver.fill(8, 0);
    driver.add_chain({{data, 8, true}});
    auto chain = pop_chain(queue);
    driver.write_descriptor(0, 0xFFFFFFFF00000000ull, 0xFFFFFFFF, kDescWrite, 0);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_EQ(chain.writable[0].address.value, data);
    EXPECT_EQ(chain.writable[0].length, 8u);
}

// ---- notifications ---------------------------------------------------------

TEST(VirtqueueInterrupts, NoInterruptWithoutNewUsedBuffers) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    EXPECT_FALSE(queue.needs_interrupt());
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    queue.push_used(pop_chain(queue).head, 0);
    EXPECT_TRUE(queue.needs_interrupt());
    EXPECT_FALSE(queue.needs_interrupt());
}

TEST(VirtqueueInterrupts, HonoursNoInterruptFlagWithoutEventIndex) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    driver.set_available_flags(testing::kAvailNoInterrupt);
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    queue.push_used(pop_chain(queue).head, 0);
    EXPECT_FALSE(queue.needs_interrupt());

    driver.set_available_flags(0);
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    queue.push_used(pop_chain(queue).head, 0);
    EXPECT_TRUE(queue.needs_interrupt());
}

TEST(VirtqueueInterrupts, EventIndexSuppressesUntilUsedEventIsCrossed) {
    TestDriver driver(16);
    auto queue = driver.make_queue(true);
    // The flag is ignored with EVENT_IDX (section 2.7.7.2).
    driver.set_available_flags(testing::kAvailNoInterrupt);
    for (int i = 0; i < 6; ++i) driver.add_chain({{driver.fill(8, 0), 8, true}});

    // First interrupt is always sent: nothing was signalled before.
    queue.push_used(pop_chain(queue).head, 0);  // used idx 1
    EXPECT_TRUE(queue.needs_interrupt());

    driver.set_used_event(3);  // wants an interrupt once entry 3 is used (idx reaches 4)
    queue.push_used(pop_chain(queue).head, 0);  // idx 2
    EXPECT_FALSE(queue.needs_interrupt());
    queue.push_used(pop_chain(queue).head, 0);  // idx 3
    EXPECT_FALSE(queue.needs_interrupt());
    queue.push_used(pop_chain(queue).head, 0);  // idx 4: crossed used_event
    EXPECT_TRUE(queue.needs_interrupt());

    // Several pushes in one batch crossing the event still interrupt once.
    driver.set_used_event(4);
    queue.push_used(pop_chain(queue).head, 0);  // idx 5
    queue.push_used(pop_chain(queue).head, 0);  // idx 6
    EXPECT_TRUE(queue.needs_interrupt());
}

TEST(VirtqueueInterrupts, EventIndexBehindTheBatchSuppresses) {
    TestDriver driver(16);
    auto queue = driver.make_queue(true);
    for (int i = 0; i < 3; ++i) driver.add_chain({{driver.fill(8, 0), 8, true}});
    queue.push_used(pop_chain(queue).head, 0);
    EXPECT_TRUE(queue.needs_interrupt());
    driver.set_used_event(0);  // already passed: the driver has not re-armed
    queue.push_used(pop_chain(queue).head, 0);
    queue.push_used(pop_chain(queue).head, 0);
    EXPECT_FALSE(queue.needs_interrupt());
}

TEST(VirtqueueNotifications, FlagsWithoutEventIndex) {
    TestDriver driver(8);
    auto queue = driver.make_queue(false);
    queue.disable_notifications();
    EXPECT_EQ(driver.used_flags(), testing::kUsedNoNotify);
    EXPECT_FALSE(queue.enable_notifications());
    EXPECT_EQ(driver.used_flags(), 0);

    queue.disable_notifications();
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    EXPECT_TRUE(queue.enable_notifications());  // a buffer arrived meanwhile
}

TEST(VirtqueueNotifications, AvailEventWithEventIndex) {
    TestDriver driver(8);
    auto queue = driver.make_queue(true);
    queue.disable_notifications();
    EXPECT_EQ(driver.used_flags(), 0);  // MUST stay 0 with EVENT_IDX
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    driver.add_chain({{driver.fill(8, 0), 8, true}});
    pop_chain(queue);
    EXPECT_EQ(driver.avail_event(), 0);  // left behind while disabled
    EXPECT_TRUE(queue.enable_notifications());
    EXPECT_EQ(driver.avail_event(), 1);
    pop_chain(queue);
    EXPECT_EQ(driver.avail_event(), 2);  // kept current while enabled
    EXPECT_FALSE(queue.enable_notifications());
}

}  // namespace
}  // namespace atl::vmm::virtio
