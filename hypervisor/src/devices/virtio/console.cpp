#include "devices/virtio/console.h"

#include <algorithm>
#include <cstddef>

namespace atl::vmm::virtio {

namespace {

// Section 5.3.4: struct virtio_console_config. cols/rows need F_SIZE and
// max_nr_ports needs F_MULTIPORT, neither offered, so reads give zeros.
struct [[gnu::packed]] ConsoleConfig {
    uint16_t cols;
    uint16_t rows;
    uint32_t max_nr_ports;
    uint32_t emerg_wr;
};
static_assert(offsetof(ConsoleConfig, emerg_wr) == 8);

}  // namespace

ConsoleDevice::ConsoleDevice(std::shared_ptr<CharBackend> backend) : backend_(std::move(backend)) {
    if (!backend_) backend_ = make_null_char_backend();
    backend_->set_input_handler([this](std::span<const uint8_t> bytes) { receive_from_host(bytes); });
}

ConsoleDevice::~ConsoleDevice() { backend_->set_input_handler(nullptr); }

uint64_t ConsoleDevice::offered_features() const {
    return kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx | kFeatureEmergencyWrite;
}

void ConsoleDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    const ConsoleConfig config{};
    read_config_window(config, offset, data);
}

void ConsoleDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // The driver writes a 32-bit value; its low byte is the character (little-endian).
    if (offset == offsetof(ConsoleConfig, emerg_wr) && !data.empty()) backend_->write(data.first(1));
}

Result<void> ConsoleDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.size() < 2) return make_error(name() + ": the driver set up fewer than 2 queues");
    context_.emplace(std::move(context));
    stopped_ = false;
    deliver_pending_input();
    return {};
}

void ConsoleDevice::reset() {
    context_.reset();
    stopped_ = false;
}

bool ConsoleDevice::usable(uint16_t queue) const {
    if (!context_ || stopped_ || queue >= context_->queues.size()) return false;
    return queue >= context_->queue_enabled.size() || context_->queue_enabled[queue];
}

void ConsoleDevice::stop(const std::string& error) {
    stopped_ = true;
    if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + error);
}

void ConsoleDevice::queue_notify(uint16_t queue) {
    if (queue == kReceiveQueue) deliver_pending_input();  // the driver posted receive buffers
    if (queue == kTransmitQueue) transmit_to_host();
}

void ConsoleDevice::receive_from_host(std::span<const uint8_t> bytes) {
    const size_t room = kMaxPendingInputBytes - pending_input_.size();
    const size_t kept = std::min(room, bytes.size());
    pending_input_.insert(pending_input_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(kept));
    dropped_input_bytes_ += bytes.size() - kept;
    deliver_pending_input();
}

void ConsoleDevice::deliver_pending_input() {
    if (pending_input_.empty() || !usable(kReceiveQueue)) return;
    Virtqueue& queue = context_->queues[kReceiveQueue];
    size_t delivered = 0;
    while (delivered < pending_input_.size()) {
        auto popped = queue.pop();
        if (!popped.error.empty()) {
            pending_input_.erase(pending_input_.begin(), pending_input_.begin() + static_cast<ptrdiff_t>(delivered));
            stop(popped.error);
            return;
        }
        if (!popped.chain) {
            // No buffer: make sure the driver tells us when it adds one, and
            // look once more in case it just did (section 2.7.10).
            if (queue.enable_notifications()) continue;
            break;
        }
        // Section 5.3.6.1: receive buffers are device-writable; a readable one is
        // the driver's mistake and is returned empty.
        ChainWriter writer(*context_->memory, popped.chain->writable);
        const size_t length = static_cast<size_t>(
            std::min<uint64_t>(writer.remaining(), pending_input_.size() - delivered));
        writer.write(pending_input_.data() + delivered, length);
        delivered += length;
        queue.push_used(popped.chain->head, static_cast<uint32_t>(length));
    }
    pending_input_.erase(pending_input_.begin(), pending_input_.begin() + static_cast<ptrdiff_t>(delivered));
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(kReceiveQueue);
}

void ConsoleDevice::transmit_to_host() {
    if (!usable(kTransmitQueue)) return;
    Virtqueue& queue = context_->queues[kTransmitQueue];
    auto error = queue.serve_available([&](DescriptorChain chain) {
        ChainReader reader(*context_->memory, chain.readable);
        for (const auto& [host, length] : reader.take_remaining())
            backend_->write(std::span<const uint8_t>(host, static_cast<size_t>(length)));
        // Nothing is written into a transmit buffer: used length 0.
        queue.push_used(chain.head, 0);
    });
    if (error) {
        stop(*error);
        return;
    }
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(kTransmitQueue);
}

}  // namespace atl::vmm::virtio
