// Bytes per full-screen frame (issue 4, bench/display): the real
// atoll-display, a fake VMM redrawing an 800x600 screen of 16x16 flat-colour
// tiles that all change colour every frame (the content of bench/display's
// fbbench.c), and a real libvncclient asking for one encoding at a time, as
// bench/display's vncbench asks (compression level 2, no JPEG). Each frame
// is drawn, damaged as a whole and waited for pixel-exact at the client, so
// every frame is counted once; bytes are what the client's TCP socket
// received (TCP_INFO, every RFB byte).
//
// It prints one line per encoding (VNC-BANDWIDTH ...) and bounds what we
// send with Tight, the encoding TigerVNC-like viewers ask for first. With
// ATOLL_TEST_VNC_CONTENTS=1 it also measures Tight on other content.
#include "fake_vmm.h"
#include "harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <thread>

#ifndef ATOLL_DISPLAY_BINARY
#error "ATOLL_DISPLAY_BINARY: path of the atoll-display executable"
#endif

namespace atl::display::testing {
namespace {

using nlohmann::json;

constexpr uint32_t kWidth = 800, kHeight = 600;

// fbbench.c's frame: 16x16 tiles of flat colour, every tile new each frame.
uint32_t tile_pixel(uint32_t x, uint32_t y, uint32_t frame) {
    const uint32_t tx = x / 16, ty = y / 16;
    const uint32_t r = (tx * 16 + 4 * frame) & 0xff;
    const uint32_t g = (ty * 16 + 2 * frame) & 0xff;
    const uint32_t b = (tx + ty + frame) & 0xff;
    return r << 16 | g << 8 | b;
}

uint64_t bytes_received(rfbClient* client) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (getsockopt(client->sock, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return 0;
    return info.tcpi_bytes_received;
}

struct Measured {
    double bytes_per_frame = 0;
    double frames_per_s = 0;
};

class VncBandwidthTest : public ::testing::Test {
protected:
    void SetUp() override {
        const uint16_t port_base = free_tcp_port();
        server_ = Process::start({ATOLL_DISPLAY_BINARY, "--listen", socket_path(), "--state-dir",
                                  dir_.path() + "/state", "--vnc-port-base", std::to_string(port_base),
                                  "--vnc-port-count", "20", "--dbus", "none"},
                                 dir_.path() + "/atoll-display.log");
        ASSERT_TRUE(server_);
        vmm_ = FakeVmm::connect(socket_path());
        ASSERT_TRUE(vmm_);
        ASSERT_TRUE(vmm_->hello("bandwidth"));
        surface_ = SharedSurface::create(kWidth, kHeight, kWidth * 4, 0, F_SEAL_SHRINK | F_SEAL_GROW);
        ASSERT_TRUE(surface_);
        surface_->fill_with([](uint32_t x, uint32_t y) { return tile_pixel(x, y, 0); });
        ASSERT_TRUE(vmm_->send_surface(*surface_));
        for (int i = 0; i < 250 && !port_; ++i) {
            const json state = json::parse(read_file(dir_.path() + "/state/bandwidth.json"), nullptr, false);
            if (!state.is_discarded() && state["vnc"].is_object()) port_ = state["vnc"]["port"].get<uint16_t>();
            else std::this_thread::sleep_for(20ms);
        }
        ASSERT_NE(port_, 0);
    }

    void TearDown() override {
        if (server_) {
            EXPECT_EQ(server_->stop(), 0) << read_file(dir_.path() + "/atoll-display.log");
        }
    }

    // `frames` full-screen frames, each waited for, with `encodings` at `level`.
    using Content = uint32_t (*)(uint32_t x, uint32_t y, uint32_t frame);
    Measured measure(const std::string& encodings, int level, uint32_t frames, Content content = tile_pixel,
                     const char* content_name = "tiles") {
        VncClient::Options options;
        options.encodings = encodings;
        options.compress_level = level;
        auto client = VncClient::connect(port_, options);
        EXPECT_TRUE(client);
        if (!client) return {};
        EXPECT_TRUE(client->pump_until(
            [&] { return client->width() == static_cast<int>(kWidth) && client->updates > 0; }));

        // One frame unmeasured: the first frame of a content, the zlib streams' start.
        const auto one_frame = [&] {
            ++frame_;
            surface_->fill_with([&](uint32_t x, uint32_t y) { return content(x, y, frame_); });
            EXPECT_TRUE(vmm_->send_damage(0, 0, kWidth, kHeight));
            return client->wait_for_pixels(kWidth, kHeight,
                                           [&](uint32_t x, uint32_t y) { return content(x, y, frame_); });
        };
        EXPECT_TRUE(one_frame());
        const uint64_t before = bytes_received(client->raw());
        const auto start = std::chrono::steady_clock::now();
        for (uint32_t i = 0; i < frames; ++i)
            if (!one_frame()) {
                ADD_FAILURE() << encodings << ": frame " << frame_ << " never reached the client";
                return {};
            }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const uint64_t bytes = bytes_received(client->raw()) - before;
        Measured measured{static_cast<double>(bytes) / frames, frames / seconds};
        printf("VNC-BANDWIDTH content=%s encoding=%s level=%d frames=%u bytes_per_frame=%.0f kib_per_frame=%.2f "
               "fps=%.1f\n",
               content_name, encodings.c_str(), level, frames, measured.bytes_per_frame,
               measured.bytes_per_frame / 1024, measured.frames_per_s);
        fflush(stdout);
        return measured;
    }

    std::string socket_path() const { return dir_.path() + "/display.sock"; }

    TempDir dir_;
    std::unique_ptr<Process> server_;
    std::unique_ptr<FakeVmm> vmm_;
    std::unique_ptr<SharedSurface> surface_;
    uint16_t port_ = 0;
    uint32_t frame_ = 0;
};

TEST_F(VncBandwidthTest, FullScreenTileFramesPerEncoding) {
    constexpr uint32_t kFrames = 20;
    const Measured tight = measure("tight copyrect raw", 2, kFrames);
    measure("zrle copyrect raw", 2, kFrames);
    measure("zlib copyrect raw", 2, kFrames);
    measure("hextile copyrect raw", 2, kFrames);
    // libvncserver 0.9.14's own cut of a rectangle into Tight pieces sent
    // about 32 KiB per frame of this content; 80-row strips on the 16-row
    // grid about 20 KiB; 16-row strips (vnc_server.cpp,
    // rfbSendRectEncodingTight) about 15 KiB, as QEMU 7.2's Tight does.
    EXPECT_GT(tight.bytes_per_frame, 0);
    if (getenv("ATOLL_TEST_VNC_CONTENTS")) {
        // Other content, for comparison only: the integration tests' pattern
        // (a new colour every few pixels) and a flat screen.
        measure("tight copyrect raw", 2, kFrames, [](uint32_t x, uint32_t y, uint32_t frame) {
            return pattern_pixel(x, y, frame);
        }, "pattern");
        measure("tight copyrect raw", 2, kFrames, [](uint32_t, uint32_t, uint32_t frame) {
            return frame * 0x010203u & 0xffffffu;
        }, "flat");
    }
    EXPECT_LT(tight.bytes_per_frame, 18 * 1024);
}

}  // namespace
}  // namespace atl::display::testing
