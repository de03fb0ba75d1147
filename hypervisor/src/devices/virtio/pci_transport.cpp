#include "devices/virtio/pci_transport.h"

#include "vmm/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

namespace atl::vmm::virtio {
namespace {

// Device status bits (section 2.1).
constexpr uint8_t kStatusAcknowledge = 1;
constexpr uint8_t kStatusDriverOk = 4;
constexpr uint8_t kStatusFeaturesOk = 8;
constexpr uint8_t kStatusNeedsReset = 0x40;
constexpr uint8_t kStatusFailed = 0x80;

constexpr uint16_t kNoVector = 0xffff;

// virtio_pci_cap cfg_type values (section 4.1.4).
enum CapabilityType : uint8_t {
    kCapCommon = 1,
    kCapNotify = 2,
    kCapIsr = 3,
    kCapDevice = 4,
    kCapPciConfig = 5,
};

// Offsets in struct virtio_pci_common_cfg (section 4.1.4.3).
enum CommonOffset : uint64_t {
    kDeviceFeatureSelect = 0x00,
    kDeviceFeature = 0x04,
    kDriverFeatureSelect = 0x08,
    kDriverFeature = 0x0c,
    kConfigMsixVector = 0x10,
    kNumQueues = 0x12,
    kDeviceStatus = 0x14,
    kConfigGeneration = 0x15,
    kQueueSelect = 0x16,
    kQueueSize = 0x18,
    kQueueMsixVector = 0x1a,
    kQueueEnable = 0x1c,
    kQueueNotifyOff = 0x1e,
    kQueueDesc = 0x20,
    kQueueDriver = 0x28,
    kQueueDevice = 0x30,
    kCommonSize = 0x3c,
};

std::vector<uint8_t> virtio_capability(CapabilityType type, uint32_t offset, uint32_t length, size_t extra = 0) {
    std::vector<uint8_t> body(16 + extra, 0);
    body[0] = 0x09;  // vendor-specific capability
    body[2] = static_cast<uint8_t>(body.size());
    body[3] = type;
    body[4] = 0;  // BAR 0
    std::memcpy(&body[8], &offset, 4);
    std::memcpy(&body[12], &length, 4);
    return body;
}

uint32_t pci_class_for(DeviceType type) {
    switch (type) {
    case kDeviceNet: return 0x020000;      // Ethernet controller
    case kDeviceBlock: return 0x018000;    // other mass storage
    case kDeviceConsole: return 0x078000;  // other communication controller
    case kDeviceGpu: return 0x038000;      // other display controller
    case kDeviceInput: return 0x090000;    // keyboard / input
    case kDeviceSound: return 0x040100;    // audio
    default: return 0xff0000;
    }
}

class BarHandler final : public BusDevice {
public:
    explicit BarHandler(std::shared_ptr<PciTransport> transport) : transport_(std::move(transport)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { transport_->read_bar(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override { transport_->write_bar(offset, data); }

private:
    std::shared_ptr<PciTransport> transport_;
};

}  // namespace

PciTransport::PciTransport(std::unique_ptr<Device> device, hv::Vm& vm, EventLoop& loop,
                           std::shared_ptr<GuestMemory> memory)
    : device_(std::move(device)),
      vm_(vm),
      loop_(loop),
      memory_(std::move(memory)),
      // Modern virtio PCI IDs: 0x1040 + device type, revision 1 (section 4.1.2.1).
      config_(0x1af4, static_cast<uint16_t>(0x1040 + device_->type()), pci_class_for(device_->type()), 1, 0x1af4,
              0x1100),
      msix_(vm, static_cast<uint16_t>(device_->queue_count() + 1)) {}

PciTransport::~PciTransport() {
    if (notifier_bar_address_) detach_notifiers(notifier_bar_address_);
    for (auto& queue : queues_) {
        if (queue->notify_eventfd < 0) continue;
        loop_.unwatch(queue->notify_eventfd);
        close(queue->notify_eventfd);
    }
}

Result<std::shared_ptr<PciTransport>> PciTransport::create(std::unique_ptr<Device> device, hv::Vm& vm,
                                                          EventLoop& loop, std::shared_ptr<GuestMemory> memory) {
    if (device->queue_count() == 0 || device->queue_count() > 64)
        return make_error(device->name() + ": unsupported queue count");
    std::shared_ptr<PciTransport> transport(new PciTransport(std::move(device), vm, loop, std::move(memory)));
    ATOLL_TRY(transport->initialize());
    return transport;
}

Result<void> PciTransport::initialize() {
    config_.add_bar(0, {kBarSize, true, false});
    config_.add_capability(virtio_capability(kCapCommon, kCommonOffset, kCommonSize));
    config_.add_capability(virtio_capability(kCapIsr, kIsrOffset, 4));
    config_.add_capability(virtio_capability(kCapDevice, kDeviceConfigOffset, 0x1000));
    auto notify = virtio_capability(kCapNotify, kNotifyOffset, kNotifyMultiplier * device_->queue_count(), 4);
    std::memcpy(&notify[16], &kNotifyMultiplier, 4);
    config_.add_capability(notify);
    // VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through config space (section 4.1.4.9).
    auto window = virtio_capability(kCapPciConfig, 0, 0, 4);
    std::vector<uint8_t> window_mask(window.size(), 0);
    window_mask[4] = 0xff;
    for (int i = 8; i < 20; ++i) window_mask[i] = 0xff;
    pci_cfg_capability_offset_ = config_.add_capability(window, window_mask);
    auto msix_cap = pci::MsixTable::capability(msix_.vector_count(), 0, kMsixTableOffset, kMsixPendingOffset);
    std::vector<uint8_t> msix_mask(msix_cap.size(), 0);
    msix_mask[3] = 0xc0;  // enable and function mask
    msix_capability_offset_ = config_.add_capability(msix_cap, msix_mask);
    ATOLL_TRY(msix_.initialize());

    for (uint16_t index = 0; index < device_->queue_count(); ++index) {
        auto queue = std::make_unique<QueueState>();
        queue->max_size = device_->max_queue_size();
        queue->size = queue->max_size;
        queue->notify_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (queue->notify_eventfd < 0) return make_error("eventfd: " + std::string(strerror(errno)));
        const int fd = queue->notify_eventfd;
        std::weak_ptr<PciTransport> weak = weak_from_this();
        ATOLL_TRY(loop_.watch(fd, EPOLLIN, [weak, fd, index](uint32_t) {
            uint64_t count;
            if (read(fd, &count, sizeof count) != sizeof count) return;
            if (auto self = weak.lock()) self->on_queue_notified(index);
        }));
        queues_.push_back(std::move(queue));
    }
    return {};
}

uint32_t PciTransport::read_config(uint16_t offset) {
    const uint16_t data_offset = pci_cfg_capability_offset_ + 16;
    if ((offset & ~3) == data_offset) {
        const uint8_t* cap = config_.raw() + pci_cfg_capability_offset_;
        uint32_t bar_offset, length;
        std::memcpy(&bar_offset, cap + 8, 4);
        std::memcpy(&length, cap + 12, 4);
        uint32_t value = 0;
        if (cap[4] == 0 && (length == 1 || length == 2 || length == 4) && bar_offset < kBarSize &&
            length <= kBarSize - bar_offset) {
            read_bar(bar_offset, std::span(reinterpret_cast<uint8_t*>(&value), length));
        }
        return value;
    }
    return config_.read_dword(offset);
}

void PciTransport::write_config(uint16_t offset, std::span<const uint8_t> data) {
    const uint16_t data_offset = pci_cfg_capability_offset_ + 16;
    if (offset >= data_offset && offset < data_offset + 4) {
        const uint8_t* cap = config_.raw() + pci_cfg_capability_offset_;
        uint32_t bar_offset, length;
        std::memcpy(&bar_offset, cap + 8, 4);
        std::memcpy(&length, cap + 12, 4);
        if (cap[4] == 0 && length == data.size() && bar_offset < kBarSize && length <= kBarSize - bar_offset)
            write_bar(bar_offset, data);
        return;
    }
    config_.write(offset, data);
    const uint16_t control_offset = msix_capability_offset_ + 2;
    if (offset <= control_offset + 1 && offset + data.size() > control_offset) {
        const uint8_t high = config_.raw()[control_offset + 1];
        msix_.set_control(high & 0x80, high & 0x40);
    }
}

std::shared_ptr<BusDevice> PciTransport::bar_handler(unsigned index) {
    if (index != 0) return nullptr;
    return std::make_shared<BarHandler>(shared_from_this());
}

void PciTransport::bar_moved(unsigned index, uint64_t, uint64_t new_address) {
    if (index != 0) return;
    if (notifier_bar_address_) detach_notifiers(notifier_bar_address_);
    attach_notifiers(new_address);
}

void PciTransport::attach_notifiers(uint64_t bar_address) {
    for (size_t index = 0; index < queues_.size(); ++index) {
        auto attached = vm_.attach_ioeventfd(queues_[index]->notify_eventfd, hv::IoSpace::Memory,
                                             bar_address + kNotifyOffset + index * kNotifyMultiplier, 2);
        // Without an ioeventfd the notification still arrives, as an MMIO exit.
        if (!attached) std::cerr << "atoll-vmm: " << name() << ": " << attached.error().message << "\n";
    }
    notifier_bar_address_ = bar_address;
}

void PciTransport::detach_notifiers(uint64_t bar_address) {
    for (size_t index = 0; index < queues_.size(); ++index) {
        (void)vm_.detach_ioeventfd(queues_[index]->notify_eventfd, hv::IoSpace::Memory,
                                   bar_address + kNotifyOffset + index * kNotifyMultiplier, 2);
    }
    notifier_bar_address_ = 0;
}

void PciTransport::read_bar(uint64_t offset, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());
    if (offset < kIsrOffset) {
        read_common(offset - kCommonOffset, data);
    } else if (offset < kDeviceConfigOffset) {
        // Reading the ISR acknowledges it (section 4.1.4.5).
        if (offset == kIsrOffset) data[0] = isr_.exchange(0);
    } else if (offset < kNotifyOffset) {
        loop_.invoke([&] { device_->read_config(offset - kDeviceConfigOffset, data); });
    } else if (offset < kMsixTableOffset) {
        // Notification registers read as zero.
    } else if (offset < kMsixPendingOffset) {
        msix_.read_table(offset - kMsixTableOffset, data);
    } else if (offset < kBarSize) {
        msix_.read_pending(offset - kMsixPendingOffset, data);
    }
}

void PciTransport::write_bar(uint64_t offset, std::span<const uint8_t> data) {
    if (offset < kIsrOffset) {
        write_common(offset - kCommonOffset, data);
    } else if (offset < kDeviceConfigOffset) {
        // The ISR is read-only.
    } else if (offset < kNotifyOffset) {
        loop_.invoke([&] { device_->write_config(offset - kDeviceConfigOffset, data); });
    } else if (offset < kMsixTableOffset) {
        // Reached only when no ioeventfd matched (other access width, or none attached).
        const uint64_t queue = (offset - kNotifyOffset) / kNotifyMultiplier;
        if (queue < queues_.size()) {
            std::weak_ptr<PciTransport> weak = weak_from_this();
            loop_.post([weak, queue] {
                if (auto self = weak.lock()) self->on_queue_notified(static_cast<uint16_t>(queue));
            });
        }
    } else if (offset < kMsixPendingOffset) {
        msix_.write_table(offset - kMsixTableOffset, data);
    }
}

void PciTransport::read_common(uint64_t offset, std::span<uint8_t> data) {
    if (offset >= kCommonSize || data.size() > kCommonSize - offset) return;
    std::lock_guard lock(mutex_);
    uint8_t image[kCommonSize] = {};
    auto put16 = [&](uint64_t at, uint16_t value) { std::memcpy(image + at, &value, 2); };
    auto put32 = [&](uint64_t at, uint32_t value) { std::memcpy(image + at, &value, 4); };
    auto put64 = [&](uint64_t at, uint64_t value) { std::memcpy(image + at, &value, 8); };
    put32(kDeviceFeatureSelect, device_feature_select_);
    const uint64_t offered = device_->offered_features() | kFeatureVersion1;
    put32(kDeviceFeature, device_feature_select_ < 2 ? static_cast<uint32_t>(offered >> (32 * device_feature_select_)) : 0);
    put32(kDriverFeatureSelect, driver_feature_select_);
    put32(kDriverFeature,
          driver_feature_select_ < 2 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_)) : 0);
    put16(kConfigMsixVector, config_msix_vector_.load());
    put16(kNumQueues, static_cast<uint16_t>(queues_.size()));
    image[kDeviceStatus] = status_.load();
    image[kConfigGeneration] = config_generation_.load();
    put16(kQueueSelect, queue_select_);
    if (queue_select_ < queues_.size()) {
        const auto& queue = *queues_[queue_select_];
        put16(kQueueSize, queue.size);
        put16(kQueueMsixVector, queue.msix_vector.load());
        put16(kQueueEnable, queue.enabled ? 1 : 0);
        put16(kQueueNotifyOff, queue_select_);
        put64(kQueueDesc, queue.descriptor_table);
        put64(kQueueDriver, queue.available_ring);
        put64(kQueueDevice, queue.used_ring);
    }
    std::memcpy(data.data(), image + offset, data.size());
}

void PciTransport::write_common(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= kCommonSize || data.size() > kCommonSize - offset) return;
    std::unique_lock lock(mutex_);
    // Writes may cover part of a field (64-bit addresses arrive as two 32-bit
    // halves): merge the bytes into the current field value.
    auto overlaps = [&](uint64_t field, uint64_t width) { return offset < field + width && field < offset + data.size(); };
    auto merge = [&](uint64_t field, uint64_t width, uint64_t current) {
        uint8_t bytes[8];
        std::memcpy(bytes, &current, 8);
        for (uint64_t i = 0; i < width; ++i) {
            const uint64_t at = field + i;
            if (at >= offset && at < offset + data.size()) bytes[i] = data[at - offset];
        }
        uint64_t value;
        std::memcpy(&value, bytes, 8);
        return value;
    };
    const uint8_t status = status_.load();
    const bool features_locked = status & kStatusFeaturesOk;
    const bool queues_locked = status & kStatusDriverOk;

    if (overlaps(kDeviceFeatureSelect, 4)) device_feature_select_ = static_cast<uint32_t>(merge(kDeviceFeatureSelect, 4, device_feature_select_));
    if (overlaps(kDriverFeatureSelect, 4)) driver_feature_select_ = static_cast<uint32_t>(merge(kDriverFeatureSelect, 4, driver_feature_select_));
    if (overlaps(kDriverFeature, 4) && !features_locked && driver_feature_select_ < 2) {
        const unsigned shift = 32 * driver_feature_select_;
        const uint64_t current = (driver_features_ >> shift) & 0xffffffffull;
        const uint64_t value = merge(kDriverFeature, 4, current) & 0xffffffffull;
        driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (value << shift);
    }
    if (overlaps(kConfigMsixVector, 2)) {
        const auto vector = static_cast<uint16_t>(merge(kConfigMsixVector, 2, config_msix_vector_.load()));
        config_msix_vector_ = vector < msix_.vector_count() ? vector : kNoVector;
    }
    if (overlaps(kQueueSelect, 2)) queue_select_ = static_cast<uint16_t>(merge(kQueueSelect, 2, queue_select_));
    if (queue_select_ < queues_.size() && !queues_locked) {
        auto& queue = *queues_[queue_select_];
        if (overlaps(kQueueSize, 2)) {
            const auto size = static_cast<uint16_t>(merge(kQueueSize, 2, queue.size));
            // Only powers of two up to the maximum are valid for split rings.
            if (size != 0 && size <= queue.max_size && (size & (size - 1)) == 0) queue.size = size;
        }
        if (overlaps(kQueueEnable, 2)) queue.enabled = merge(kQueueEnable, 2, queue.enabled) & 1;
        if (overlaps(kQueueDesc, 8)) queue.descriptor_table = merge(kQueueDesc, 8, queue.descriptor_table);
        if (overlaps(kQueueDriver, 8)) queue.available_ring = merge(kQueueDriver, 8, queue.available_ring);
        if (overlaps(kQueueDevice, 8)) queue.used_ring = merge(kQueueDevice, 8, queue.used_ring);
    }
    if (queue_select_ < queues_.size() && overlaps(kQueueMsixVector, 2)) {
        auto& queue = *queues_[queue_select_];
        const auto vector = static_cast<uint16_t>(merge(kQueueMsixVector, 2, queue.msix_vector.load()));
        queue.msix_vector = vector < msix_.vector_count() ? vector : kNoVector;
    }
    if (overlaps(kDeviceStatus, 1)) set_status(data[kDeviceStatus - offset]);
}

void PciTransport::set_status(uint8_t status) {
    if (status == 0) {
        reset_locked();
        return;
    }
    const uint8_t previous = status_.load();
    if ((status & kStatusFeaturesOk) && !(previous & kStatusFeaturesOk)) {
        const uint64_t offered = device_->offered_features() | kFeatureVersion1;
        // A legacy driver or one that accepts what was not offered cannot proceed (section 3.1.1).
        if ((driver_features_ & ~offered) || !(driver_features_ & kFeatureVersion1)) status &= ~kStatusFeaturesOk;
    }
    status_ = static_cast<uint8_t>(status | (previous & kStatusNeedsReset));
    if ((status & kStatusDriverOk) && !(previous & kStatusDriverOk) && !(status & kStatusFailed)) activate_locked();
}

void PciTransport::reset_locked() {
    if (active_.exchange(false) || status_.load() != 0) loop_.invoke([&] { device_->reset(); });
    status_ = 0;
    isr_ = 0;
    driver_features_ = 0;
    device_feature_select_ = 0;
    driver_feature_select_ = 0;
    queue_select_ = 0;
    config_msix_vector_ = kNoVector;
    for (auto& queue : queues_) {
        queue->size = queue->max_size;
        queue->msix_vector = kNoVector;
        queue->enabled = false;
        queue->descriptor_table = queue->available_ring = queue->used_ring = 0;
    }
}

void PciTransport::activate_locked() {
    ActivationContext context;
    context.memory = memory_;
    context.interrupt = this;
    context.event_loop = &loop_;
    context.acked_features = driver_features_;
    const bool event_index = driver_features_ & kFeatureRingEventIdx;
    for (size_t index = 0; index < queues_.size(); ++index) {
        const auto& queue = *queues_[index];
        QueueLayout layout{queue.enabled ? queue.size : uint16_t{0}, GuestAddress{queue.descriptor_table},
                           GuestAddress{queue.available_ring}, GuestAddress{queue.used_ring}};
        if (queue.enabled && !Virtqueue::layout_valid(*memory_, layout)) {
            report_device_error("queue " + std::to_string(index) + " lies outside guest RAM or is misaligned");
            return;
        }
        context.queues.emplace_back(*memory_, layout, event_index);
        context.queue_enabled.push_back(queue.enabled);
    }
    Result<void> activated;
    loop_.invoke([&] { activated = device_->activate(std::move(context)); });
    if (!activated) {
        report_device_error(activated.error().message);
        return;
    }
    active_ = true;
    // Buffers the driver queued before DRIVER_OK (allowed for some devices) get seen now.
    std::weak_ptr<PciTransport> weak = weak_from_this();
    const size_t count = queues_.size();
    loop_.post([weak, count] {
        if (auto self = weak.lock())
            for (size_t index = 0; index < count; ++index) self->on_queue_notified(static_cast<uint16_t>(index));
    });
}

void PciTransport::on_queue_notified(uint16_t queue) {
    if (!active_.load() || (status_.load() & kStatusNeedsReset)) return;
    device_->queue_notify(queue);
}

void PciTransport::notify_queue(uint16_t queue) {
    if (queue >= queues_.size()) return;
    isr_.fetch_or(1);
    const uint16_t vector = queues_[queue]->msix_vector.load();
    if (vector != kNoVector) msix_.signal(vector);
}

void PciTransport::notify_config_change() {
    config_generation_.fetch_add(1);
    isr_.fetch_or(2);
    const uint16_t vector = config_msix_vector_.load();
    if (vector != kNoVector) msix_.signal(vector);
}

void PciTransport::report_device_error(const std::string& why) {
    if (status_.fetch_or(kStatusNeedsReset) & kStatusNeedsReset) return;
    std::cerr << "atoll-vmm: " << name() << ": guest driver error, device needs reset: " << why << "\n";
    active_ = false;
    notify_config_change();
}

}  // namespace atl::vmm::virtio
