// The interface between a virtio transport (virtio-pci) and a device model.
// Device models run on the VMM's I/O thread; the transport serializes calls.
#pragma once

#include "devices/virtio/virtqueue.h"
#include "memory/guest_memory.h"

#include <atoll/result.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace atl::vmm {
class EventLoop;
}

namespace atl::vmm::virtio {

// Feature bits common to all devices (virtio 1.2 section 6).
constexpr uint64_t kFeatureRingIndirectDesc = 1ull << 28;
constexpr uint64_t kFeatureRingEventIdx = 1ull << 29;
constexpr uint64_t kFeatureVersion1 = 1ull << 32;
constexpr uint64_t kFeatureAccessPlatform = 1ull << 33;

// Device IDs (virtio 1.2 section 5).
enum DeviceType : uint16_t {
    kDeviceNet = 1,
    kDeviceBlock = 2,
    kDeviceConsole = 3,
    kDeviceEntropy = 4,
    kDeviceGpu = 16,
    kDeviceInput = 18,
    kDeviceSound = 25,
};

// Copies the part of a device's configuration space that [offset, offset +
// data.size()) covers into `data`; bytes beyond the space read as zero.
inline void read_config_window(std::span<const uint8_t> space, uint64_t offset, std::span<uint8_t> data) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = (offset < space.size() && i < space.size() - offset) ? space[offset + i] : 0;
}
template <class Config>
void read_config_window(const Config& config, uint64_t offset, std::span<uint8_t> data) {
    read_config_window(std::span(reinterpret_cast<const uint8_t*>(&config), sizeof config), offset, data);
}

class Interrupt {
public:
    virtual ~Interrupt() = default;
    // The device put buffers in the used ring of `queue`.
    virtual void notify_queue(uint16_t queue) = 0;
    virtual void notify_config_change() = 0;
    // The driver broke the protocol: the transport sets DEVICE_NEEDS_RESET and
    // tells the driver; the device stops processing until it is reset.
    virtual void report_device_error(const std::string& why) = 0;
};

struct ActivationContext {
    std::shared_ptr<GuestMemory> memory;
    std::vector<Virtqueue> queues;  // one per queue, in order; a queue the driver left disabled has size 0
    std::vector<bool> queue_enabled;
    Interrupt* interrupt = nullptr;
    EventLoop* event_loop = nullptr;
    uint64_t acked_features = 0;
};

class Device {
public:
    virtual ~Device() = default;

    virtual DeviceType type() const = 0;
    // Device-specific and transport feature bits the device offers (VERSION_1 included).
    virtual uint64_t offered_features() const = 0;
    virtual uint16_t queue_count() const = 0;
    virtual uint16_t max_queue_size() const { return 256; }

    // Device configuration space (section 4.1.4.6). Out-of-range reads return zeros.
    virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
    virtual void write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}

    // The driver set DRIVER_OK. An error here means the device cannot run (the
    // transport sets NEEDS_RESET).
    virtual Result<void> activate(ActivationContext context) = 0;
    // The driver notified `queue` (after activate).
    virtual void queue_notify(uint16_t queue) = 0;
    // The driver wrote 0 to device_status: drop all queue state and back-end requests.
    virtual void reset() = 0;

    // A short name for logs ("virtio-blk disk0").
    virtual std::string name() const = 0;
};

}  // namespace atl::vmm::virtio
