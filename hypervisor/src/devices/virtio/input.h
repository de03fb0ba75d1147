// virtio-input (virtio 1.2 section 5.8): one evdev-like device per instance, a
// keyboard, an absolute tablet (the pointer needs no grab) or a relative mouse.
// eventq 0 carries host events to the guest, statusq 1 the guest's LED updates
// (read and ignored).
#pragma once

#include "devices/virtio/device.h"

#include <bitset>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>

namespace atl::vmm::virtio {

// Section 5.8.6: struct virtio_input_event, with evdev's type/code/value.
struct InputEvent {
    uint16_t type = 0;
    uint16_t code = 0;
    int32_t value = 0;
};
static_assert(sizeof(InputEvent) == 8);

class InputDevice : public Device {
public:
    enum class Kind { Keyboard, Tablet, Mouse };

    static constexpr uint16_t kEventQueue = 0;
    static constexpr uint16_t kStatusQueue = 1;
    // Range of the tablet's ABS_X and ABS_Y (display-protocol.md's pointer).
    static constexpr int32_t kTabletMax = 32767;
    // Events waiting for the guest's buffers; a report that does not fit is
    // dropped whole (section 5.8.6.2: no partial updates).
    static constexpr size_t kMaxPendingEvents = 1024;
    // Section 5.8.5: the configuration selectors.
    enum : uint8_t {
        kSelectUnset = 0x00,
        kSelectIdName = 0x01,
        kSelectIdSerial = 0x02,
        kSelectIdDevids = 0x03,
        kSelectPropBits = 0x10,
        kSelectEvBits = 0x11,
        kSelectAbsInfo = 0x12,
    };

    // `index` tells instances of one kind apart in names and serials.
    explicit InputDevice(Kind kind, unsigned index = 0);

    DeviceType type() const override { return kDeviceInput; }
    uint64_t offered_features() const override;
    uint16_t queue_count() const override { return 2; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(ActivationContext context) override;
    void queue_notify(uint16_t queue) override;
    // Queue state and undelivered events go.
    void reset() override;
    std::string name() const override { return name_; }

    Kind kind() const { return kind_; }
    // True when the device reports event `type` with `code` (EV_KEY codes, axes...).
    bool supports(uint16_t type, uint16_t code) const;
    // Sends one input device update: `events` then SYN_REPORT, delivered as a
    // whole or not at all. Events the device does not support are left out.
    // Dropped (false) while no driver is active or when the backlog is full.
    bool send(std::span<const InputEvent> events);

    size_t pending_events() const { return pending_.size(); }
    uint64_t dropped_reports() const { return dropped_reports_; }
    uint64_t status_events() const { return status_events_; }

private:
    struct Bitmap {
        std::bitset<1024> bits;  // the config field's 128 bytes
    };
    void deliver();
    void drain_status();
    bool usable(uint16_t queue) const;
    void stop(const std::string& error);
    // The current selection's payload (`size` bytes of the 128-byte union).
    std::vector<uint8_t> selection() const;

    Kind kind_;
    std::string name_;
    std::string serial_;
    uint16_t product_ = 0;
    Bitmap event_types_;
    Bitmap codes_[0x20];  // per event type below EV_MAX
    uint8_t select_ = 0;
    uint8_t subsel_ = 0;

    std::optional<ActivationContext> context_;
    bool stopped_ = false;
    std::deque<InputEvent> pending_;
    uint64_t dropped_reports_ = 0;
    uint64_t status_events_ = 0;
};

}  // namespace atl::vmm::virtio
