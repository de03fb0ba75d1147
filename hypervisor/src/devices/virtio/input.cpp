#include "devices/virtio/input.h"

#include <linux/input-event-codes.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace atl::vmm::virtio {

namespace {

// Section 5.8.5: struct virtio_input_config is 8 bytes of header, then a 128-byte union.
constexpr uint64_t kSelectOffset = 0;
constexpr uint64_t kSubselOffset = 1;
constexpr uint64_t kSizeOffset = 2;
constexpr uint64_t kUnionOffset = 8;
constexpr size_t kUnionBytes = 128;
constexpr uint64_t kConfigBytes = kUnionOffset + kUnionBytes;

constexpr uint16_t kBusVirtual = 0x06;  // BUS_VIRTUAL in <linux/input.h>
constexpr uint16_t kVendor = 0x1af4;    // the virtio PCI vendor
constexpr uint16_t kVersion = 1;

// Section 5.8.5: struct virtio_input_absinfo and struct virtio_input_devids.
struct AbsInfo {
    uint32_t min, max, fuzz, flat, res;
};
struct DevIds {
    uint16_t bustype, vendor, product, version;
};

const char* kind_name(InputDevice::Kind kind) {
    switch (kind) {
    case InputDevice::Kind::Keyboard: return "Keyboard";
    case InputDevice::Kind::Tablet: return "Tablet";
    case InputDevice::Kind::Mouse: return "Mouse";
    }
    return "Input";
}

}  // namespace

InputDevice::InputDevice(Kind kind, unsigned index) : kind_(kind) {
    name_ = std::string("Atoll Virtual ") + kind_name(kind);
    if (index > 0) name_ += " " + std::to_string(index + 1);
    serial_ = "atoll-" + std::string(kind_name(kind)) + "-" + std::to_string(index);
    std::transform(serial_.begin(), serial_.end(), serial_.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });

    auto enable = [&](uint16_t type, uint16_t code) {
        event_types_.bits.set(type);
        codes_[type].bits.set(code);
    };
    switch (kind) {
    case Kind::Keyboard:
        product_ = 1;
        // Every keyboard key of evdev: KEY_ESC to the end of the first block,
        // then KEY_OK up to the buttons that start at BTN_TRIGGER_HAPPY.
        for (uint16_t code = KEY_ESC; code < BTN_MISC; ++code) enable(EV_KEY, code);
        for (uint16_t code = KEY_OK; code < BTN_TRIGGER_HAPPY; ++code) enable(EV_KEY, code);
        // So the guest's LED state arrives on the statusq (and is ignored).
        enable(EV_LED, LED_NUML);
        enable(EV_LED, LED_CAPSL);
        enable(EV_LED, LED_SCROLLL);
        break;
    case Kind::Tablet:
        product_ = 2;
        enable(EV_ABS, ABS_X);
        enable(EV_ABS, ABS_Y);
        enable(EV_KEY, BTN_LEFT);
        enable(EV_KEY, BTN_RIGHT);
        enable(EV_KEY, BTN_MIDDLE);
        enable(EV_REL, REL_WHEEL);
        break;
    case Kind::Mouse:
        product_ = 3;
        enable(EV_REL, REL_X);
        enable(EV_REL, REL_Y);
        enable(EV_REL, REL_WHEEL);
        enable(EV_KEY, BTN_LEFT);
        enable(EV_KEY, BTN_RIGHT);
        enable(EV_KEY, BTN_MIDDLE);
        break;
    }
}

uint64_t InputDevice::offered_features() const {
    return kFeatureVersion1 | kFeatureRingIndirectDesc | kFeatureRingEventIdx;
}

bool InputDevice::supports(uint16_t type, uint16_t code) const {
    return type < std::size(codes_) && code < codes_[type].bits.size() && codes_[type].bits.test(code);
}

std::vector<uint8_t> InputDevice::selection() const {
    auto string_payload = [](const std::string& text) {
        return std::vector<uint8_t>(text.begin(), text.begin() + static_cast<ptrdiff_t>(std::min(text.size(), kUnionBytes)));
    };
    // Bytes up to the highest set bit; empty when no bit is set (section 5.8.5:
    // size 0 means "not supported").
    auto bitmap_payload = [](const Bitmap& bitmap) {
        std::vector<uint8_t> bytes;
        for (size_t bit = 0; bit < bitmap.bits.size(); ++bit) {
            if (!bitmap.bits.test(bit)) continue;
            if (bytes.size() <= bit / 8) bytes.resize(bit / 8 + 1, 0);
            bytes[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
        }
        return bytes;
    };
    switch (select_) {
    case kSelectIdName: return subsel_ == 0 ? string_payload(name_) : std::vector<uint8_t>{};
    case kSelectIdSerial: return subsel_ == 0 ? string_payload(serial_) : std::vector<uint8_t>{};
    case kSelectIdDevids: {
        if (subsel_ != 0) return {};
        const DevIds ids{kBusVirtual, kVendor, product_, kVersion};
        std::vector<uint8_t> bytes(sizeof ids);
        std::memcpy(bytes.data(), &ids, sizeof ids);
        return bytes;
    }
    case kSelectPropBits: return {};  // no INPUT_PROP_* properties
    case kSelectEvBits:
        // EV_SYN is implied; the driver asks per type.
        if (subsel_ == EV_SYN || subsel_ >= std::size(codes_)) return {};
        return bitmap_payload(codes_[subsel_]);
    case kSelectAbsInfo: {
        if (!supports(EV_ABS, subsel_)) return {};
        const AbsInfo info{0, static_cast<uint32_t>(kTabletMax), 0, 0, 0};
        std::vector<uint8_t> bytes(sizeof info);
        std::memcpy(bytes.data(), &info, sizeof info);
        return bytes;
    }
    default: return {};
    }
}

void InputDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    uint8_t image[kConfigBytes] = {};
    const auto payload = selection();
    image[kSelectOffset] = select_;
    image[kSubselOffset] = subsel_;
    image[kSizeOffset] = static_cast<uint8_t>(payload.size());
    std::copy(payload.begin(), payload.end(), image + kUnionOffset);
    read_config_window(std::span<const uint8_t>(image, kConfigBytes), offset, data);
}

void InputDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // Section 5.8.5.1: the driver writes select and subsel only.
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i == kSelectOffset) select_ = data[i];
        if (offset + i == kSubselOffset) subsel_ = data[i];
    }
}

Result<void> InputDevice::activate(ActivationContext context) {
    if (!context.memory) return make_error(name() + ": activated without guest memory");
    if (context.queues.size() < 2) return make_error(name() + ": the driver set up fewer than 2 queues");
    context_.emplace(std::move(context));
    stopped_ = false;
    return {};
}

void InputDevice::reset() {
    context_.reset();
    stopped_ = false;
    pending_.clear();
}

bool InputDevice::usable(uint16_t queue) const {
    if (!context_ || stopped_ || queue >= context_->queues.size()) return false;
    return queue >= context_->queue_enabled.size() || context_->queue_enabled[queue];
}

void InputDevice::stop(const std::string& error) {
    stopped_ = true;
    pending_.clear();
    if (context_->interrupt) context_->interrupt->report_device_error(name() + ": " + error);
}

void InputDevice::queue_notify(uint16_t queue) {
    if (queue == kEventQueue) deliver();  // the driver posted buffers
    if (queue == kStatusQueue) drain_status();
}

bool InputDevice::send(std::span<const InputEvent> events) {
    // Nobody listens before the driver is up: stale input must not arrive later.
    if (!usable(kEventQueue)) return false;
    size_t count = 1;  // SYN_REPORT
    for (const auto& event : events) count += supports(event.type, event.code) ? 1 : 0;
    if (count == 1) return true;  // nothing this device reports
    if (pending_.size() + count > kMaxPendingEvents) {
        ++dropped_reports_;
        return false;
    }
    for (const auto& event : events)
        if (supports(event.type, event.code)) pending_.push_back(event);
    pending_.push_back({EV_SYN, SYN_REPORT, 0});
    deliver();
    return true;
}

void InputDevice::deliver() {
    if (pending_.empty() || !usable(kEventQueue)) return;
    Virtqueue& queue = context_->queues[kEventQueue];
    bool pushed = false;
    while (!pending_.empty()) {
        auto popped = queue.pop();
        if (!popped.error.empty()) {
            stop(popped.error);
            return;
        }
        if (!popped.chain) {
            // No buffer: ask to be told when one arrives, and look once more
            // in case it just did (section 2.7.10).
            if (queue.enable_notifications()) continue;
            break;
        }
        // Section 5.8.6.1: one event per device-writable buffer of at least 8 bytes.
        ChainWriter writer(*context_->memory, popped.chain->writable);
        uint32_t written = 0;
        if (writer.remaining() >= sizeof(InputEvent)) {
            writer.write_object(pending_.front());
            pending_.pop_front();
            written = sizeof(InputEvent);
        }
        queue.push_used(popped.chain->head, written);
        pushed = true;
    }
    if (pushed && queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(kEventQueue);
}

void InputDevice::drain_status() {
    if (!usable(kStatusQueue)) return;
    Virtqueue& queue = context_->queues[kStatusQueue];
    auto error = queue.serve_available([&](DescriptorChain chain) {
        // LED and other status updates: nothing on the host side shows them.
        status_events_ += chain.readable_bytes() / sizeof(InputEvent);
        queue.push_used(chain.head, 0);
    });
    if (error) {
        stop(*error);
        return;
    }
    if (queue.needs_interrupt() && context_->interrupt) context_->interrupt->notify_queue(kStatusQueue);
}

}  // namespace atl::vmm::virtio
