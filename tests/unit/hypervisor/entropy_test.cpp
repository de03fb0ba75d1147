#include "devices/virtio/entropy.h"
#include "virtio_test_driver.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace atl::vmm::virtio {
namespace {

using testing::FakeInterrupt;
using testing::TestDriver;

class EntropyTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(device_.activate(driver_.activation_context(false, &interrupt_)).ok()); }

    TestDriver driver_{16, 2 << 20};
    FakeInterrupt interrupt_;
    EntropyDevice device_;
};

// Bytes a pre-filled buffer still holds after the device filled it.
size_t count_unchanged(const std::vector<uint8_t>& bytes, uint8_t fill) {
    return static_cast<size_t>(std::count(bytes.begin(), bytes.end(), fill));
}

TEST_F(EntropyTest, DescribesItself) {
    EXPECT_EQ(device_.type(), kDeviceEntropy);
    EXPECT_EQ(device_.queue_count(), 1);
    EXPECT_TRUE(device_.offered_features() & kFeatureVersion1);
    uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    device_.read_config(0, config);
    EXPECT_EQ(std::count(config, config + 8, 0), 8);
}

TEST_F(EntropyTest, FillsWritableBuffersWithRandomBytes) {
    const uint64_t first = driver_.fill(256, 0);
    const uint64_t second = driver_.fill(256, 0);
    const uint16_t head_a = driver_.add_chain({{first, 256, true}});
    const uint16_t head_b = driver_.add_chain({{second, 256, true}});
    device_.queue_notify(0);

    ASSERT_EQ(driver_.used_index(), 2);
    EXPECT_EQ(driver_.used_element(0).id, head_a);
    EXPECT_EQ(driver_.used_element(0).length, 256u);
    EXPECT_EQ(driver_.used_element(1).id, head_b);
    EXPECT_EQ(driver_.used_element(1).length, 256u);
    const auto a = driver_.get(first, 256);
    const auto b = driver_.get(second, 256);
    // 256 random bytes: the chance of more than 16 zeros or of equal buffers is negligible.
    EXPECT_LT(count_unchanged(a, 0), 16u);
    EXPECT_LT(count_unchanged(b, 0), 16u);
    EXPECT_NE(a, b);
    EXPECT_EQ(interrupt_.queue_notifications, std::vector<uint16_t>{0});
    EXPECT_EQ(device_.bytes_provided(), 512u);
}

TEST_F(EntropyTest, FillsEveryBufferOfAChain) {
    const uint64_t a = driver_.fill(100, 0xAA);
    const uint64_t b = driver_.fill(28, 0xAA);
    driver_.add_indirect_chain({{a, 100, true}, {b, 28, true}});
    device_.queue_notify(0);
    ASSERT_EQ(driver_.used_index(), 1);
    EXPECT_EQ(driver_.used_element(0).length, 128u);
    EXPECT_LT(count_unchanged(driver_.get(a, 100), 0xAA), 10u);
    EXPECT_LT(count_unchanged(driver_.get(b, 28), 0xAA), 5u);
}

TEST_F(EntropyTest, CapsHugeRequests) {
    const uint64_t size = 1 << 20;
    const uint64_t buffer = driver_.fill(size, 0xAA);
    driver_.add_chain({{buffer, static_cast<uint32_t>(size), true}});
    device_.queue_notify(0);
    ASSERT_EQ(driver_.used_index(), 1);
    EXPECT_EQ(driver_.used_element(0).length, EntropyDevice::kMaxBytesPerRequest);
    // Past the cap the buffer is untouched.
    const auto tail = driver_.get(buffer + EntropyDevice::kMaxBytesPerRequest, 4096);
    EXPECT_EQ(count_unchanged(tail, 0xAA), 4096u);
}

TEST_F(EntropyTest, ReadableOnlyChainsGetNothing) {
    const uint64_t readable = driver_.fill(64, 0xAA);
    driver_.add_chain({{readable, 64, false}});
    device_.queue_notify(0);
    ASSERT_EQ(driver_.used_index(), 1);
    EXPECT_EQ(driver_.used_element(0).length, 0u);
    EXPECT_EQ(count_unchanged(driver_.get(readable, 64), 0xAA), 64u);  // never written
}

TEST_F(EntropyTest, BrokenRingStopsTheDevice) {
    driver_.add_chain({{driver_.memory_end() + 4096, 64, true}});
    device_.queue_notify(0);
    ASSERT_EQ(interrupt_.device_errors.size(), 1u);
    EXPECT_EQ(interrupt_.device_errors[0].rfind("virtio-rng: ", 0), 0u);
    EXPECT_EQ(driver_.used_index(), 0);
    device_.queue_notify(0);
    EXPECT_EQ(interrupt_.device_errors.size(), 1u);
}

TEST_F(EntropyTest, IgnoresNotificationsBeforeActivationAndAfterReset) {
    device_.reset();
    driver_.add_chain({{driver_.fill(16, 0), 16, true}});
    device_.queue_notify(0);
    EXPECT_EQ(driver_.used_index(), 0);
}

}  // namespace
}  // namespace atl::vmm::virtio
