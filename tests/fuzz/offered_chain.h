// One request as the device fuzz targets' hostile driver offers it (a chain on
// a split virtqueue, virtio 1.2 section 2.7), and what the device must then
// have done with it.
#pragma once

#include "fuzz_input.h"
#include "virtio_test_driver.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace atl::fuzz {

class OfferedChain {
public:
    using DriverBuffer = vmm::virtio::testing::DriverBuffer;
    using DriverQueue = vmm::virtio::testing::DriverQueue;
    using FakeInterrupt = vmm::virtio::testing::FakeInterrupt;
    using UsedElement = vmm::virtio::testing::UsedElement;

    // Writes `buffers` as one chain on `queue` (through an indirect table when
    // `indirect`) and offers it; with `loop`, its head descriptor first points
    // at itself (16 bytes at `loop_address`), a broken ring. Notify the device next.
    OfferedChain(DriverQueue& queue, const FakeInterrupt& interrupt, const std::vector<DriverBuffer>& buffers,
                 bool indirect, bool loop, uint64_t loop_address)
        : queue_(queue),
          interrupt_(interrupt),
          errors_before_(interrupt.device_errors.size()),
          used_before_(queue.used_index()) {
        head_ = indirect ? queue.add_indirect_chain(buffers, false) : queue.add_chain(buffers, false);
        if (loop) queue.write_descriptor(head_, loop_address, 16, vmm::virtio::testing::kDescNext, head_);
        queue.offer(head_);
    }

    uint16_t head() const { return head_; }
    uint16_t used_before() const { return used_before_; }

    // A loop is a broken ring: reported once, nothing completed, the device
    // stopped.
    void check_broken_ring() const {
        FUZZ_CHECK(interrupt_.device_errors.size() == errors_before_ + 1);
        FUZZ_CHECK(queue_.used_index() == used_before_);
    }

    void check_no_device_error() const { FUZZ_CHECK(interrupt_.device_errors.size() == errors_before_); }

    // For a request the device answers at once: no device error, and exactly
    // this chain completed, with no more than its `writable_bytes` used.
    UsedElement check_completed_at_once(uint64_t writable_bytes) const {
        check_no_device_error();
        FUZZ_CHECK(queue_.used_index() == static_cast<uint16_t>(used_before_ + 1));
        const UsedElement used = queue_.used_element(used_before_);
        FUZZ_CHECK(used.id == head_);
        FUZZ_CHECK(used.length <= writable_bytes);
        return used;
    }

private:
    DriverQueue& queue_;
    const FakeInterrupt& interrupt_;
    size_t errors_before_;
    uint16_t used_before_;
    uint16_t head_ = 0;
};

}  // namespace atl::fuzz
