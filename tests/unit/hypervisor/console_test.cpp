#include "devices/virtio/console.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <string>

namespace atl::vmm::virtio {
namespace {

using testing::FakeInterrupt;
using testing::TestDriver;

// Records guest output; lets the test type input. With `echo`, output comes back as input.
class TestCharBackend : public CharBackend {
public:
    void write(std::span<const uint8_t> bytes) override {
        output.append(bytes.begin(), bytes.end());
        if (echo && handler) handler(bytes);
    }
    void set_input_handler(InputHandler new_handler) override { handler = std::move(new_handler); }
    void type(const std::string& text) {
        ASSERT_TRUE(handler);
        handler(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    }

    std::string output;
    InputHandler handler;
    bool echo = false;
};

std::span<const uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

class ConsoleTest : public ::testing::Test {
protected:
    void activate(bool event_index = false) {
        ASSERT_TRUE(device_->activate(driver_.activation_context(event_index, &interrupt_)).ok());
    }
    // Posts a receive buffer of `size` bytes; returns its guest address.
    uint64_t post_receive_buffer(uint32_t size) {
        const uint64_t address = driver_.fill(size, 0);
        driver_.queue(ConsoleDevice::kReceiveQueue).add_chain({{address, size, true}});
        return address;
    }
    std::string received(uint64_t address, uint32_t length) {
        const auto bytes = driver_.get(address, length);
        return std::string(bytes.begin(), bytes.end());
    }

    TestDriver driver_{16, 1 << 20, 2};
    FakeInterrupt interrupt_;
    std::shared_ptr<TestCharBackend> backend_ = std::make_shared<TestCharBackend>();
    std::unique_ptr<ConsoleDevice> device_ = std::make_unique<ConsoleDevice>(backend_);
};

TEST_F(ConsoleTest, DescribesASinglePortConsole) {
    EXPECT_EQ(device_->type(), kDeviceConsole);
    EXPECT_EQ(device_->queue_count(), 2);
    const uint64_t features = device_->offered_features();
    EXPECT_TRUE(features & kFeatureVersion1);
    EXPECT_TRUE(features & ConsoleDevice::kFeatureEmergencyWrite);
    EXPECT_FALSE(features & (1ull << 1));  // MULTIPORT
    EXPECT_FALSE(features & (1ull << 0));  // SIZE
    uint8_t config[16];
    std::fill(std::begin(config), std::end(config), 0xFF);
    device_->read_config(0, config);
    EXPECT_EQ(std::count(std::begin(config), std::end(config), 0), 16);
}

TEST_F(ConsoleTest, TransmitsGuestOutputToTheBackend) {
    activate();
    auto& transmit = driver_.queue(ConsoleDevice::kTransmitQueue);
    const uint16_t head = transmit.add_chain(
        {{driver_.put(bytes_of("hello ")), 6, false}, {driver_.put(bytes_of("world\n")), 6, false}});
    device_->queue_notify(ConsoleDevice::kTransmitQueue);
    EXPECT_EQ(backend_->output, "hello world\n");
    ASSERT_EQ(transmit.used_index(), 1);
    EXPECT_EQ(transmit.used_element(0).id, head);
    EXPECT_EQ(transmit.used_element(0).length, 0u);
    EXPECT_EQ(interrupt_.queue_notifications, std::vector<uint16_t>{ConsoleDevice::kTransmitQueue});
}

TEST_F(ConsoleTest, DeliversHostInputIntoPostedBuffers) {
    activate();
    const uint64_t buffer = post_receive_buffer(16);
    device_->queue_notify(ConsoleDevice::kReceiveQueue);  // nothing typed yet
    EXPECT_EQ(driver_.queue(0).used_index(), 0);

    backend_->type("ls\n");
    auto& receive = driver_.queue(ConsoleDevice::kReceiveQueue);
    ASSERT_EQ(receive.used_index(), 1);
    EXPECT_EQ(receive.used_element(0).length, 3u);
    EXPECT_EQ(received(buffer, 3), "ls\n");
    EXPECT_EQ(device_->pending_input_bytes(), 0u);
    EXPECT_EQ(interrupt_.queue_notifications, std::vector<uint16_t>{ConsoleDevice::kReceiveQueue});
}

TEST_F(ConsoleTest, BuffersInputUntilTheGuestPostsBuffers) {
    backend_->type("typed early");  // before the driver is even up
    EXPECT_EQ(device_->pending_input_bytes(), 11u);
    activate();
    EXPECT_EQ(device_->pending_input_bytes(), 11u);

    const uint64_t first = post_receive_buffer(4);
    const uint64_t second = post_receive_buffer(4);
    device_->queue_notify(ConsoleDevice::kReceiveQueue);
    EXPECT_EQ(received(first, 4), "type");
    EXPECT_EQ(received(second, 4), "d ea");
    EXPECT_EQ(device_->pending_input_bytes(), 3u);

    const uint64_t third = post_receive_buffer(64);
    device_->queue_notify(ConsoleDevice::kReceiveQueue);
    EXPECT_EQ(received(third, 3), "rly");
    EXPECT_EQ(driver_.queue(0).used_element(2).length, 3u);
    EXPECT_EQ(device_->pending_input_bytes(), 0u);
}

TEST_F(ConsoleTest, AsksForNotificationWhenOutOfReceiveBuffers) {
    activate(/*event_index=*/true);
    const uint64_t buffer = post_receive_buffer(2);
    backend_->type("abcd");
    EXPECT_EQ(received(buffer, 2), "ab");
    // avail_event tells the driver to notify for its next buffer.
    EXPECT_EQ(driver_.queue(0).avail_event(), 1);
    EXPECT_EQ(device_->pending_input_bytes(), 2u);
}

TEST_F(ConsoleTest, DropsInputBeyondTheBound) {
    backend_->type(std::string(ConsoleDevice::kMaxPendingInputBytes - 10, 'x'));
    backend_->type(std::string(30, 'y'));
    EXPECT_EQ(device_->pending_input_bytes(), ConsoleDevice::kMaxPendingInputBytes);
    EXPECT_EQ(device_->dropped_input_bytes(), 20u);
}

TEST_F(ConsoleTest, RoundTripThroughAnEchoingBackend) {
    backend_->echo = true;
    activate();
    const uint64_t in = post_receive_buffer(32);
    driver_.queue(ConsoleDevice::kTransmitQueue).add_chain({{driver_.put(bytes_of("ping")), 4, false}});
    device_->queue_notify(ConsoleDevice::kTransmitQueue);
    EXPECT_EQ(backend_->output, "ping");
    ASSERT_EQ(driver_.queue(ConsoleDevice::kReceiveQueue).used_index(), 1);
    EXPECT_EQ(driver_.queue(ConsoleDevice::kReceiveQueue).used_element(0).length, 4u);
    EXPECT_EQ(received(in, 4), "ping");
}

TEST_F(ConsoleTest, EmergencyWriteWorksBeforeActivation) {
    const uint8_t value[4] = {'!', 0, 0, 0};
    device_->write_config(8, value);
    device_->write_config(0, value);  // not emerg_wr: ignored
    EXPECT_EQ(backend_->output, "!");
}

TEST_F(ConsoleTest, BrokenTransmitRingStopsTheDevice) {
    activate();
    driver_.queue(ConsoleDevice::kTransmitQueue).add_chain({{driver_.memory_end(), 4, false}});
    device_->queue_notify(ConsoleDevice::kTransmitQueue);
    ASSERT_EQ(interrupt_.device_errors.size(), 1u);
    EXPECT_EQ(interrupt_.device_errors[0].rfind("virtio-console: ", 0), 0u);
    // Input is kept, not delivered, until reset.
    post_receive_buffer(8);
    backend_->type("z");
    EXPECT_EQ(driver_.queue(0).used_index(), 0);
    EXPECT_EQ(device_->pending_input_bytes(), 1u);
}

TEST_F(ConsoleTest, ReadableReceiveBuffersAreReturnedEmpty) {
    activate();
    driver_.queue(0).add_chain({{driver_.fill(8, 0), 8, false}});
    const uint64_t good = post_receive_buffer(8);
    backend_->type("ok");
    ASSERT_EQ(driver_.queue(0).used_index(), 2);
    EXPECT_EQ(driver_.queue(0).used_element(0).length, 0u);
    EXPECT_EQ(received(good, 2), "ok");
}

TEST_F(ConsoleTest, ReleasesTheBackendHandlerWhenDestroyed) {
    EXPECT_TRUE(backend_->handler);
    device_.reset();
    EXPECT_FALSE(backend_->handler);
}

}  // namespace
}  // namespace atl::vmm::virtio
