// virtio-rng (virtio 1.2 section 5.4): fills the driver's buffers from the
// host kernel's random number generator (getrandom(2)).
#pragma once

#include "devices/virtio/device.h"

#include <cstdint>
#include <optional>
#include <string>

namespace atl::vmm::virtio {

class EntropyDevice : public Device {
public:
    // At most this much per request, so a huge buffer cannot hold the I/O thread
    // (section 5.4.6.1 lets the device fill less than the whole buffer).
    static constexpr uint64_t kMaxBytesPerRequest = 64 << 10;

    DeviceType type() const override { return kDeviceEntropy; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 1; }
    // Section 5.4.4: no configuration space.
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    void reset() override;
    std::string name() const override { return "virtio-rng"; }

    uint64_t bytes_provided() const { return bytes_provided_; }

private:
    void process_queue();
    // Fills the chain's writable buffers; returns how many bytes were written.
    uint32_t fill(const DescriptorChain& chain);

    std::optional<ActivationContext> context_;
    bool stopped_ = false;
    uint64_t bytes_provided_ = 0;
};

}  // namespace atl::vmm::virtio
