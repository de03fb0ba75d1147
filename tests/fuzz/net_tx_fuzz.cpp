// libFuzzer target: virtio-net fed by a hostile driver. The input becomes
// the guest's memory (both rings, their descriptors and every buffer), so the
// fuzzer controls chains, indirect tables, ring indices and headers; the
// device transmits to a back-end that drops everything and receives a few
// frames into whatever receive buffers the input describes.
//
// Input: [options][rx frame count][rx frame size lo][hi] then the memory image.
#include "devices/net_backend.h"
#include "devices/virtio/net.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace atl::vmm;
using namespace atl::vmm::virtio;

constexpr uint64_t kMemoryBytes = 64 * 1024;
constexpr uint16_t kQueueSize = 16;
// Fixed, packed ring addresses (transmit first: short inputs reach it);
// everything after them, up to the end of memory, is buffer space.
constexpr QueueLayout kTransmitLayout{kQueueSize, GuestAddress{0x000}, GuestAddress{0x100}, GuestAddress{0x128}};
constexpr QueueLayout kReceiveLayout{kQueueSize, GuestAddress{0x1b0}, GuestAddress{0x2b0}, GuestAddress{0x2d8}};

// Drops what the guest sends; lets the fuzzer deliver frames to the guest.
class InjectingBackend final : public NetBackend {
public:
    void send(std::span<const uint8_t> frame) override {
        // Touch every byte so the sanitizers see the whole frame.
        volatile uint8_t sink = 0;
        for (uint8_t byte : frame) sink = sink ^ byte;
    }
    void set_receive_handler(ReceiveHandler handler) override { handler_ = std::move(handler); }
    std::string description() const override { return "fuzz"; }
    void inject(std::span<const uint8_t> frame) {
        if (handler_) handler_(frame);
    }

private:
    ReceiveHandler handler_;
};

class QuietInterrupt final : public Interrupt {
public:
    void notify_queue(uint16_t) override {}
    void notify_config_change() override {}
    void report_device_error(const std::string&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    const uint8_t options = data[0];
    const unsigned receive_frames = data[1] % 8;
    const size_t receive_frame_bytes = (data[2] | static_cast<size_t>(data[3]) << 8) % (NetDevice::kMaxFrameBytes + 2);
    data += 4;
    size -= 4;

    auto memory = GuestMemory::create_flat(kMemoryBytes);
    std::memcpy(memory->base(), data, std::min<size_t>(size, kMemoryBytes));

    auto backend = std::make_shared<InjectingBackend>();
    QuietInterrupt interrupt;
    NetDeviceConfig config;
    config.mac = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    NetDevice device(config, backend);

    uint64_t features = kFeatureVersion1 | kNetFeatureMac | kNetFeatureStatus;
    if (options & 1) features |= kNetFeatureMergeableRxBuffers;
    if (options & 2) features |= kFeatureRingEventIdx;
    const bool event_index = features & kFeatureRingEventIdx;

    ActivationContext context;
    context.memory = memory;
    context.interrupt = &interrupt;
    context.acked_features = features;
    context.queues.emplace_back(*memory, kReceiveLayout, event_index);
    context.queues.emplace_back(*memory, kTransmitLayout, event_index);
    context.queue_enabled = {true, true};
    if (!device.activate(std::move(context)).ok()) return 0;

    device.queue_notify(NetDevice::kTransmitQueue);

    std::vector<uint8_t> frame(receive_frame_bytes);
    for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>(i);
    for (unsigned i = 0; i < receive_frames; ++i) backend->inject(frame);
    device.queue_notify(NetDevice::kReceiveQueue);
    if (options & 4) device.set_link_up(false);
    device.queue_notify(NetDevice::kTransmitQueue);
    backend->inject(frame);

    if (options & 8) {
        device.reset();
        device.queue_notify(NetDevice::kTransmitQueue);
        backend->inject(frame);
    }
    return 0;
}
