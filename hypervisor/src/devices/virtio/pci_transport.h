// The virtio 1.x PCI transport (virtio 1.2, section 4.1): presents a device
// model as a PCI function with the modern capabilities in one memory BAR,
// queue notifications through ioeventfds and interrupts through MSI-X irqfds.
#pragma once

#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/virtio/device.h"
#include "hv/hypervisor.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace atl::vmm {
class EventLoop;
}

namespace atl::vmm::virtio {

class PciTransport final : public pci::PciDevice, public Interrupt, public std::enable_shared_from_this<PciTransport> {
public:
    static Result<std::shared_ptr<PciTransport>> create(std::unique_ptr<Device> device, hv::Vm& vm,
                                                        EventLoop& loop, std::shared_ptr<GuestMemory> memory);
    ~PciTransport() override;

    // pci::PciDevice
    pci::ConfigSpace& config() override { return config_; }
    void write_config(uint16_t offset, std::span<const uint8_t> data) override;
    uint32_t read_config(uint16_t offset) override;
    std::shared_ptr<BusDevice> bar_handler(unsigned index) override;
    void bar_moved(unsigned index, uint64_t old_address, uint64_t new_address) override;
    std::string name() const override { return device_->name(); }

    // Interrupt (called by the device on the I/O thread)
    void notify_queue(uint16_t queue) override;
    void notify_config_change() override;
    void report_device_error(const std::string& why) override;

    // BAR 0 accesses (vCPU threads).
    void read_bar(uint64_t offset, std::span<uint8_t> data);
    void write_bar(uint64_t offset, std::span<const uint8_t> data);

    Device& device() { return *device_; }
    uint8_t device_status() const { return status_.load(); }

    // BAR 0 layout; exposed for tests.
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceConfigOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyMultiplier = 4;
    static constexpr uint64_t kMsixTableOffset = 0x4000;
    static constexpr uint64_t kMsixPendingOffset = 0x6000;
    static constexpr uint64_t kBarSize = 0x8000;

private:
    PciTransport(std::unique_ptr<Device> device, hv::Vm& vm, EventLoop& loop, std::shared_ptr<GuestMemory> memory);
    Result<void> initialize();

    struct QueueState {
        uint16_t size = 0;
        uint16_t max_size = 0;
        std::atomic<uint16_t> msix_vector{0xffff};
        bool enabled = false;
        uint64_t descriptor_table = 0, available_ring = 0, used_ring = 0;
        int notify_eventfd = -1;
    };

    void read_common(uint64_t offset, std::span<uint8_t> data);
    void write_common(uint64_t offset, std::span<const uint8_t> data);
    void set_status(uint8_t status);
    void reset_locked();
    void activate_locked();
    void on_queue_notified(uint16_t queue);
    void attach_notifiers(uint64_t bar_address);
    void detach_notifiers(uint64_t bar_address);

    std::unique_ptr<Device> device_;
    hv::Vm& vm_;
    EventLoop& loop_;
    std::shared_ptr<GuestMemory> memory_;
    pci::ConfigSpace config_;
    pci::MsixTable msix_;
    uint16_t msix_capability_offset_ = 0;
    uint16_t pci_cfg_capability_offset_ = 0;

    std::mutex mutex_;  // the registers below, from vCPU threads
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t queue_select_ = 0;
    std::atomic<uint16_t> config_msix_vector_{0xffff};
    std::atomic<uint8_t> status_{0};
    std::atomic<uint8_t> isr_{0};
    std::atomic<bool> active_{false};
    std::atomic<uint8_t> config_generation_{0};
    std::vector<std::unique_ptr<QueueState>> queues_;
    uint64_t notifier_bar_address_ = 0;
};

}  // namespace atl::vmm::virtio
