#include "devices/virtio/input.h"
#include "virtio_test_driver.h"

#include <linux/input-event-codes.h>

#include <gtest/gtest.h>

#include <string>

namespace atl::vmm::virtio {
namespace {

using testing::FakeInterrupt;
using testing::TestDriver;

class InputTest : public ::testing::Test {
protected:
    void make(InputDevice::Kind kind) { device_ = std::make_unique<InputDevice>(kind); }
    void activate() {
        auto context = driver_.activation_context(false, &interrupt_);
        context.acked_features = kFeatureVersion1;
        ASSERT_TRUE(device_->activate(std::move(context)).ok());
    }

    // Section 5.8.5: select and subsel, then size and the union.
    std::vector<uint8_t> query(uint8_t select, uint8_t subsel) {
        device_->write_config(0, std::span<const uint8_t>(&select, 1));
        device_->write_config(1, std::span<const uint8_t>(&subsel, 1));
        uint8_t size = 0;
        device_->read_config(2, std::span(&size, 1));
        std::vector<uint8_t> payload(size);
        if (size) device_->read_config(8, payload);
        return payload;
    }
    static bool bit(const std::vector<uint8_t>& bitmap, unsigned index) {
        return index / 8 < bitmap.size() && (bitmap[index / 8] >> (index % 8)) & 1;
    }

    // Posts `count` 8-byte event buffers; returns their addresses.
    std::vector<uint64_t> post_buffers(int count, uint32_t size = 8) {
        std::vector<uint64_t> addresses;
        for (int i = 0; i < count; ++i) {
            addresses.push_back(driver_.fill(size, 0xEE));
            driver_.queue(InputDevice::kEventQueue).add_chain({{addresses.back(), size, true}});
        }
        return addresses;
    }
    InputEvent event_at(uint64_t address) {
        InputEvent event;
        driver_.memory()->read_object(GuestAddress{address}, event);
        return event;
    }

    TestDriver driver_{64, 1 << 20, 2};
    FakeInterrupt interrupt_;
    std::unique_ptr<InputDevice> device_;
};

TEST_F(InputTest, KeyboardDescribesItself) {
    make(InputDevice::Kind::Keyboard);
    EXPECT_EQ(device_->type(), kDeviceInput);
    EXPECT_EQ(device_->queue_count(), 2);
    const auto name = query(InputDevice::kSelectIdName, 0);
    EXPECT_EQ(std::string(name.begin(), name.end()), "Atoll Virtual Keyboard");
    const auto serial = query(InputDevice::kSelectIdSerial, 0);
    EXPECT_EQ(std::string(serial.begin(), serial.end()), "atoll-keyboard-0");
    const auto ids = query(InputDevice::kSelectIdDevids, 0);
    ASSERT_EQ(ids.size(), 8u);
    EXPECT_EQ(ids[0] | (ids[1] << 8), 0x06);  // BUS_VIRTUAL

    const auto keys = query(InputDevice::kSelectEvBits, EV_KEY);
    EXPECT_TRUE(bit(keys, KEY_ESC));
    EXPECT_TRUE(bit(keys, KEY_A));
    EXPECT_TRUE(bit(keys, KEY_LEFTMETA));
    EXPECT_TRUE(bit(keys, KEY_F24));
    EXPECT_TRUE(bit(keys, KEY_OK));
    EXPECT_FALSE(bit(keys, KEY_RESERVED));
    EXPECT_FALSE(bit(keys, BTN_LEFT));
    EXPECT_FALSE(bit(keys, BTN_TRIGGER_HAPPY));
    const auto leds = query(InputDevice::kSelectEvBits, EV_LED);
    EXPECT_TRUE(bit(leds, LED_CAPSL));
    EXPECT_TRUE(query(InputDevice::kSelectEvBits, EV_REL).empty());
    EXPECT_TRUE(query(InputDevice::kSelectEvBits, EV_ABS).empty());
    EXPECT_TRUE(query(InputDevice::kSelectAbsInfo, ABS_X).empty());
    EXPECT_TRUE(query(InputDevice::kSelectPropBits, 0).empty());
    EXPECT_TRUE(query(0x7f, 0).empty()) << "unknown selectors have size 0";
    EXPECT_TRUE(query(InputDevice::kSelectIdName, 1).empty());
}

TEST_F(InputTest, TabletHasAbsoluteAxesButtonsAndWheel) {
    make(InputDevice::Kind::Tablet);
    const auto name = query(InputDevice::kSelectIdName, 0);
    EXPECT_EQ(std::string(name.begin(), name.end()), "Atoll Virtual Tablet");
    const auto axes = query(InputDevice::kSelectEvBits, EV_ABS);
    EXPECT_TRUE(bit(axes, ABS_X));
    EXPECT_TRUE(bit(axes, ABS_Y));
    EXPECT_FALSE(bit(axes, ABS_Z));
    const auto info = query(InputDevice::kSelectAbsInfo, ABS_Y);
    ASSERT_EQ(info.size(), 20u);
    uint32_t fields[5];
    std::memcpy(fields, info.data(), sizeof fields);
    EXPECT_EQ(fields[0], 0u);
    EXPECT_EQ(fields[1], 32767u);
    const auto buttons = query(InputDevice::kSelectEvBits, EV_KEY);
    EXPECT_TRUE(bit(buttons, BTN_LEFT));
    EXPECT_TRUE(bit(buttons, BTN_RIGHT));
    EXPECT_TRUE(bit(buttons, BTN_MIDDLE));
    EXPECT_FALSE(bit(buttons, KEY_A));
    EXPECT_TRUE(bit(query(InputDevice::kSelectEvBits, EV_REL), REL_WHEEL));
}

TEST_F(InputTest, MouseIsRelative) {
    make(InputDevice::Kind::Mouse);
    const auto axes = query(InputDevice::kSelectEvBits, EV_REL);
    EXPECT_TRUE(bit(axes, REL_X));
    EXPECT_TRUE(bit(axes, REL_Y));
    EXPECT_TRUE(bit(axes, REL_WHEEL));
    EXPECT_TRUE(query(InputDevice::kSelectEvBits, EV_ABS).empty());
    EXPECT_TRUE(bit(query(InputDevice::kSelectEvBits, EV_KEY), BTN_LEFT));
}

TEST_F(InputTest, KeyPressArrivesWithSynReport) {
    make(InputDevice::Kind::Keyboard);
    activate();
    const auto buffers = post_buffers(4);
    device_->queue_notify(InputDevice::kEventQueue);
    EXPECT_EQ(driver_.queue(0).used_index(), 0) << "nothing to say yet";

    const InputEvent press{EV_KEY, KEY_A, 1};
    ASSERT_TRUE(device_->send(std::span(&press, 1)));
    auto& queue = driver_.queue(InputDevice::kEventQueue);
    ASSERT_EQ(queue.used_index(), 2);
    EXPECT_EQ(queue.used_element(0).length, 8u);
    const auto first = event_at(buffers[0]);
    EXPECT_EQ(first.type, EV_KEY);
    EXPECT_EQ(first.code, KEY_A);
    EXPECT_EQ(first.value, 1);
    const auto second = event_at(buffers[1]);
    EXPECT_EQ(second.type, EV_SYN);
    EXPECT_EQ(second.code, SYN_REPORT);
    EXPECT_EQ(second.value, 0);
    EXPECT_FALSE(interrupt_.queue_notifications.empty());
    EXPECT_EQ(interrupt_.queue_notifications.back(), InputDevice::kEventQueue);
}

TEST_F(InputTest, TabletReportIsOneUpdate) {
    make(InputDevice::Kind::Tablet);
    activate();
    const auto buffers = post_buffers(8);
    const InputEvent report[] = {{EV_ABS, ABS_X, 100}, {EV_ABS, ABS_Y, 32767}, {EV_KEY, BTN_LEFT, 1},
                                 {EV_REL, REL_X, 5}};  // REL_X is not a tablet axis: left out
    ASSERT_TRUE(device_->send(report));
    ASSERT_EQ(driver_.queue(0).used_index(), 4);
    EXPECT_EQ(event_at(buffers[0]).code, ABS_X);
    EXPECT_EQ(event_at(buffers[0]).value, 100);
    EXPECT_EQ(event_at(buffers[1]).value, 32767);
    EXPECT_EQ(event_at(buffers[2]).code, BTN_LEFT);
    EXPECT_EQ(event_at(buffers[3]).type, EV_SYN);
}

TEST_F(InputTest, EventsWaitForBuffersInOrder) {
    make(InputDevice::Kind::Keyboard);
    activate();
    const InputEvent a{EV_KEY, KEY_A, 1}, b{EV_KEY, KEY_B, 1};
    ASSERT_TRUE(device_->send(std::span(&a, 1)));
    ASSERT_TRUE(device_->send(std::span(&b, 1)));
    EXPECT_EQ(device_->pending_events(), 4u);
    const auto buffers = post_buffers(3);
    device_->queue_notify(InputDevice::kEventQueue);
    EXPECT_EQ(event_at(buffers[0]).code, KEY_A);
    EXPECT_EQ(event_at(buffers[1]).type, EV_SYN);
    EXPECT_EQ(event_at(buffers[2]).code, KEY_B);
    EXPECT_EQ(device_->pending_events(), 1u);
    const auto more = post_buffers(1);
    device_->queue_notify(InputDevice::kEventQueue);
    EXPECT_EQ(event_at(more[0]).type, EV_SYN);
    EXPECT_EQ(device_->pending_events(), 0u);
}

TEST_F(InputTest, BacklogIsBoundedAndDropsWholeReports) {
    make(InputDevice::Kind::Tablet);
    activate();
    const InputEvent report[] = {{EV_ABS, ABS_X, 1}, {EV_ABS, ABS_Y, 2}};
    int accepted = 0;
    for (int i = 0; i < 2000; ++i) accepted += device_->send(report) ? 1 : 0;
    EXPECT_LE(device_->pending_events(), InputDevice::kMaxPendingEvents);
    EXPECT_EQ(device_->pending_events() % 3, 0u) << "only whole reports are kept";
    EXPECT_EQ(static_cast<size_t>(accepted) * 3, device_->pending_events());
    EXPECT_EQ(device_->dropped_reports(), static_cast<uint64_t>(2000 - accepted));
}

TEST_F(InputTest, NothingIsKeptWithoutADriver) {
    make(InputDevice::Kind::Keyboard);
    const InputEvent press{EV_KEY, KEY_A, 1};
    EXPECT_FALSE(device_->send(std::span(&press, 1)));
    EXPECT_EQ(device_->pending_events(), 0u);
    activate();
    ASSERT_TRUE(device_->send(std::span(&press, 1)));
    device_->reset();
    EXPECT_EQ(device_->pending_events(), 0u);
}

TEST_F(InputTest, TooSmallBufferIsReturnedEmpty) {
    make(InputDevice::Kind::Keyboard);
    activate();
    post_buffers(1, 4);
    const auto good = post_buffers(2);
    const InputEvent press{EV_KEY, KEY_Z, 0};
    ASSERT_TRUE(device_->send(std::span(&press, 1)));
    auto& queue = driver_.queue(0);
    ASSERT_EQ(queue.used_index(), 3);
    EXPECT_EQ(queue.used_element(0).length, 0u);
    EXPECT_EQ(event_at(good[0]).code, KEY_Z);
    EXPECT_EQ(event_at(good[1]).type, EV_SYN);
}

TEST_F(InputTest, StatusQueueIsDrained) {
    make(InputDevice::Kind::Keyboard);
    activate();
    const InputEvent led[] = {{EV_LED, LED_CAPSL, 1}, {EV_SYN, SYN_REPORT, 0}};
    auto& status = driver_.queue(InputDevice::kStatusQueue);
    status.add_chain({{driver_.put(std::span(reinterpret_cast<const uint8_t*>(led), 8)), 8, false}});
    status.add_chain({{driver_.put(std::span(reinterpret_cast<const uint8_t*>(led + 1), 8)), 8, false}});
    device_->queue_notify(InputDevice::kStatusQueue);
    EXPECT_EQ(status.used_index(), 2);
    EXPECT_EQ(device_->status_events(), 2u);
}

TEST_F(InputTest, BrokenRingStopsTheDevice) {
    make(InputDevice::Kind::Keyboard);
    activate();
    driver_.queue(0).add_chain({{driver_.memory_end() + 4096, 8, true}});
    const InputEvent press{EV_KEY, KEY_A, 1};
    device_->send(std::span(&press, 1));
    ASSERT_EQ(interrupt_.device_errors.size(), 1u);
    EXPECT_EQ(interrupt_.device_errors[0].rfind("Atoll Virtual Keyboard: ", 0), 0u);
    EXPECT_FALSE(device_->send(std::span(&press, 1)));
    EXPECT_EQ(interrupt_.device_errors.size(), 1u);
}

}  // namespace
}  // namespace atl::vmm::virtio
