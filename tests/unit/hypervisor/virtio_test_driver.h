// A minimal virtio driver for tests and fuzzers: lays out split virtqueues
// (virtio 1.2 section 2.7) in a flat GuestMemory the way a guest would, and
// adds descriptor chains to them. No GoogleTest dependency, so fuzz targets use it too.
#pragma once

#include "devices/virtio/device.h"
#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace atl::vmm::virtio::testing {

constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;
constexpr uint16_t kUsedNoNotify = 1;

struct DriverBuffer {
    uint64_t address = 0;
    uint32_t length = 0;
    bool device_writable = false;
};

struct UsedElement {
    uint32_t id = 0;
    uint32_t length = 0;
};

// Records what a device asked the transport to do.
class FakeInterrupt : public Interrupt {
public:
    void notify_queue(uint16_t queue) override { queue_notifications.push_back(queue); }
    void notify_config_change() override { ++config_changes; }
    void report_device_error(const std::string& why) override { device_errors.push_back(why); }

    std::vector<uint16_t> queue_notifications;
    int config_changes = 0;
    std::vector<std::string> device_errors;
};

class TestDriver;

// One split virtqueue as the driver sees it: its rings, its free-running
// available index and a round-robin descriptor allocator.
class DriverQueue {
public:
    DriverQueue(TestDriver& driver, uint16_t size, uint64_t descriptor_table, uint64_t available_ring,
                uint64_t used_ring)
        : driver_(&driver),
          size_(size),
          descriptor_table_(descriptor_table),
          available_ring_(available_ring),
          used_ring_(used_ring) {}

    uint16_t size() const { return size_; }
    QueueLayout layout() const {
        return QueueLayout{size_, GuestAddress{descriptor_table_}, GuestAddress{available_ring_},
                           GuestAddress{used_ring_}};
    }
    inline Virtqueue make_queue(bool event_index) const;

    inline void write_descriptor(uint16_t index, uint64_t address, uint32_t length, uint16_t flags, uint16_t next);
    // Writes `buffers` as a chain of direct descriptors (section 2.7.13.1) and
    // offers its head. Descriptors are taken round-robin from the table.
    inline uint16_t add_chain(const std::vector<DriverBuffer>& buffers, bool offer_now = true);
    // Puts `buffers` in an indirect table (section 2.7.5.3) referenced by one descriptor.
    inline uint16_t add_indirect_chain(const std::vector<DriverBuffer>& buffers, bool offer_now = true);
    // Places `head` in the next available slot and publishes the new idx.
    inline void offer(uint16_t head);
    inline void set_available_index(uint16_t index);
    uint16_t available_index() const { return available_index_; }
    void set_next_descriptor(uint16_t index) { next_descriptor_ = index; }

    inline void set_available_flags(uint16_t flags);
    inline void set_used_event(uint16_t value);
    inline uint16_t used_flags() const;
    inline uint16_t avail_event() const;
    inline uint16_t used_index() const;
    inline UsedElement used_element(uint16_t position) const;

private:
    TestDriver* driver_;
    uint16_t size_;
    uint64_t descriptor_table_;
    uint64_t available_ring_;
    uint64_t used_ring_;
    uint16_t available_index_ = 0;
    uint16_t next_descriptor_ = 0;
};

// Guest memory holding `queue_count` queues of `queue_size` from 64 KiB on, then
// a data area of `data_bytes`. The queue methods on TestDriver itself act on queue 0.
class TestDriver {
public:
    explicit TestDriver(uint16_t queue_size, uint64_t data_bytes = 1 << 20, uint16_t queue_count = 1) {
        uint64_t next = kRingBase;
        std::vector<std::array<uint64_t, 3>> rings;
        for (uint16_t q = 0; q < queue_count; ++q) {
            const uint64_t descriptor_table = align_up(next, 4096);
            const uint64_t available_ring = align_up(descriptor_table + 16ull * queue_size, 16);
            const uint64_t used_ring = align_up(available_ring + 6 + 2ull * queue_size, 4096);
            next = used_ring + 6 + 8ull * queue_size;
            rings.push_back({descriptor_table, available_ring, used_ring});
        }
        data_base_ = align_up(next, 4096);
        data_next_ = data_base_;
        memory_ = GuestMemory::create_flat(data_base_ + data_bytes);
        for (const auto& ring : rings) queues_.emplace_back(*this, queue_size, ring[0], ring[1], ring[2]);
    }
    TestDriver(const TestDriver&) = delete;
    TestDriver& operator=(const TestDriver&) = delete;

    const std::shared_ptr<GuestMemory>& memory() const { return memory_; }
    DriverQueue& queue(size_t index) { return queues_.at(index); }
    uint64_t data_base() const { return data_base_; }
    uint64_t memory_end() const { return memory_->total_size_bytes(); }

    // An activation context with every queue enabled, as the transport builds it.
    ActivationContext activation_context(bool event_index, Interrupt* interrupt) const {
        ActivationContext context;
        context.memory = memory_;
        for (const auto& queue : queues_) context.queues.push_back(queue.make_queue(event_index));
        context.queue_enabled.assign(queues_.size(), true);
        context.interrupt = interrupt;
        return context;
    }

    // ---- guest data area -------------------------------------------------
    uint64_t allocate(uint64_t bytes, uint64_t alignment = 16) {
        const uint64_t address = align_up(data_next_, alignment);
        data_next_ = address + bytes;
        return address;
    }
    void reset_data() { data_next_ = data_base_; }
    uint64_t put(std::span<const uint8_t> bytes) {
        const uint64_t address = allocate(bytes.size());
        memory_->write(GuestAddress{address}, bytes.data(), bytes.size());
        return address;
    }
    template <class T>
    uint64_t put_object(const T& object) {
        return put(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&object), sizeof(T)));
    }
    uint64_t fill(uint64_t bytes, uint8_t value) {
        const uint64_t address = allocate(bytes);
        if (uint8_t* host = memory_->host_pointer(GuestAddress{address}, bytes)) std::memset(host, value, bytes);
        return address;
    }
    std::vector<uint8_t> get(uint64_t address, uint64_t length) const {
        std::vector<uint8_t> bytes(length);
        memory_->read(GuestAddress{address}, bytes.data(), length);
        return bytes;
    }
    uint8_t get_byte(uint64_t address) const {
        uint8_t value = 0;
        memory_->read_object(GuestAddress{address}, value);
        return value;
    }
    void write_u16(uint64_t address, uint16_t value) { memory_->write_object(GuestAddress{address}, value); }
    uint16_t read_u16(uint64_t address) const {
        uint16_t value = 0;
        memory_->read_object(GuestAddress{address}, value);
        return value;
    }
    void write_descriptor_at(uint64_t where, uint64_t address, uint32_t length, uint16_t flags, uint16_t next) {
        uint8_t raw[16];
        std::memcpy(raw, &address, 8);
        std::memcpy(raw + 8, &length, 4);
        std::memcpy(raw + 12, &flags, 2);
        std::memcpy(raw + 14, &next, 2);
        memory_->write(GuestAddress{where}, raw, sizeof raw);
    }

    // ---- queue 0 -----------------------------------------------------------
    uint16_t queue_size() const { return queues_[0].size(); }
    QueueLayout layout() const { return queues_[0].layout(); }
    Virtqueue make_queue(bool event_index) const { return queues_[0].make_queue(event_index); }
    void write_descriptor(uint16_t index, uint64_t address, uint32_t length, uint16_t flags, uint16_t next) {
        queues_[0].write_descriptor(index, address, length, flags, next);
    }
    uint16_t add_chain(const std::vector<DriverBuffer>& buffers, bool offer_now = true) {
        return queues_[0].add_chain(buffers, offer_now);
    }
    uint16_t add_indirect_chain(const std::vector<DriverBuffer>& buffers, bool offer_now = true) {
        return queues_[0].add_indirect_chain(buffers, offer_now);
    }
    void offer(uint16_t head) { queues_[0].offer(head); }
    void set_available_index(uint16_t index) { queues_[0].set_available_index(index); }
    uint16_t available_index() const { return queues_[0].available_index(); }
    void set_next_descriptor(uint16_t index) { queues_[0].set_next_descriptor(index); }
    void set_available_flags(uint16_t flags) { queues_[0].set_available_flags(flags); }
    void set_used_event(uint16_t value) { queues_[0].set_used_event(value); }
    uint16_t used_flags() const { return queues_[0].used_flags(); }
    uint16_t avail_event() const { return queues_[0].avail_event(); }
    uint16_t used_index() const { return queues_[0].used_index(); }
    UsedElement used_element(uint16_t position) const { return queues_[0].used_element(position); }

private:
    static constexpr uint64_t kRingBase = 0x10000;
    static uint64_t align_up(uint64_t value, uint64_t alignment) {
        return (value + alignment - 1) / alignment * alignment;
    }

    uint64_t data_base_ = 0;
    uint64_t data_next_ = 0;
    std::shared_ptr<GuestMemory> memory_;
    std::vector<DriverQueue> queues_;
};

inline Virtqueue DriverQueue::make_queue(bool event_index) const {
    return Virtqueue(*driver_->memory(), layout(), event_index);
}

inline void DriverQueue::write_descriptor(uint16_t index, uint64_t address, uint32_t length, uint16_t flags,
                                          uint16_t next) {
    driver_->write_descriptor_at(descriptor_table_ + 16ull * index, address, length, flags, next);
}

inline uint16_t DriverQueue::add_chain(const std::vector<DriverBuffer>& buffers, bool offer_now) {
    const uint16_t head = next_descriptor_;
    for (size_t i = 0; i < buffers.size(); ++i) {
        const uint16_t index = next_descriptor_;
        next_descriptor_ = static_cast<uint16_t>((next_descriptor_ + 1) % size_);
        const bool last = i + 1 == buffers.size();
        const uint16_t flags = (buffers[i].device_writable ? kDescWrite : 0) | (last ? 0 : kDescNext);
        write_descriptor(index, buffers[i].address, buffers[i].length, flags, last ? 0 : next_descriptor_);
    }
    if (offer_now) offer(head);
    return head;
}

inline uint16_t DriverQueue::add_indirect_chain(const std::vector<DriverBuffer>& buffers, bool offer_now) {
    const uint64_t table = driver_->allocate(16ull * buffers.size(), 16);
    for (size_t i = 0; i < buffers.size(); ++i) {
        const bool last = i + 1 == buffers.size();
        const uint16_t flags = (buffers[i].device_writable ? kDescWrite : 0) | (last ? 0 : kDescNext);
        driver_->write_descriptor_at(table + 16 * i, buffers[i].address, buffers[i].length, flags,
                                     last ? 0 : static_cast<uint16_t>(i + 1));
    }
    const uint16_t head = next_descriptor_;
    next_descriptor_ = static_cast<uint16_t>((next_descriptor_ + 1) % size_);
    write_descriptor(head, table, static_cast<uint32_t>(16 * buffers.size()), kDescIndirect, 0);
    if (offer_now) offer(head);
    return head;
}

inline void DriverQueue::offer(uint16_t head) {
    driver_->write_u16(available_ring_ + 4 + 2ull * (available_index_ % size_), head);
    ++available_index_;
    driver_->write_u16(available_ring_ + 2, available_index_);
}

inline void DriverQueue::set_available_index(uint16_t index) {
    available_index_ = index;
    driver_->write_u16(available_ring_ + 2, index);
}

inline void DriverQueue::set_available_flags(uint16_t flags) { driver_->write_u16(available_ring_, flags); }
inline void DriverQueue::set_used_event(uint16_t value) {
    driver_->write_u16(available_ring_ + 4 + 2ull * size_, value);
}
inline uint16_t DriverQueue::used_flags() const { return driver_->read_u16(used_ring_); }
inline uint16_t DriverQueue::avail_event() const { return driver_->read_u16(used_ring_ + 4 + 8ull * size_); }
inline uint16_t DriverQueue::used_index() const { return driver_->read_u16(used_ring_ + 2); }
inline UsedElement DriverQueue::used_element(uint16_t position) const {
    UsedElement element;
    driver_->memory()->read_object(GuestAddress{used_ring_ + 4 + 8ull * (position % size_)}, element);
    return element;
}

}  // namespace atl::vmm::virtio::testing
