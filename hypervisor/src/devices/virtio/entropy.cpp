#include "devices/virtio/entropy.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace atl::vmm::virtio {

uint64_t EntropyDevice::offered_features() const {
    return kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx;
}

void EntropyDevice::read_config(uint64_t /*offset*/, std::span<uint8_t> data) const {
    std::fill(data.begin(), data.end(), 0);
}

Result<void> EntropyDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.empty()) return make_error(name() + ": the driver set up no request queue");
    context_.emplace(std::move(context));
    stopped_ = false;
    return {};
}

void EntropyDevice::reset() {
    context_.reset();
    stopped_ = false;
}

void EntropyDevice::queue_notify(uint16_t queue) {
    if (!context_ || stopped_ || queue != 0) return;
    if (!context_->queue_enabled.empty() && !context_->queue_enabled[0]) return;
    process_queue();
}

void EntropyDevice::process_queue() {
    Virtqueue& queue = context_->queues[0];
    auto error = queue.serve_available([&](DescriptorChain chain) { queue.push_used(chain.head, fill(chain)); });
    if (error) {
        stopped_ = true;
        if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + *error);
        return;
    }
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(0);
}

uint32_t EntropyDevice::fill(const DescriptorChain& chain) {
    // Section 5.4.6: the request is device-writable buffers only; readable ones are ignored.
    ChainWriter writer(*context_->memory, chain.writable);
    uint64_t filled = 0;
    for (const auto& [host, length] : writer.take(kMaxBytesPerRequest)) {
        uint64_t done = 0;
        while (done < length) {
            // getrandom never returns short for <= 256 bytes and otherwise only
            // when a signal interrupts it; the pool is initialised long before a VM runs.
            const ssize_t got = getrandom(host + done, length - done, 0);
            if (got < 0) {
                if (errno == EINTR) continue;
                return static_cast<uint32_t>(filled + done);  // report only what is really random
            }
            done += static_cast<uint64_t>(got);
        }
        filled += done;
    }
    bytes_provided_ += filled;
    return static_cast<uint32_t>(filled);
}

}  // namespace atl::vmm::virtio
