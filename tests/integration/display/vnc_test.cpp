// atoll-display as a process, a fake VMM on its link socket, and a real VNC
// client (libvncclient): pixels, input, resize, cursor, password, VeNCrypt,
// and one VM's failure leaving the others alone.
#include "fake_vmm.h"
#include "harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/input-event-codes.h>
#include <nlohmann/json.hpp>
#include <rfb/keysym.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#ifndef ATOLL_DISPLAY_BINARY
#error "ATOLL_DISPLAY_BINARY: path of the atoll-display executable"
#endif

namespace atl::display::testing {
namespace {

using nlohmann::json;

class DisplayServerTest : public ::testing::Test {
protected:
    void start_server(const std::vector<std::string>& extra = {}) {
        port_base_ = free_tcp_port();
        std::vector<std::string> argv = {ATOLL_DISPLAY_BINARY,
                                         "--listen", socket_path(),
                                         "--state-dir", dir_.path() + "/state",
                                         "--vnc-port-base", std::to_string(port_base_),
                                         "--vnc-port-count", "20",
                                         "--dbus", "none"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        server_ = Process::start(argv, log_path());
        ASSERT_TRUE(server_);
    }

    void TearDown() override {
        if (server_) {
            // atoll-display ends cleanly on SIGTERM.
            EXPECT_EQ(server_->stop(), 0) << read_file(log_path());
            server_.reset();
        }
        if (HasFailure() || getenv("ATOLL_TEST_SHOW_LOG"))
            std::cerr << "atoll-display log:\n" << read_file(log_path());
    }

    std::string socket_path() const { return dir_.path() + "/display.sock"; }
    std::string log_path() const { return dir_.path() + "/atoll-display.log"; }
    std::string state_path(const std::string& vm) const { return dir_.path() + "/state/" + vm + ".json"; }

    std::unique_ptr<FakeVmm> vm_with_surface(const std::string& name, std::unique_ptr<SharedSurface>& surface,
                                             uint32_t width = 640, uint32_t height = 480, uint32_t seed = 1) {
        auto vmm = FakeVmm::connect(socket_path());
        EXPECT_TRUE(vmm);
        if (!vmm) return nullptr;
        EXPECT_TRUE(vmm->hello(name));
        // A padded stride and an offset, as virtio-gpu resources may have.
        surface = SharedSurface::create(width, height, width * 4 + 64, 8192, F_SEAL_SHRINK | F_SEAL_GROW);
        surface->fill(seed);
        EXPECT_TRUE(vmm->send_surface(*surface));
        return vmm;
    }

    // The VM's VNC port, from the state file atolld reads.
    uint16_t vnc_port(const std::string& vm) {
        for (int i = 0; i < 250; ++i) {
            const json state = json::parse(read_file(state_path(vm)), nullptr, false);
            if (!state.is_discarded() && state["vnc"].is_object()) {
                EXPECT_EQ(state["vnc"]["host"], "127.0.0.1");
                return state["vnc"]["port"].get<uint16_t>();
            }
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "no state file for " << vm;
        return 0;
    }

    static std::function<uint32_t(uint32_t, uint32_t)> pattern(uint32_t seed) {
        return [seed](uint32_t x, uint32_t y) { return pattern_pixel(x, y, seed); };
    }

    TempDir dir_;
    uint16_t port_base_ = 0;
    std::unique_ptr<Process> server_;
};

TEST_F(DisplayServerTest, VncClientSeesTheGuestPixelsAndTheirUpdates) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));

    // The guest redraws a rectangle and flushes it.
    surface->fill_rect(100, 120, 50, 40, 2);
    ASSERT_TRUE(vmm->send_damage(100, 120, 50, 40));
    EXPECT_TRUE(client->wait_for_pixels(640, 480, [](uint32_t x, uint32_t y) {
        const bool inside = x >= 100 && x < 150 && y >= 120 && y < 160;
        return pattern_pixel(x, y, inside ? 2 : 1);
    }));
}

TEST_F(DisplayServerTest, SeveralVncClientsWatchOneVm) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto first = VncClient::connect(vnc_port("alpha"));
    auto second = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(first && second);
    ASSERT_TRUE(first->wait_for_pixels(640, 480, pattern(1)));
    ASSERT_TRUE(second->wait_for_pixels(640, 480, pattern(1)));
    surface->fill(5);
    ASSERT_TRUE(vmm->send_damage(0, 0, 640, 480));
    EXPECT_TRUE(first->wait_for_pixels(640, 480, pattern(5)));
    EXPECT_TRUE(second->wait_for_pixels(640, 480, pattern(5)));
}

TEST_F(DisplayServerTest, KeysReachTheVmmAsLinuxKeyCodes) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    const std::pair<uint32_t, int> keys[] = {{XK_a, KEY_A},         {XK_Shift_L, KEY_LEFTSHIFT}, {XK_A, KEY_A},
                                             {XK_exclam, KEY_1},    {XK_Return, KEY_ENTER},      {XK_F1, KEY_F1},
                                             {XK_KP_Enter, KEY_KPENTER}, {XK_Control_R, KEY_RIGHTCTRL},
                                             {XK_Left, KEY_LEFT}};
    for (const auto& [keysym, code] : keys) {
        for (bool down : {true, false}) {
            ASSERT_TRUE(SendKeyEvent(client->raw(), keysym, down ? TRUE : FALSE));
            auto key = vmm->wait_for("key");
            ASSERT_TRUE(key) << "keysym " << keysym;
            EXPECT_EQ((*key)["code"], code) << "keysym " << keysym;
            EXPECT_EQ((*key)["pressed"], down);
        }
    }
}

TEST_F(DisplayServerTest, PointerReachesTheVmmScaledToTheTablet) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    // The server scales to the surface it shows: let the client see it first.
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
    auto expect_pointer = [&](int x, int y, int mask, uint32_t abs_x, uint32_t abs_y, uint32_t buttons) {
        ASSERT_TRUE(SendPointerEvent(client->raw(), x, y, mask));
        auto pointer = vmm->wait_for("pointer");
        ASSERT_TRUE(pointer);
        EXPECT_EQ((*pointer)["x"], abs_x);
        EXPECT_EQ((*pointer)["y"], abs_y);
        EXPECT_EQ((*pointer)["buttons"], buttons);
    };
    expect_pointer(0, 0, 0, 0, 0, 0);
    expect_pointer(639, 479, 0, 32767, 32767, 0);
    expect_pointer(320, 240, 0, 320 * 32767 / 639, 240 * 32767 / 479, 0);
    expect_pointer(320, 240, rfbButton1Mask, 320 * 32767 / 639, 240 * 32767 / 479, 1);  // left
    expect_pointer(320, 240, rfbButton3Mask, 320 * 32767 / 639, 240 * 32767 / 479, 2);  // right
    expect_pointer(320, 240, rfbButton2Mask, 320 * 32767 / 639, 240 * 32767 / 479, 4);  // middle
    expect_pointer(320, 240, 0, 320 * 32767 / 639, 240 * 32767 / 479, 0);

    // Wheel: buttons 4 and 5, one step per press.
    ASSERT_TRUE(SendPointerEvent(client->raw(), 320, 240, rfbWheelUpMask));
    ASSERT_TRUE(SendPointerEvent(client->raw(), 320, 240, 0));
    auto up = vmm->wait_for("wheel");
    ASSERT_TRUE(up);
    EXPECT_EQ((*up)["dy"], 1);
    ASSERT_TRUE(SendPointerEvent(client->raw(), 320, 240, rfbWheelDownMask));
    ASSERT_TRUE(SendPointerEvent(client->raw(), 320, 240, 0));
    auto down = vmm->wait_for("wheel");
    ASSERT_TRUE(down);
    EXPECT_EQ((*down)["dy"], -1);
}

TEST_F(DisplayServerTest, KeysHeldByADepartingClientAreReleased) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    ASSERT_TRUE(SendKeyEvent(client->raw(), XK_Control_L, TRUE));
    ASSERT_TRUE(vmm->wait_for("key", 5s, [](const json& key) { return key["pressed"] == true; }));
    client.reset();
    auto released = vmm->wait_for("key", 5s, [](const json& key) { return key["pressed"] == false; });
    ASSERT_TRUE(released);
    EXPECT_EQ((*released)["code"], KEY_LEFTCTRL);
}

TEST_F(DisplayServerTest, DesktopSizeRequestBecomesResizeAndTheGuestsNewModeIsShown) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
    // libvncclient sends SetDesktopSize once the server told it the screen layout.
    ASSERT_TRUE(client->pump_until([&] { return client->raw()->screen.width != 0; }));
    ASSERT_TRUE(SendExtDesktopSize(client->raw(), 1024, 768));
    auto resize = vmm->wait_for("resize");
    ASSERT_TRUE(resize);
    EXPECT_EQ(*resize, (json{{"type", "resize"}, {"scanout", 0}, {"width", 1024}, {"height", 768}}));

    // The guest takes the mode: a new surface of that size.
    auto bigger = SharedSurface::create(1024, 768, 4096, 0, F_SEAL_SHRINK);
    bigger->fill(3);
    ASSERT_TRUE(vmm->send_surface(*bigger));
    EXPECT_TRUE(client->wait_for_pixels(1024, 768, pattern(3)));
    surface = std::move(bigger);
}

TEST_F(DisplayServerTest, SurfacesReplacedWhileClientsWatch) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    // Sizes change under a client that keeps reading; old surfaces are
    // closed by the VMM right away (the server holds its own mapping).
    for (uint32_t round = 0; round < 40; ++round) {
        const uint32_t width = round % 2 ? 800 : 640, height = round % 3 ? 600 : 480;
        auto next = SharedSurface::create(width, height, width * 4, 0, F_SEAL_SHRINK);
        next->fill(round);
        ASSERT_TRUE(vmm->send_surface(*next));
        surface = std::move(next);
        client->pump_until([] { return false; }, 20ms);
    }
    EXPECT_TRUE(client->wait_for_pixels(surface->width, surface->height, pattern(39)));
}

TEST_F(DisplayServerTest, ADisabledScanoutIsBlackAndComesBack) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
    ASSERT_TRUE(vmm->send({{"type", "disable"}, {"scanout", 0}}));
    ASSERT_TRUE(client->wait_for_pixels(640, 480, [](uint32_t, uint32_t) { return 0u; }));
    ASSERT_TRUE(vmm->send_surface(*surface));
    EXPECT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
}

TEST_F(DisplayServerTest, GuestCursorShapeReachesTheClient) {
    start_server();
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    auto client = VncClient::connect(vnc_port("alpha"));
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
    // 16x16: the left half opaque in a gradient, the right half transparent.
    std::vector<uint32_t> argb;
    for (uint32_t y = 0; y < 16; ++y)
        for (uint32_t x = 0; x < 16; ++x)
            argb.push_back(x < 8 ? (0xffu << 24 | (x * 30) << 16 | (y * 15) << 8 | 0x40) : 0x00ffffff);
    ASSERT_TRUE(vmm->send_cursor(10, 10, true, 16, 16, 3, 4, argb));
    ASSERT_TRUE(client->pump_until([&] { return client->cursor.has_value(); }));
    const auto& cursor = *client->cursor;
    EXPECT_EQ(cursor.width, 16);
    EXPECT_EQ(cursor.height, 16);
    EXPECT_EQ(cursor.hot_x, 3);
    EXPECT_EQ(cursor.hot_y, 4);
    for (int i = 0; i < 16 * 16; ++i) {
        const bool opaque = i % 16 < 8;
        EXPECT_EQ(cursor.mask[i], opaque ? 1 : 0) << i;
        if (opaque) {
            EXPECT_EQ(cursor.pixels[i], argb[i] & 0xffffff) << i;
        }
    }
}

TEST_F(DisplayServerTest, PasswordIsRequiredWhenConfigured) {
    const std::string password_file = dir_.path() + "/password";
    std::ofstream(password_file) << "s3cret\n";
    start_server({"--vnc-password-file", password_file});
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    const uint16_t port = vnc_port("alpha");
    VncClient::Options wrong;
    wrong.password = "guess";
    EXPECT_FALSE(VncClient::connect(port, wrong));
    VncClient::Options right;
    right.password = "s3cret";
    auto client = VncClient::connect(port, right);
    ASSERT_TRUE(client);
    EXPECT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
}

class VeNCryptTest : public DisplayServerTest {
protected:
    // A self-signed certificate for 127.0.0.1, made with openssl.
    void make_certificate() {
        cert_ = dir_.path() + "/cert.pem";
        key_ = dir_.path() + "/key.pem";
        const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                                    " -keyout " + key_ + " -out " + cert_ +
                                    " -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
                                    " >/dev/null 2>&1";
        ASSERT_EQ(system(command.c_str()), 0) << "openssl could not make a test certificate";
    }
    std::string cert_, key_;
};

TEST_F(VeNCryptTest, TlsClientSeesThePixels) {
    make_certificate();
    start_server({"--vnc-tls-cert", cert_, "--vnc-tls-key", key_});
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    const uint16_t port = vnc_port("alpha");
    // A client that cannot do VeNCrypt X.509 gets nothing.
    EXPECT_FALSE(VncClient::connect(port));

    VncClient::Options tls;
    tls.tls_ca_file = cert_;
    auto client = VncClient::connect(port, tls);
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
    surface->fill_rect(0, 0, 64, 64, 9);
    ASSERT_TRUE(vmm->send_damage(0, 0, 64, 64));
    EXPECT_TRUE(client->wait_for_pixels(640, 480, [](uint32_t x, uint32_t y) {
        return pattern_pixel(x, y, x < 64 && y < 64 ? 9 : 1);
    }));
    ASSERT_TRUE(SendKeyEvent(client->raw(), XK_z, TRUE));
    auto key = vmm->wait_for("key");
    ASSERT_TRUE(key);
    EXPECT_EQ((*key)["code"], KEY_Z);
}

TEST_F(VeNCryptTest, TlsWithPassword) {
    make_certificate();
    const std::string password_file = dir_.path() + "/password";
    std::ofstream(password_file) << "tls-pass\n";
    start_server({"--vnc-tls-cert", cert_, "--vnc-tls-key", key_, "--vnc-password-file", password_file});
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("alpha", surface);
    ASSERT_TRUE(vmm);
    const uint16_t port = vnc_port("alpha");
    VncClient::Options wrong;
    wrong.tls_ca_file = cert_;
    wrong.password = "nope";
    EXPECT_FALSE(VncClient::connect(port, wrong));
    VncClient::Options right = wrong;
    right.password = "tls-pass";
    auto client = VncClient::connect(port, right);
    ASSERT_TRUE(client);
    EXPECT_TRUE(client->wait_for_pixels(640, 480, pattern(1)));
}

TEST_F(DisplayServerTest, AMisbehavingVmmLosesOnlyItsOwnDisplay) {
    start_server();
    std::unique_ptr<SharedSurface> alpha_surface, beta_surface;
    auto alpha = vm_with_surface("alpha", alpha_surface);
    auto beta = vm_with_surface("beta", beta_surface, 320, 240, 4);
    ASSERT_TRUE(alpha && beta);
    const uint16_t alpha_port = vnc_port("alpha"), beta_port = vnc_port("beta");
    EXPECT_NE(alpha_port, beta_port);
    auto alpha_client = VncClient::connect(alpha_port);
    auto beta_client = VncClient::connect(beta_port);
    ASSERT_TRUE(alpha_client && beta_client);
    ASSERT_TRUE(alpha_client->wait_for_pixels(640, 480, pattern(1)));
    ASSERT_TRUE(beta_client->wait_for_pixels(320, 240, pattern(4)));

    // beta's VMM goes bad: a surface bigger than its memfd.
    auto lying = SharedSurface::create(1920, 1080, 7680, 0, F_SEAL_SHRINK, 4096);
    ASSERT_TRUE(beta->send_surface(*lying));
    EXPECT_TRUE(beta->closed_by_server());
    for (int i = 0; i < 250 && std::filesystem::exists(state_path("beta")); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(std::filesystem::exists(state_path("beta")));
    EXPECT_FALSE(tcp_port_open(beta_port));

    // alpha carries on: pixels, input.
    alpha_surface->fill(6);
    ASSERT_TRUE(alpha->send_damage(0, 0, 640, 480));
    EXPECT_TRUE(alpha_client->wait_for_pixels(640, 480, pattern(6)));
    ASSERT_TRUE(SendKeyEvent(alpha_client->raw(), XK_space, TRUE));
    auto key = alpha->wait_for("key");
    ASSERT_TRUE(key);
    EXPECT_EQ((*key)["code"], KEY_SPACE);
    EXPECT_TRUE(server_->running());

    // beta's VMM reconnects (as atoll-vmm does every 2 s) and gets its port back.
    auto beta_again = vm_with_surface("beta", beta_surface, 320, 240, 7);
    ASSERT_TRUE(beta_again);
    EXPECT_EQ(vnc_port("beta"), beta_port);
}

TEST_F(DisplayServerTest, FixedPortAndStateFile) {
    const uint16_t fixed = free_tcp_port();
    start_server({"--vnc-port", "gamma=" + std::to_string(fixed)});
    std::unique_ptr<SharedSurface> surface;
    auto vmm = vm_with_surface("gamma", surface);
    ASSERT_TRUE(vmm);
    EXPECT_EQ(vnc_port("gamma"), fixed);
    const json state = json::parse(read_file(state_path("gamma")));
    EXPECT_EQ(state["vm_name"], "gamma");
    EXPECT_EQ(state["vnc"]["tls"], false);
    EXPECT_EQ(state["vnc"]["password"], false);
    vmm.reset();
    for (int i = 0; i < 250 && std::filesystem::exists(state_path("gamma")); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(std::filesystem::exists(state_path("gamma")));
}

}  // namespace
}  // namespace atl::display::testing
