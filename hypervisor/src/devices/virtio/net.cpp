#include "devices/virtio/net.h"

#include "vmm/event_loop.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace atl::vmm::virtio {

namespace {

// The virtio header and the configuration space are little-endian; the
// header is copied straight out of guest memory.
static_assert(std::endian::native == std::endian::little, "virtio-net assumes a little-endian host");

// struct virtio_net_hdr (section 5.1.6), VERSION_1 layout with num_buffers.
struct VirtioNetHeader {
    uint8_t flags = 0;
    uint8_t gso_type = 0;
    uint16_t header_length = 0;
    uint16_t gso_size = 0;
    uint16_t checksum_start = 0;
    uint16_t checksum_offset = 0;
    uint16_t num_buffers = 0;
};
static_assert(sizeof(VirtioNetHeader) == NetDevice::kHeaderBytes);

constexpr uint8_t kGsoNone = 0;
constexpr uint16_t kStatusLinkUp = 1;  // VIRTIO_NET_S_LINK_UP (section 5.1.4)
constexpr uint32_t kEthernetHeaderBytes = 14;

// Configuration layout (section 5.1.4): mac[6], status, max_virtqueue_pairs,
// mtu, speed, duplex, then RSS fields we do not offer (left zero).
constexpr size_t kConfigMac = 0;
constexpr size_t kConfigStatus = 6;
constexpr size_t kConfigMaxVirtqueuePairs = 8;
constexpr size_t kConfigMtu = 10;
constexpr size_t kConfigSpeed = 12;
constexpr size_t kConfigDuplex = 16;
constexpr size_t kConfigBytes = 24;

void store_le16(uint8_t* at, uint16_t value) {
    at[0] = static_cast<uint8_t>(value);
    at[1] = static_cast<uint8_t>(value >> 8);
}

void store_le32(uint8_t* at, uint32_t value) {
    for (int i = 0; i < 4; ++i) at[i] = static_cast<uint8_t>(value >> (8 * i));
}

// A guest can produce malformed chains as fast as it likes: a few lines per
// second, the rest counted.
void log_guest_error(const std::string& device, const std::string& message) {
    using Clock = std::chrono::steady_clock;
    static Clock::time_point window_start;
    static int printed = 0;
    static uint64_t suppressed = 0;
    const auto now = Clock::now();
    if (now - window_start >= std::chrono::seconds(1)) {
        if (suppressed > 0)
            std::fprintf(stderr, "virtio-net: %llu more guest errors suppressed\n",
                         static_cast<unsigned long long>(suppressed));
        window_start = now;
        printed = 0;
        suppressed = 0;
    }
    if (printed >= 5) {
        ++suppressed;
        return;
    }
    ++printed;
    std::fprintf(stderr, "%s: %s\n", device.c_str(), message.c_str());
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string MacAddress::to_string() const {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
                  bytes[4], bytes[5]);
    return text;
}

Result<MacAddress> parse_mac_address(std::string_view text) {
    const auto bad = [&] {
        return make_error("MAC address '" + std::string(text) + "': expected six hex bytes such as 52:54:00:12:34:56");
    };
    if (text.size() != 17) return bad();
    MacAddress mac;
    for (size_t i = 0; i < 6; ++i) {
        const int high = hex_digit(text[3 * i]);
        const int low = hex_digit(text[3 * i + 1]);
        if (high < 0 || low < 0) return bad();
        if (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-') return bad();
        mac.bytes[i] = static_cast<uint8_t>(high << 4 | low);
    }
    if (mac.bytes[0] & 1)
        return make_error("MAC address " + mac.to_string() + ": is a multicast address (the first byte must be even)");
    if (mac == MacAddress{}) return make_error("MAC address 00:00:00:00:00:00: is not a valid station address");
    return mac;
}

NetDevice::NetDevice(NetDeviceConfig config, std::shared_ptr<NetBackend> backend)
    : config_(std::move(config)),
      backend_(backend ? std::move(backend) : make_null_net_backend()),
      status_(kStatusLinkUp) {
    backend_->set_receive_handler([this](std::span<const uint8_t> frame) { on_frame_from_backend(frame); });
}

NetDevice::~NetDevice() { backend_->set_receive_handler(nullptr); }

uint64_t NetDevice::offered_features() const {
    uint64_t features = kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc | kNetFeatureMac |
                        kNetFeatureStatus | kNetFeatureMergeableRxBuffers;
    if (config_.mtu) features |= kNetFeatureMtu;
    return features;
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    std::array<uint8_t, kConfigBytes> space{};
    std::copy(config_.mac.bytes.begin(), config_.mac.bytes.end(), space.begin() + kConfigMac);
    store_le16(&space[kConfigStatus], status_.load(std::memory_order_relaxed));
    // Meaningful only with VIRTIO_NET_F_MQ; one pair is the truth anyway.
    store_le16(&space[kConfigMaxVirtqueuePairs], 1);
    store_le16(&space[kConfigMtu], config_.mtu.value_or(0));
    // Without VIRTIO_NET_F_SPEED_DUPLEX these are ignored; "unknown" is honest.
    store_le32(&space[kConfigSpeed], 0xffffffff);
    space[kConfigDuplex] = 0xff;
    read_config_window(std::span<const uint8_t>(space), offset, data);
}

Result<void> NetDevice::activate(ActivationContext context) {
    if (!(context.acked_features & kFeatureVersion1))
        return make_error(name() + ": the driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported)");
    if (context.queues.size() < 2 || context.queue_enabled.size() < 2)
        return make_error(name() + ": expected 2 queues, got " + std::to_string(context.queues.size()));
    if (!context.memory || !context.interrupt) return make_error(name() + ": activated without memory or interrupt");

    reset();
    memory_ = std::move(context.memory);
    queues_ = std::move(context.queues);
    receive_enabled_ = context.queue_enabled[kReceiveQueue] && queues_[kReceiveQueue].size() > 0;
    transmit_enabled_ = context.queue_enabled[kTransmitQueue] && queues_[kTransmitQueue].size() > 0;
    mergeable_rx_buffers_ = (context.acked_features & kNetFeatureMergeableRxBuffers) != 0;
    interrupt_ = context.interrupt;
    event_loop_ = context.event_loop;
    active_ = true;
    return {};
}

void NetDevice::reset() {
    active_ = false;
    failed_ = false;
    reserved_rx_chains_.clear();
    backlog_.clear();
    queues_.clear();
    memory_.reset();
    interrupt_ = nullptr;
    event_loop_ = nullptr;
    receive_enabled_ = false;
    transmit_enabled_ = false;
    mergeable_rx_buffers_ = false;
}

void NetDevice::queue_notify(uint16_t queue) {
    if (!running()) return;
    if (queue == kTransmitQueue) process_transmit_queue();
    // New receive buffers: frames that waited for them go first.
    if (queue == kReceiveQueue) flush_backlog();
}

void NetDevice::set_link_up(bool up) {
    const uint16_t status = up ? kStatusLinkUp : 0;
    if (status_.exchange(status) == status) return;
    if (!up) backlog_.clear();
    // Section 5.1.4: the driver learns of the change through a configuration
    // change notification.
    if (running()) interrupt_->notify_config_change();
}

// The transport logs the error and sets DEVICE_NEEDS_RESET (section 2.1.2);
// until the driver resets the device, nothing more is taken from the queues.
void NetDevice::fail(const std::string& why) {
    failed_ = true;
    if (interrupt_) interrupt_->report_device_error(why);
}

void NetDevice::signal_used(uint16_t queue) {
    if (queues_[queue].needs_interrupt()) interrupt_->notify_queue(queue);
}

// ---------------------------------------------------------------------------
// Transmit (section 5.1.6.2)

void NetDevice::process_transmit_queue() {
    if (!running() || !transmit_enabled_) return;
    Virtqueue& queue = queues_[kTransmitQueue];
    int budget = kTransmitBudget;
    bool pushed = false;
    // While draining, the driver need not notify (section 2.7.10); before
    // stopping, notifications go back on and the queue is checked once more
    // so that a buffer added in between is not missed.
    queue.disable_notifications();
    while (true) {
        auto popped = queue.pop();
        if (!popped.error.empty()) return fail("transmit queue: " + popped.error);
        if (!popped.chain) {
            if (queue.enable_notifications()) {
                queue.disable_notifications();
                continue;
            }
            break;
        }
        transmit(*popped.chain);
        if (!running()) return;
        pushed = true;
        if (event_loop_ && --budget == 0) {
            // Yield to the rest of the loop and come back; notifications stay
            // off meanwhile since we will look at the queue anyway.
            if (!transmit_continuation_posted_) {
                transmit_continuation_posted_ = true;
                event_loop_->post([weak = std::weak_ptr<NetDevice*>(lifetime_)] {
                    const auto alive = weak.lock();
                    if (!alive) return;
                    NetDevice& device = **alive;
                    device.transmit_continuation_posted_ = false;
                    device.process_transmit_queue();
                });
            }
            break;
        }
    }
    if (pushed) signal_used(kTransmitQueue);
}

void NetDevice::transmit(const DescriptorChain& chain) {
    Virtqueue& queue = queues_[kTransmitQueue];
    // The device only reads a transmit chain; used length is 0 (section 2.7.8).
    const auto drop = [&](const std::string& why) {
        ++statistics_.transmit_errors;
        log_guest_error(name(), "dropped a transmit chain: " + why);
        queue.push_used(chain.head, 0);
    };
    const uint64_t total_bytes = chain.readable_bytes();
    if (total_bytes < kHeaderBytes + kEthernetHeaderBytes)
        return drop(std::to_string(total_bytes) + " bytes is shorter than the virtio-net and Ethernet headers");
    if (total_bytes > kHeaderBytes + kMaxFrameBytes)
        return drop(std::to_string(total_bytes) + " bytes is longer than any frame");

    // One copy out of guest memory; all checks apply to the copy, never to
    // memory the guest can still change.
    ChainReader reader(*memory_, chain.readable);
    VirtioNetHeader header;
    const size_t frame_bytes = static_cast<size_t>(total_bytes - kHeaderBytes);
    transmit_scratch_.resize(frame_bytes);
    if (!reader.read_object(header) || !reader.read(transmit_scratch_.data(), frame_bytes))
        return drop("buffers outside guest memory");
    // Section 5.1.6.2.1: without the TSO/UFO features the driver must send
    // GSO_NONE; a segmented super-frame cannot be passed on as one frame.
    // (flags are ignored: NEEDS_CSUM is meaningless without VIRTIO_NET_F_CSUM.)
    if (header.gso_type != kGsoNone)
        return drop("segmentation offload (gso_type " + std::to_string(header.gso_type) + ") was not negotiated");

    queue.push_used(chain.head, 0);
    if (!(status_.load(std::memory_order_relaxed) & kStatusLinkUp)) return;
    ++statistics_.transmitted_frames;
    statistics_.transmitted_bytes += frame_bytes;
    // The back-end may answer at once, from inside send() (slirp replies to an
    // ARP request that way): the receive path runs nested here. It touches
    // only the receive queue, and a failure there stops this loop too.
    backend_->send(std::span<const uint8_t>(transmit_scratch_.data(), frame_bytes));
}

// ---------------------------------------------------------------------------
// Receive (sections 5.1.6.3, 5.1.6.4)

void NetDevice::on_frame_from_backend(std::span<const uint8_t> frame) {
    if (!running() || !receive_enabled_ || !(status_.load(std::memory_order_relaxed) & kStatusLinkUp) ||
        frame.size() > kMaxFrameBytes) {
        ++statistics_.receive_dropped;
        return;
    }
    if (backlog_.empty()) {
        const Delivery delivery = deliver(frame);
        if (delivery == Delivery::kDelivered) {
            signal_used(kReceiveQueue);
            return;
        }
        if (delivery == Delivery::kDropped) ++statistics_.receive_dropped;
        if (delivery != Delivery::kNoBuffers) return;
    }
    // Frames stay in order: behind the ones already waiting.
    if (backlog_.size() >= kMaxBacklogFrames) {
        ++statistics_.receive_dropped;
        return;
    }
    backlog_.emplace_back(frame.begin(), frame.end());
    flush_backlog();
}

void NetDevice::flush_backlog() {
    if (!running() || !receive_enabled_) return;
    Virtqueue& queue = queues_[kReceiveQueue];
    bool delivered_any = false;
    while (!backlog_.empty()) {
        const Delivery delivery = deliver(backlog_.front());
        if (delivery == Delivery::kDeviceFailed) return;
        if (delivery == Delivery::kNoBuffers) {
            // Make sure the driver's next buffer is notified (with EVENT_IDX
            // this moves avail_event, section 2.7.10), then look again in case
            // it arrived while we were deciding to wait.
            if (queue.enable_notifications()) continue;
            break;
        }
        if (delivery == Delivery::kDropped) ++statistics_.receive_dropped;
        else delivered_any = true;
        backlog_.pop_front();
    }
    if (delivered_any) signal_used(kReceiveQueue);
}

NetDevice::Delivery NetDevice::deliver(std::span<const uint8_t> frame) {
    Virtqueue& queue = queues_[kReceiveQueue];
    const uint64_t needed_bytes = kHeaderBytes + frame.size();

    // Gather enough chains first, so that a frame is either written whole or
    // not at all: with MRG_RXBUF one frame spans several chains and the driver
    // reads num_buffers of them in a row.
    size_t chain_count = 0;
    uint64_t capacity = 0;
    while (capacity < needed_bytes) {
        if (chain_count == reserved_rx_chains_.size()) {
            auto popped = queue.pop();
            if (!popped.error.empty()) {
                fail("receive queue: " + popped.error);
                return Delivery::kDeviceFailed;
            }
            if (!popped.chain) return Delivery::kNoBuffers;  // what we have stays reserved
            // Section 5.1.6.3.1: every receive buffer holds at least the header.
            const uint64_t writable = popped.chain->writable_bytes();
            if (writable < kHeaderBytes) {
                fail("receive buffer of " + std::to_string(writable) + " writable bytes cannot hold the " +
                     std::to_string(kHeaderBytes) + "-byte header");
                return Delivery::kDeviceFailed;
            }
            reserved_rx_chains_.push_back(std::move(*popped.chain));
        }
        capacity += reserved_rx_chains_[chain_count].writable_bytes();
        ++chain_count;
        if (!mergeable_rx_buffers_ && capacity < needed_bytes) {
            // Without MRG_RXBUF the whole frame goes in one chain
            // (section 5.1.6.3.1 asks the driver for buffers big enough).
            // Drop this frame; the chain stays for a smaller one.
            return Delivery::kDropped;
        }
    }

    VirtioNetHeader header;
    header.num_buffers = static_cast<uint16_t>(chain_count);  // 1 without MRG_RXBUF (section 5.1.6.4)
    std::vector<Virtqueue::UsedElement> used(chain_count);
    size_t frame_offset = 0;
    for (size_t i = 0; i < chain_count; ++i) {
        ChainWriter writer(*memory_, reserved_rx_chains_[i].writable);
        if (i == 0 && !writer.write_object(header)) {
            fail("receive buffer outside guest memory");
            return Delivery::kDeviceFailed;
        }
        const uint64_t piece = std::min<uint64_t>(writer.remaining(), frame.size() - frame_offset);
        if (!writer.write(frame.data() + frame_offset, piece)) {
            fail("receive buffer outside guest memory");
            return Delivery::kDeviceFailed;
        }
        frame_offset += piece;
        used[i] = {reserved_rx_chains_[i].head, static_cast<uint32_t>(writer.written())};
    }
    // One index update for all of them: num_buffers promises the driver every
    // chain is there when it looks.
    queue.push_used_batch(used);
    reserved_rx_chains_.erase(reserved_rx_chains_.begin(), reserved_rx_chains_.begin() + chain_count);

    ++statistics_.received_frames;
    statistics_.received_bytes += frame.size();
    return Delivery::kDelivered;
}

}  // namespace atl::vmm::virtio
