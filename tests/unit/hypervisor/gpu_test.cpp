#include "devices/virtio/edid.h"
#include "devices/virtio/gpu.h"
#include "gpu_test_guest.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <numeric>

namespace atl::vmm::virtio {
namespace {

using testing::GpuMemEntry;
using testing::GpuTestGuest;
using testing::RecordingDisplay;

constexpr uint32_t kXrgb = GpuDevice::kFormatB8G8R8X8;

class GpuTest : public ::testing::Test {
protected:
    void SetUp() override {
        guest_.device.set_display(&display_);
        guest_.activate();
        ASSERT_TRUE(guest_.activated);
    }

    // A resource with a framebuffer attached and transferred, as fbdev sets it up.
    GpuTestGuest::Framebuffer make_resource(uint32_t id, uint32_t width, uint32_t height, uint32_t format = kXrgb) {
        auto framebuffer = guest_.make_framebuffer(width, height, id);
        EXPECT_EQ(guest_.create_2d(id, format, width, height), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest_.attach(id, framebuffer.entries), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest_.transfer(id, 0, 0, width, height, 0), GpuDevice::kRespOkNoData);
        return framebuffer;
    }

    static uint32_t pixel(const std::vector<uint8_t>& pixels, uint32_t stride, uint32_t x, uint32_t y) {
        uint32_t value;
        std::memcpy(&value, pixels.data() + uint64_t{y} * stride + x * 4, 4);
        return value;
    }

    GpuTestGuest guest_;
    RecordingDisplay display_;
};

TEST_F(GpuTest, DescribesA2dGpuWithEdid) {
    EXPECT_EQ(guest_.device.type(), kDeviceGpu);
    EXPECT_EQ(guest_.device.queue_count(), 2);
    const uint64_t features = guest_.device.offered_features();
    EXPECT_TRUE(features & kFeatureVersion1);
    EXPECT_TRUE(features & GpuDevice::kFeatureEdid);
    EXPECT_FALSE(features & 1);  // VIRGL
    uint32_t config[4] = {9, 9, 9, 9};
    guest_.device.read_config(0, std::span(reinterpret_cast<uint8_t*>(config), sizeof config));
    EXPECT_EQ(config[0], 0u);  // events_read
    EXPECT_EQ(config[2], 1u);  // num_scanouts
    EXPECT_EQ(config[3], 0u);  // num_capsets
}

TEST_F(GpuTest, ReportsTheConfiguredDisplays) {
    GpuDeviceConfig config;
    config.scanouts = 2;
    config.width = 1024;
    config.height = 768;
    GpuTestGuest guest(config);
    guest.activate();
    const auto response = guest.command(GpuDevice::kCmdGetDisplayInfo, {}, 24 + 384);
    ASSERT_EQ(response.header.type, GpuDevice::kRespOkDisplayInfo);
    EXPECT_EQ(response.used_length, 24u + 384u);
    uint32_t modes[16 * 6];
    std::memcpy(modes, response.payload.data(), sizeof modes);
    // {x, y, width, height, enabled, flags} per scanout, side by side.
    EXPECT_EQ(std::vector<uint32_t>(modes, modes + 6), (std::vector<uint32_t>{0, 0, 1024, 768, 1, 0}));
    EXPECT_EQ(std::vector<uint32_t>(modes + 6, modes + 12), (std::vector<uint32_t>{1024, 0, 1024, 768, 1, 0}));
    EXPECT_EQ(modes[12 + 4], 0u);  // scanout 2 does not exist
}

TEST_F(GpuTest, ReturnsAValidEdidWithThePreferredMode) {
    const auto response = guest_.command(GpuDevice::kCmdGetEdid, GpuTestGuest::words(0, 0), 24 + 8 + 1024);
    ASSERT_EQ(response.header.type, GpuDevice::kRespOkEdid);
    uint32_t size;
    std::memcpy(&size, response.payload.data(), 4);
    ASSERT_EQ(size, 128u);
    const uint8_t* edid = response.payload.data() + 8;
    const uint8_t header[8] = {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0};
    EXPECT_EQ(std::memcmp(edid, header, 8), 0);
    EXPECT_EQ(edid[18], 1);  // version 1.4
    EXPECT_EQ(edid[19], 4);
    EXPECT_EQ(std::accumulate(edid, edid + 128, 0u) % 256, 0u) << "checksum";
    // The first detailed timing descriptor is the preferred mode: 1280x800.
    const uint8_t* timing = edid + 54;
    EXPECT_EQ(timing[2] | ((timing[4] >> 4) << 8), 1280);
    EXPECT_EQ(timing[5] | ((timing[7] >> 4) << 8), 800);
    EXPECT_NE(timing[0] | (timing[1] << 8), 0) << "pixel clock";
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(edid + 72 + 5), 13), "Atoll Display");
}

TEST(Edid, LargeModesStayExpressibleAndSumToZero) {
    for (auto [width, height] : {std::pair{640u, 480u}, {3840u, 2160u}, {8192u, 8192u}, {64u, 8192u}}) {
        const auto edid = build_edid({width, height});
        EXPECT_EQ(std::accumulate(edid.begin(), edid.end(), 0u) % 256, 0u);
        const uint8_t* timing = edid.data() + 54;
        const uint32_t active_width = timing[2] | ((timing[4] >> 4) << 8);
        const uint32_t active_height = timing[5] | ((timing[7] >> 4) << 8);
        EXPECT_LE(active_width, 4095u);
        EXPECT_LE(active_height, 4095u);
        EXPECT_GT(active_width, 0u);
        EXPECT_NE(timing[0] | (timing[1] << 8), 0);
        if (width <= 4095 && height <= 4095) {
            EXPECT_EQ(active_width, width);
            EXPECT_EQ(active_height, height);
        }
    }
}

TEST_F(GpuTest, EdidNeedsTheFeatureAndAScanout) {
    EXPECT_EQ(guest_.command(GpuDevice::kCmdGetEdid, GpuTestGuest::words(1, 0), 1056).header.type,
              GpuDevice::kRespErrInvalidScanoutId);
    GpuTestGuest without;
    without.activate(false);
    EXPECT_EQ(without.command(GpuDevice::kCmdGetEdid, GpuTestGuest::words(0, 0), 1056).header.type,
              GpuDevice::kRespErrUnspec);
}

TEST_F(GpuTest, FramebufferReachesTheDisplayThroughASharedMemfd) {
    const uint32_t width = 64, height = 48;
    auto framebuffer = make_resource(1, width, height);
    EXPECT_TRUE(display_.events.empty()) << "nothing is shown before SET_SCANOUT";
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, width, height), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 1u);
    const auto surface = display_.events[0].surface;
    EXPECT_EQ(display_.events[0].kind, RecordingDisplay::Event::Surface);
    EXPECT_EQ(surface.width, width);
    EXPECT_EQ(surface.height, height);
    EXPECT_EQ(surface.stride, width * 4);
    EXPECT_EQ(surface.offset, 0u);
    ASSERT_GE(surface.fd, 0);

    // What the display server does: map it read-only and read the pixels.
    struct stat info {};
    ASSERT_EQ(fstat(surface.fd, &info), 0);
    ASSERT_GE(static_cast<uint64_t>(info.st_size), surface.offset + uint64_t{surface.stride} * surface.height);
    const int seals = fcntl(surface.fd, F_GET_SEALS);
    EXPECT_TRUE(seals & F_SEAL_SHRINK);
    EXPECT_TRUE(seals & F_SEAL_GROW);
    auto* mapped = static_cast<const uint8_t*>(mmap(nullptr, info.st_size, PROT_READ, MAP_SHARED, surface.fd, 0));
    ASSERT_NE(mapped, MAP_FAILED);
    std::vector<uint8_t> shown(mapped, mapped + uint64_t{surface.stride} * height);
    EXPECT_EQ(pixel(shown, surface.stride, 0, 0), GpuTestGuest::pattern(0, 0, 1));
    EXPECT_EQ(pixel(shown, surface.stride, 63, 47), GpuTestGuest::pattern(63, 47, 1));
    EXPECT_EQ(pixel(shown, surface.stride, 31, 24), GpuTestGuest::pattern(31, 24, 1));

    // The guest draws more: transfer, flush, damage; the mapping sees it without another message.
    guest_.draw(framebuffer, 42);
    display_.events.clear();
    ASSERT_EQ(guest_.transfer(1, 8, 4, 16, 2, 4 * surface.stride + 8 * 4), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 8, 4, 16, 2), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 1u);
    EXPECT_EQ(display_.events[0].kind, RecordingDisplay::Event::Damage);
    EXPECT_EQ(display_.events[0].rect, (GpuRect{8, 4, 16, 2}));
    uint32_t changed;
    std::memcpy(&changed, mapped + 5 * surface.stride + 10 * 4, 4);
    EXPECT_EQ(changed, GpuTestGuest::pattern(10, 5, 42));
    std::memcpy(&changed, mapped + 6 * surface.stride + 10 * 4, 4);
    EXPECT_EQ(changed, GpuTestGuest::pattern(10, 6, 1)) << "outside the transfer";
    munmap(const_cast<uint8_t*>(mapped), info.st_size);
}

// Linux's fbdev flushes whole rows (every page written), and a blinking
// cursor or a clock then costs a full-width update: only the pixels that
// changed become damage, and a flush of unchanged pixels is no news.
TEST_F(GpuTest, DamageIsWhatChangedNotWhatWasFlushed) {
    const uint32_t width = 64, height = 48;
    auto framebuffer = make_resource(1, width, height);
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, width, height), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 0, 0, width, height), GpuDevice::kRespOkNoData);
    display_.events.clear();

    // Everything transferred and flushed again, unchanged: nothing to show.
    ASSERT_EQ(guest_.transfer(1, 0, 0, width, height, 0), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 0, 0, width, height), GpuDevice::kRespOkNoData);
    EXPECT_TRUE(display_.events.empty());

    // Two pixels change; the whole screen is transferred and flushed.
    guest_.write_pixel(framebuffer, 10, 5, 0x00abcdef);
    guest_.write_pixel(framebuffer, 20, 7, 0x00123456);
    ASSERT_EQ(guest_.transfer(1, 0, 0, width, height, 0), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 0, 0, width, height), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 1u);
    EXPECT_EQ(display_.events[0].kind, RecordingDisplay::Event::Damage);
    EXPECT_EQ(display_.events[0].rect, (GpuRect{10, 5, 11, 3})) << "their bounding box";
    const auto pixels = guest_.device.resource_pixels(1);
    EXPECT_EQ(pixel(pixels, width * 4, 10, 5), 0x00abcdefu);
    EXPECT_EQ(pixel(pixels, width * 4, 20, 7), 0x00123456u);
    EXPECT_EQ(pixel(pixels, width * 4, 15, 6), GpuTestGuest::pattern(15, 6, 1)) << "between them: unchanged";

    // A change flushed in two parts: each flush shows its part of it.
    display_.events.clear();
    guest_.write_pixel(framebuffer, 0, 0, 1);
    guest_.write_pixel(framebuffer, 63, 47, 2);
    ASSERT_EQ(guest_.transfer(1, 0, 0, width, height, 0), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 0, 0, 8, 8), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.flush(1, 56, 40, 8, 8), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 2u);
    EXPECT_EQ(display_.events[0].rect, (GpuRect{0, 0, 8, 8}));
    EXPECT_EQ(display_.events[1].rect, (GpuRect{56, 40, 8, 8}));
}

TEST_F(GpuTest, TransferCopiesOnlyTheRectangleFromItsOffset) {
    const uint32_t width = 40, height = 30;
    auto framebuffer = make_resource(1, width, height);
    guest_.draw(framebuffer, 77);  // the guest redraws everything, transfers a part
    const uint32_t stride = width * 4;
    ASSERT_EQ(guest_.transfer(1, 5, 3, 10, 4, 3 * stride + 5 * 4), GpuDevice::kRespOkNoData);
    const auto pixels = guest_.device.resource_pixels(1);
    for (uint32_t y = 0; y < height; ++y) {
        for (uint32_t x = 0; x < width; ++x) {
            const bool inside = x >= 5 && x < 15 && y >= 3 && y < 7;
            ASSERT_EQ(pixel(pixels, stride, x, y), GpuTestGuest::pattern(x, y, inside ? 77 : 1)) << x << "," << y;
        }
    }
}

TEST_F(GpuTest, ConvertsOtherFormatsToXrgb) {
    auto framebuffer = guest_.make_framebuffer(4, 2, 0);
    const uint32_t rgba = 0x44332211;  // bytes R=11 G=22 B=33 A=44
    for (uint32_t y = 0; y < 2; ++y)
        for (uint32_t x = 0; x < 4; ++x) guest_.write_pixel(framebuffer, x, y, rgba);
    ASSERT_EQ(guest_.create_2d(1, GpuDevice::kFormatR8G8B8A8, 4, 2), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.attach(1, framebuffer.entries), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.transfer(1, 0, 0, 4, 2, 0), GpuDevice::kRespOkNoData);
    const auto pixels = guest_.device.resource_pixels(1);
    // Host order B, G, R, A.
    EXPECT_EQ(pixel(pixels, 16, 0, 0), 0x44112233u);
    EXPECT_EQ(pixel(pixels, 16, 3, 1), 0x44112233u);
}

TEST_F(GpuTest, SetScanoutWithAWindowOfALargerResource) {
    make_resource(1, 100, 50);
    ASSERT_EQ(guest_.set_scanout(0, 1, 10, 20, 80, 30), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 1u);
    const auto surface = display_.events[0].surface;
    EXPECT_EQ(surface.offset, 20u * 400 + 10 * 4);
    EXPECT_EQ(surface.width, 80u);
    EXPECT_EQ(surface.height, 30u);
    struct stat info {};
    ASSERT_EQ(fstat(surface.fd, &info), 0);
    EXPECT_GE(static_cast<uint64_t>(info.st_size), surface.offset + uint64_t{surface.stride} * surface.height);
    // A flush partly outside the window is clipped and moved to scanout coordinates.
    display_.events.clear();
    ASSERT_EQ(guest_.flush(1, 0, 0, 20, 25), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 1u);
    EXPECT_EQ(display_.events[0].rect, (GpuRect{0, 0, 10, 5}));
    // Entirely outside the window: no damage.
    display_.events.clear();
    ASSERT_EQ(guest_.flush(1, 0, 0, 5, 5), GpuDevice::kRespOkNoData);
    EXPECT_TRUE(display_.events.empty());
    // The same scanout again is no news.
    ASSERT_EQ(guest_.set_scanout(0, 1, 10, 20, 80, 30), GpuDevice::kRespOkNoData);
    EXPECT_TRUE(display_.events.empty());
}

TEST_F(GpuTest, DisablingAndUnreferencingTurnScanoutsOff) {
    make_resource(1, 16, 16);
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, 16, 16), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.set_scanout(0, 0, 0, 0, 0, 0), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 2u);
    EXPECT_EQ(display_.events[1].kind, RecordingDisplay::Event::Disable);
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, 16, 16), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.unref(1), GpuDevice::kRespOkNoData);
    ASSERT_EQ(display_.events.size(), 4u);
    EXPECT_EQ(display_.events[3].kind, RecordingDisplay::Event::Disable);
    EXPECT_EQ(guest_.device.resource_count(), 0u);
    EXPECT_EQ(guest_.device.host_memory_bytes(), 0u);
}

TEST_F(GpuTest, EchoesTheFenceAfterTheWork) {
    auto framebuffer = guest_.make_framebuffer(8, 8, 3);
    ASSERT_EQ(guest_.create_2d(1, kXrgb, 8, 8), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.attach(1, framebuffer.entries), GpuDevice::kRespOkNoData);
    std::vector<uint8_t> body = GpuTestGuest::words(0, 0, 8, 8, 0, 0, 1, 0);
    const auto response = guest_.command(GpuDevice::kCmdTransferToHost2d, body, 24, {}, GpuDevice::kFlagFence, 0x1234567890ull);
    EXPECT_EQ(response.header.type, GpuDevice::kRespOkNoData);
    EXPECT_EQ(response.header.flags & GpuDevice::kFlagFence, GpuDevice::kFlagFence);
    EXPECT_EQ(response.header.fence_id, 0x1234567890ull);
    EXPECT_EQ(pixel(guest_.device.resource_pixels(1), 32, 7, 7), GpuTestGuest::pattern(7, 7, 3));
    // Without the flag nothing is echoed.
    const auto plain = guest_.command(GpuDevice::kCmdGetDisplayInfo, {}, 408, {}, 0, 99);
    EXPECT_EQ(plain.header.flags, 0u);
    EXPECT_EQ(plain.header.fence_id, 0u);
}

TEST_F(GpuTest, ResizeRaisesADisplayEventAndNewDisplayInfo) {
    ASSERT_TRUE(guest_.device.set_preferred_size(0, 1920, 1080));
    EXPECT_EQ(guest_.interrupt.config_changes, 1);
    uint32_t events_read = 0;
    guest_.device.read_config(0, std::span(reinterpret_cast<uint8_t*>(&events_read), 4));
    EXPECT_EQ(events_read, GpuDevice::kEventDisplay);
    const auto info = guest_.command(GpuDevice::kCmdGetDisplayInfo, {}, 408);
    uint32_t mode[6];
    std::memcpy(mode, info.payload.data(), sizeof mode);
    EXPECT_EQ(mode[2], 1920u);
    EXPECT_EQ(mode[3], 1080u);
    const auto edid = guest_.command(GpuDevice::kCmdGetEdid, GpuTestGuest::words(0, 0), 1056);
    const uint8_t* timing = edid.payload.data() + 8 + 54;
    EXPECT_EQ(timing[2] | ((timing[4] >> 4) << 8), 1920);
    // Section 5.7.4.1: events_clear is write-to-clear.
    const uint32_t clear = GpuDevice::kEventDisplay;
    guest_.device.write_config(4, std::span(reinterpret_cast<const uint8_t*>(&clear), 4));
    EXPECT_EQ(guest_.device.events_read(), 0u);
    // Out of range or the same size: refused, or no news.
    EXPECT_FALSE(guest_.device.set_preferred_size(1, 800, 600));
    EXPECT_FALSE(guest_.device.set_preferred_size(0, 10, 600));
    EXPECT_FALSE(guest_.device.set_preferred_size(0, 800, 9000));
    EXPECT_TRUE(guest_.device.set_preferred_size(0, 1920, 1080));
    EXPECT_EQ(guest_.interrupt.config_changes, 1);
}

TEST_F(GpuTest, CursorShapeAndMoves) {
    auto framebuffer = guest_.make_framebuffer(64, 64, 5);
    ASSERT_EQ(guest_.create_2d(9, GpuDevice::kFormatB8G8R8A8, 64, 64), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.attach(9, framebuffer.entries), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.transfer(9, 0, 0, 64, 64, 0), GpuDevice::kRespOkNoData);
    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 100, 200, 9, 3, 4);
    ASSERT_EQ(display_.events.size(), 1u);
    auto event = display_.events[0];
    EXPECT_EQ(event.kind, RecordingDisplay::Event::Cursor);
    ASSERT_TRUE(event.has_shape);
    EXPECT_TRUE(event.position.visible);
    EXPECT_EQ(event.position.x, 100);
    EXPECT_EQ(event.position.y, 200);
    EXPECT_EQ(event.shape.width, 64u);
    EXPECT_EQ(event.shape.hot_x, 3u);
    EXPECT_EQ(event.shape.hot_y, 4u);
    ASSERT_EQ(event.shape.pixels.size(), 64u * 64 * 4);
    EXPECT_EQ(pixel(event.shape.pixels, 256, 10, 20), GpuTestGuest::pattern(10, 20, 5));
    EXPECT_EQ(guest_.driver.queue(1).used_index(), 1);

    guest_.cursor_command(GpuDevice::kCmdMoveCursor, 0, -5, 7);
    ASSERT_EQ(display_.events.size(), 2u);
    EXPECT_FALSE(display_.events[1].has_shape);
    EXPECT_EQ(display_.events[1].position.x, -5);
    EXPECT_TRUE(display_.events[1].position.visible);

    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 1, 1, 0);  // resource 0 hides it
    ASSERT_EQ(display_.events.size(), 3u);
    EXPECT_FALSE(display_.events[2].position.visible);

    // Too large, unknown, or on a scanout that does not exist: ignored.
    ASSERT_EQ(guest_.create_2d(10, kXrgb, 65, 64), GpuDevice::kRespOkNoData);
    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 1, 1, 10);
    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 1, 1, 11);
    guest_.cursor_command(GpuDevice::kCmdMoveCursor, 3, 1, 1);
    EXPECT_EQ(display_.events.size(), 3u);
    EXPECT_EQ(guest_.driver.queue(1).used_index(), 6);
}

// ---- hostile requests ------------------------------------------------------

struct Snapshot {
    size_t resources;
    uint64_t memory;
    size_t display_events;
    std::vector<uint8_t> pixels;
    bool operator==(const Snapshot&) const = default;
};

class GpuRefuses : public GpuTest {
protected:
    void SetUp() override {
        GpuTest::SetUp();
        framebuffer_ = make_resource(1, 32, 16);
        ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, 32, 16), GpuDevice::kRespOkNoData);
        ASSERT_EQ(guest_.create_2d(2, kXrgb, 8, 8), GpuDevice::kRespOkNoData);  // no backing
        guest_.draw(framebuffer_, 99);  // a transfer that wrongly ran would show this
        before_ = snapshot();
    }
    Snapshot snapshot() const {
        return {guest_.device.resource_count(), guest_.device.host_memory_bytes(), display_.events.size(),
                guest_.device.resource_pixels(1)};
    }
    void expect_unchanged() { EXPECT_TRUE(snapshot() == before_) << "a refused request changed the device"; }

    GpuTestGuest::Framebuffer framebuffer_;
    Snapshot before_;
};

TEST_F(GpuRefuses, BadResourceIds) {
    EXPECT_EQ(guest_.create_2d(0, kXrgb, 8, 8), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.create_2d(1, kXrgb, 8, 8), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.unref(7), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.attach(7, framebuffer_.entries), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.transfer(7, 0, 0, 1, 1, 0), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.set_scanout(0, 7, 0, 0, 1, 1), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.flush(7, 0, 0, 1, 1), GpuDevice::kRespErrInvalidResourceId);
    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceDetachBacking, GpuTestGuest::words(7, 0)).header.type,
              GpuDevice::kRespErrInvalidResourceId);
    expect_unchanged();
}

TEST_F(GpuRefuses, BadScanoutIds) {
    EXPECT_EQ(guest_.set_scanout(1, 1, 0, 0, 32, 16), GpuDevice::kRespErrInvalidScanoutId);
    EXPECT_EQ(guest_.set_scanout(0xffffffff, 1, 0, 0, 32, 16), GpuDevice::kRespErrInvalidScanoutId);
    EXPECT_EQ(guest_.set_scanout(16, 0, 0, 0, 0, 0), GpuDevice::kRespErrInvalidScanoutId);
    expect_unchanged();
}

TEST_F(GpuRefuses, RectanglesOutOfBounds) {
    // Transfers.
    EXPECT_EQ(guest_.transfer(1, 0, 0, 33, 16, 0), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.transfer(1, 0, 1, 32, 16, 0), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.transfer(1, 0xffffffff, 0, 2, 1, 0), GpuDevice::kRespErrInvalidParameter);  // x + w wraps
    EXPECT_EQ(guest_.transfer(1, 0, 0xfffffff0, 1, 0x20, 0), GpuDevice::kRespErrInvalidParameter);
    // A rectangle inside the resource whose source runs past the backing.
    EXPECT_EQ(guest_.transfer(1, 0, 15, 32, 1, 15 * 128 + 4), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.transfer(1, 0, 0, 1, 1, 32 * 16 * 4), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.transfer(1, 0, 0, 1, 1, ~0ull - 2), GpuDevice::kRespErrInvalidParameter);  // offset + span wraps
    // Scanouts.
    EXPECT_EQ(guest_.set_scanout(0, 1, 1, 0, 32, 16), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.set_scanout(0, 1, 0, 0, 0, 16), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.set_scanout(0, 1, 0x80000000, 0x80000000, 0x80000000, 0x80000000), GpuDevice::kRespErrInvalidParameter);
    // Flushes.
    EXPECT_EQ(guest_.flush(1, 30, 0, 3, 1), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.flush(1, 0, 0xffffffff, 1, 2), GpuDevice::kRespErrInvalidParameter);
    expect_unchanged();
}

TEST_F(GpuRefuses, EnormousSizes) {
    EXPECT_EQ(guest_.create_2d(3, kXrgb, 0, 8), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.create_2d(3, kXrgb, 8, 0), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.create_2d(3, kXrgb, 0xffffffff, 0xffffffff), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.create_2d(3, kXrgb, 0x10000, 1), GpuDevice::kRespErrInvalidParameter);
    // 16384 x 16384 x 4 = 1 GiB: allowed dimensions, beyond the 256 MiB budget.
    EXPECT_EQ(guest_.create_2d(3, kXrgb, 16384, 16384), GpuDevice::kRespErrOutOfMemory);
    EXPECT_EQ(guest_.create_2d(3, 12345, 8, 8), GpuDevice::kRespErrInvalidParameter);  // unknown format
    EXPECT_EQ(guest_.attach(1, {}), GpuDevice::kRespErrUnspec) << "already attached";
    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceAttachBacking, GpuTestGuest::words(2, 1u << 20)).header.type,
              GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceAttachBacking, GpuTestGuest::words(2, 0)).header.type,
              GpuDevice::kRespErrInvalidParameter);
    // Four entries announced, one given.
    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceAttachBacking, GpuTestGuest::words(2, 4), 24,
                             GpuTestGuest::entries({framebuffer_.entries[0]}))
                  .header.type,
              GpuDevice::kRespErrUnspec);
    expect_unchanged();
    // The budget holds across many resources: 256 MiB / 4 MiB, then out of memory.
    uint32_t id = 100;
    uint32_t last = GpuDevice::kRespOkNoData;
    for (int i = 0; i < 80 && last == GpuDevice::kRespOkNoData; ++i) last = guest_.create_2d(id++, kXrgb, 1024, 1023);
    EXPECT_EQ(last, GpuDevice::kRespErrOutOfMemory);
    EXPECT_LE(guest_.device.host_memory_bytes(), 256ull << 20);
}

TEST_F(GpuRefuses, BackingOutsideGuestRam) {
    const uint64_t end = guest_.driver.memory_end();
    EXPECT_EQ(guest_.attach(2, {{end, 4096, 0}}), GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.attach(2, {{end - 100, 4096, 0}}), GpuDevice::kRespErrInvalidParameter);  // straddles the end
    EXPECT_EQ(guest_.attach(2, {{~0ull - 10, 4096, 0}}), GpuDevice::kRespErrInvalidParameter);  // wraps
    EXPECT_EQ(guest_.attach(2, {framebuffer_.entries[0], {1ull << 40, 256, 0}}), GpuDevice::kRespErrInvalidParameter);
    expect_unchanged();
    // Nothing was attached: the resource still refuses transfers for lack of backing.
    EXPECT_EQ(guest_.transfer(2, 0, 0, 8, 8, 0), GpuDevice::kRespErrUnspec);
    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceDetachBacking, GpuTestGuest::words(2, 0)).header.type,
              GpuDevice::kRespErrUnspec);
}

TEST_F(GpuRefuses, MalformedRequests) {
    // Shorter than the header, shorter than the body, unknown, 3D, capsets.
    auto& queue = guest_.driver.queue(0);
    const uint64_t response = guest_.driver.fill(24, 0);
    queue.add_chain({{guest_.driver.put(std::vector<uint8_t>(10, 0)), 10, false}, {response, 24, true}});
    guest_.device.queue_notify(0);
    testing::GpuHeader header;
    guest_.driver.memory()->read_object(GuestAddress{response}, header);
    EXPECT_EQ(header.type, GpuDevice::kRespErrUnspec);

    EXPECT_EQ(guest_.command(GpuDevice::kCmdResourceCreate2d, GpuTestGuest::words(5, kXrgb)).header.type,
              GpuDevice::kRespErrUnspec);
    EXPECT_EQ(guest_.command(0x0999, {}).header.type, GpuDevice::kRespErrUnspec);
    EXPECT_EQ(guest_.command(0x0200, {}).header.type, GpuDevice::kRespErrUnspec);  // CTX_CREATE
    EXPECT_EQ(guest_.command(GpuDevice::kCmdGetCapsetInfo, GpuTestGuest::words(0, 0), 40).header.type,
              GpuDevice::kRespErrInvalidParameter);
    EXPECT_EQ(guest_.command(GpuDevice::kCmdUpdateCursor, std::vector<uint8_t>(32, 0)).header.type,
              GpuDevice::kRespErrUnspec);
    // A response buffer too small for the display information: not run, ERR_UNSPEC.
    EXPECT_EQ(guest_.command(GpuDevice::kCmdGetDisplayInfo, {}, 100).header.type, GpuDevice::kRespErrUnspec);
    // No room even for the header: used length 0, the queue keeps going.
    const auto none = guest_.command(GpuDevice::kCmdGetDisplayInfo, {}, 0);
    EXPECT_EQ(none.used_length, 0u);
    EXPECT_EQ(guest_.create_2d(6, kXrgb, 8, 8), GpuDevice::kRespOkNoData);
    EXPECT_TRUE(guest_.interrupt.device_errors.empty());
}

TEST_F(GpuTest, BrokenRingStopsTheDeviceUntilReset) {
    auto& queue = guest_.driver.queue(0);
    queue.add_chain({{guest_.driver.memory_end() + 4096, 24, false}});
    guest_.device.queue_notify(0);
    ASSERT_EQ(guest_.interrupt.device_errors.size(), 1u);
    EXPECT_EQ(guest_.interrupt.device_errors[0].rfind("virtio-gpu: ", 0), 0u);
    EXPECT_EQ(guest_.create_2d(1, kXrgb, 8, 8), 0u) << "no answer while stopped";
    EXPECT_EQ(guest_.interrupt.device_errors.size(), 1u);
}

TEST_F(GpuTest, ResetDropsResourcesAndTurnsScanoutsOff) {
    make_resource(1, 16, 16);
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, 16, 16), GpuDevice::kRespOkNoData);
    ASSERT_GT(guest_.device.host_memory_bytes(), 0u);
    display_.events.clear();
    guest_.device.reset();
    EXPECT_EQ(guest_.device.resource_count(), 0u);
    EXPECT_EQ(guest_.device.host_memory_bytes(), 0u);
    ASSERT_EQ(display_.events.size(), 1u);
    EXPECT_EQ(display_.events[0].kind, RecordingDisplay::Event::Disable);
}

TEST_F(GpuTest, ReplayTellsANewDisplayWhatIsShown) {
    make_resource(1, 16, 16);
    ASSERT_EQ(guest_.set_scanout(0, 1, 0, 0, 16, 16), GpuDevice::kRespOkNoData);
    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 3, 4, 1);
    RecordingDisplay fresh;
    guest_.device.replay(fresh);
    ASSERT_EQ(fresh.events.size(), 2u);
    EXPECT_EQ(fresh.events[0].kind, RecordingDisplay::Event::Surface);
    EXPECT_EQ(fresh.events[0].surface.width, 16u);
    EXPECT_EQ(fresh.events[1].kind, RecordingDisplay::Event::Cursor);
    EXPECT_EQ(fresh.events[1].position.x, 3);
    EXPECT_TRUE(fresh.events[1].has_shape);
}

}  // namespace
}  // namespace atl::vmm::virtio
