#include "devices/legacy/serial.h"

#include <gtest/gtest.h>

#include <vector>

namespace atl::vmm {
namespace {

class CapturingBackend final : public CharBackend {
public:
    void write(std::span<const uint8_t> bytes) override { output.insert(output.end(), bytes.begin(), bytes.end()); }
    void set_input_handler(InputHandler) override {}
    std::vector<uint8_t> output;
};

struct SerialTest : ::testing::Test {
    std::shared_ptr<CapturingBackend> backend = std::make_shared<CapturingBackend>();
    std::vector<bool> irq_levels;
    Serial serial{backend, [this](bool level) { irq_levels.push_back(level); }};

    uint8_t in(uint64_t port) {
        uint8_t value = 0;
        serial.read(port, std::span(&value, 1));
        return value;
    }
    void out(uint64_t port, uint8_t value) { serial.write(port, std::span<const uint8_t>(&value, 1)); }
};

TEST_F(SerialTest, TransmitsBytes) {
    out(0, 'h');
    out(0, 'i');
    EXPECT_EQ(std::string(backend->output.begin(), backend->output.end()), "hi");
    EXPECT_EQ(in(5) & 0x60, 0x60) << "transmitter always empty";
}

TEST_F(SerialTest, ReceivesWithInterrupt) {
    out(1, 0x01);  // receive interrupt enable
    const uint8_t input[] = {'o', 'k'};
    serial.receive(input);
    ASSERT_FALSE(irq_levels.empty());
    EXPECT_TRUE(irq_levels.back());
    EXPECT_EQ(in(2) & 0x0f, 0x04) << "receive data interrupt";
    EXPECT_EQ(in(5) & 1, 1);
    EXPECT_EQ(in(0), 'o');
    EXPECT_EQ(in(0), 'k');
    EXPECT_EQ(in(5) & 1, 0);
    EXPECT_FALSE(irq_levels.back());
}

TEST_F(SerialTest, DivisorLatchDoesNotTransmit) {
    out(3, 0x80);
    out(0, 0x01);
    out(1, 0x00);
    EXPECT_EQ(in(0), 0x01);
    out(3, 0x03);
    EXPECT_TRUE(backend->output.empty());
}

TEST_F(SerialTest, LoopbackEchoesAndScratchKeepsValue) {
    out(4, 0x10);
    out(0, 'x');
    EXPECT_EQ(in(0), 'x');
    EXPECT_TRUE(backend->output.empty());
    out(7, 0x5a);
    EXPECT_EQ(in(7), 0x5a);
}

TEST_F(SerialTest, InputIsBounded) {
    std::vector<uint8_t> flood(Serial::kInputLimit * 2, 'a');
    serial.receive(flood);
    size_t received = 0;
    while (in(5) & 1) {
        in(0);
        ++received;
    }
    EXPECT_EQ(received, Serial::kInputLimit);
}

}  // namespace
}  // namespace atl::vmm
