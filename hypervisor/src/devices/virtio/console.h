// virtio-console (virtio 1.2 section 5.3) with a single port and no control
// queues (VIRTIO_CONSOLE_F_MULTIPORT is not offered): receiveq 0 carries host
// input to the guest, transmitq 1 guest output to a CharBackend.
#pragma once

#include "devices/char_backend.h"
#include "devices/virtio/device.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::vmm::virtio {

class ConsoleDevice : public Device {
public:
    // Section 5.3.3.
    static constexpr uint64_t kFeatureEmergencyWrite = 1ull << 2;
    static constexpr uint16_t kReceiveQueue = 0;
    static constexpr uint16_t kTransmitQueue = 1;
    // Input that arrives while the guest has no receive buffers posted waits
    // here; beyond this it is dropped (a console must not grow without bound).
    static constexpr size_t kMaxPendingInputBytes = 64 << 10;

    // Takes over the backend's input handler for the device's lifetime.
    explicit ConsoleDevice(std::shared_ptr<CharBackend> backend);
    ~ConsoleDevice() override;
    ConsoleDevice(const ConsoleDevice&) = delete;
    ConsoleDevice& operator=(const ConsoleDevice&) = delete;

    DeviceType type() const override { return kDeviceConsole; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 2; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    // Section 5.3.5: emerg_wr works at any time, even before the driver is ready.
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    // Queue state goes; input typed meanwhile stays for the next driver.
    void reset() override;
    std::string name() const override { return "virtio-console"; }

    size_t pending_input_bytes() const { return pending_input_.size(); }
    uint64_t dropped_input_bytes() const { return dropped_input_bytes_; }

private:
    void receive_from_host(std::span<const uint8_t> bytes);
    void deliver_pending_input();
    void transmit_to_host();
    bool usable(uint16_t queue) const;
    void stop(const std::string& error);

    std::shared_ptr<CharBackend> backend_;
    std::optional<ActivationContext> context_;
    bool stopped_ = false;
    std::vector<uint8_t> pending_input_;
    uint64_t dropped_input_bytes_ = 0;
};

}  // namespace atl::vmm::virtio
