// The local-viewer API: atoll-display on a private dbus-daemon, viewers as
// sdbus-c++ proxies. Pixels come through the surface descriptor; damage,
// surface and cursor changes as signals; input and resize as methods.
#include "fake_vmm.h"
#include "harness.h"

#include <atoll/display/dbus_api.h>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/input-event-codes.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

namespace atl::display::testing {
namespace {

using nlohmann::json;
namespace api = atl::display::dbus;
using Rects = std::vector<sdbus::Struct<uint32_t, uint32_t, uint32_t, uint32_t>>;
constexpr const char* kDisplay = api::kDisplayInterface;

// What one viewer heard, with a way to wait for it.
struct Heard {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<Rects> damage;
    std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> surfaces;  // width, height, serial
    std::vector<bool> cursor_shape_changes;
    std::vector<std::string> removed;

    template <class Predicate>
    bool wait(Predicate predicate, std::chrono::milliseconds timeout = 5s) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, timeout, [&] { return predicate(*this); });
    }
};

class Viewer {
public:
    Viewer(const std::string& vm) {
        connection_ = sdbus::createSessionBusConnection();
        display_ = sdbus::createProxy(*connection_, api::kBusName, api::object_path(vm));
        manager_ = sdbus::createProxy(*connection_, api::kBusName, api::kManagerPath);
        display_->uponSignal("Damage").onInterface(api::kDisplayInterface).call([this](uint32_t, const Rects& rects) {
            std::lock_guard lock(heard.mutex);
            heard.damage.push_back(rects);
            heard.changed.notify_all();
        });
        display_->uponSignal("SurfaceChanged")
            .onInterface(api::kDisplayInterface)
            .call([this](uint32_t, uint32_t width, uint32_t height, uint32_t, uint64_t serial) {
                std::lock_guard lock(heard.mutex);
                heard.surfaces.emplace_back(width, height, serial);
                heard.changed.notify_all();
            });
        display_->uponSignal("CursorChanged")
            .onInterface(api::kDisplayInterface)
            .call([this](uint32_t, bool, int32_t, int32_t, bool shape_changed) {
                std::lock_guard lock(heard.mutex);
                heard.cursor_shape_changes.push_back(shape_changed);
                heard.changed.notify_all();
            });
        manager_->uponSignal("DisplayRemoved")
            .onInterface(api::kManagerInterface)
            .call([this](const std::string& name, const sdbus::ObjectPath&) {
                std::lock_guard lock(heard.mutex);
                heard.removed.push_back(name);
                heard.changed.notify_all();
            });
        display_->finishRegistration();
        manager_->finishRegistration();
        connection_->enterEventLoopAsync();
    }
    ~Viewer() {
        connection_->leaveEventLoop();
        display_.reset();
        manager_.reset();
    }

    sdbus::IProxy& display() { return *display_; }
    sdbus::IProxy& manager() { return *manager_; }
    Heard heard;

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> display_, manager_;
};

class DbusTest : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string bus = "unix:path=" + dir_.path() + "/bus";
        dbus_daemon_ = Process::start({"/usr/bin/dbus-daemon", "--session", "--nofork", "--nopidfile",
                                       "--address=" + bus},
                                      dir_.path() + "/dbus-daemon.log");
        ASSERT_TRUE(dbus_daemon_);
        for (int i = 0; i < 250 && !std::filesystem::exists(dir_.path() + "/bus"); ++i)
            std::this_thread::sleep_for(20ms);
        setenv("DBUS_SESSION_BUS_ADDRESS", bus.c_str(), 1);
        server_ = Process::start({ATOLL_DISPLAY_BINARY, "--listen", dir_.path() + "/display.sock", "--state-dir",
                                  dir_.path() + "/state", "--vnc-port-base", std::to_string(free_tcp_port()),
                                  "--dbus", "session"},
                                 dir_.path() + "/atoll-display.log", {{"DBUS_SESSION_BUS_ADDRESS", bus}});
        ASSERT_TRUE(server_);
        vmm_ = FakeVmm::connect(dir_.path() + "/display.sock");
        ASSERT_TRUE(vmm_);
        ASSERT_TRUE(vmm_->hello("web-1"));
        surface_ = SharedSurface::create(320, 200, 1344, 4096 + 256, F_SEAL_SHRINK | F_SEAL_GROW);
        surface_->fill(1);
        ASSERT_TRUE(vmm_->send_surface(*surface_));
        ASSERT_TRUE(wait_for_display("web-1"));
    }

    void TearDown() override {
        if (server_) {
            EXPECT_EQ(server_->stop(), 0);
        }
        if (HasFailure() || getenv("ATOLL_TEST_SHOW_LOG"))
            std::cerr << "atoll-display log:\n" << read_file(dir_.path() + "/atoll-display.log");
        server_.reset();
        dbus_daemon_.reset();
        unsetenv("DBUS_SESSION_BUS_ADDRESS");
    }

    // Until ListDisplays reports the VM and it shows a surface (the link is asynchronous).
    bool wait_for_display(const std::string& name) {
        auto connection = sdbus::createSessionBusConnection();
        auto manager = sdbus::createProxy(*connection, api::kBusName, api::kManagerPath);
        auto display = sdbus::createProxy(*connection, api::kBusName, api::object_path(name));
        manager->finishRegistration();
        display->finishRegistration();
        bool listed = false;
        for (int i = 0; i < 250; ++i) {
            try {
                if (!listed) {
                    std::vector<sdbus::Struct<std::string, std::string, sdbus::ObjectPath>> displays;
                    manager->callMethod("ListDisplays").onInterface(api::kManagerInterface).storeResultsTo(displays);
                    for (const auto& entry : displays)
                        listed |= std::get<0>(entry) == name && std::string(std::get<2>(entry)) == api::object_path(name);
                }
                if (listed) {
                    get_surface(*display);
                    return true;
                }
            } catch (const sdbus::Error&) {
            }
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    struct Surface {
        sdbus::UnixFd fd;
        uint32_t width = 0, height = 0, stride = 0;
        uint64_t offset = 0, serial = 0;
        std::string format;
    };
    static Surface get_surface(sdbus::IProxy& display) {
        Surface surface;
        display.callMethod("GetSurface")
            .onInterface(api::kDisplayInterface)
            .withArguments(uint32_t{0})
            .storeResultsTo(surface.fd, surface.width, surface.height, surface.stride, surface.offset, surface.format,
                            surface.serial);
        return surface;
    }

    // Maps what GetSurface handed out and compares every pixel.
    static bool surface_shows(const Surface& surface, uint32_t seed) {
        const size_t bytes = surface.offset + size_t{surface.stride} * surface.height;
        void* map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, surface.fd.get(), 0);
        if (map == MAP_FAILED) return false;
        bool same = true;
        for (uint32_t y = 0; y < surface.height && same; ++y)
            for (uint32_t x = 0; x < surface.width && same; ++x) {
                uint32_t value;
                memcpy(&value, static_cast<uint8_t*>(map) + surface.offset + size_t{y} * surface.stride + x * 4, 4);
                same = (value & 0xffffff) == pattern_pixel(x, y, seed);
            }
        munmap(map, bytes);
        return same;
    }

    TempDir dir_;
    std::unique_ptr<Process> dbus_daemon_, server_;
    std::unique_ptr<FakeVmm> vmm_;
    std::unique_ptr<SharedSurface> surface_;
};

TEST_F(DbusTest, GetSurfaceHandsOutTheGuestsPixels) {
    Viewer viewer("web-1");
    const Surface surface = get_surface(viewer.display());
    EXPECT_EQ(surface.width, 320u);
    EXPECT_EQ(surface.height, 200u);
    EXPECT_EQ(surface.stride, 1344u);
    EXPECT_EQ(surface.offset, 4096u + 256);
    EXPECT_EQ(surface.format, "XRGB8888");
    EXPECT_TRUE(surface_shows(surface, 1));
    // Read-only for the viewer.
    EXPECT_EQ(fcntl(surface.fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
    EXPECT_NE(ftruncate(surface.fd.get(), 0), 0);
}

TEST_F(DbusTest, EveryViewerHearsDamageAndNewSurfaces) {
    Viewer first("web-1"), second("web-1");
    // Signals are matched once the proxies are registered; a round trip makes sure.
    get_surface(first.display());
    get_surface(second.display());
    surface_->fill_rect(10, 20, 30, 40, 2);
    ASSERT_TRUE(vmm_->send_damage(10, 20, 30, 40));
    for (Viewer* viewer : {&first, &second}) {
        ASSERT_TRUE(viewer->heard.wait([](Heard& heard) { return !heard.damage.empty(); }));
        const auto& rect = viewer->heard.damage.front().front();
        EXPECT_EQ(std::get<0>(rect), 10u);
        EXPECT_EQ(std::get<1>(rect), 20u);
        EXPECT_EQ(std::get<2>(rect), 30u);
        EXPECT_EQ(std::get<3>(rect), 40u);
    }

    auto bigger = SharedSurface::create(640, 400, 2560, 0, F_SEAL_SHRINK);
    bigger->fill(3);
    ASSERT_TRUE(vmm_->send_surface(*bigger));
    for (Viewer* viewer : {&first, &second}) {
        // (The first surface's signal may reach a viewer too, if it subscribed early enough.)
        ASSERT_TRUE(viewer->heard.wait([](Heard& heard) {
            return !heard.surfaces.empty() && std::get<0>(heard.surfaces.back()) == 640;
        }));
        EXPECT_EQ(std::get<1>(viewer->heard.surfaces.back()), 400u);
        const Surface surface = get_surface(viewer->display());
        EXPECT_EQ(surface.serial, std::get<2>(viewer->heard.surfaces.back()));
        EXPECT_TRUE(surface_shows(surface, 3));
    }
}

TEST_F(DbusTest, InputMethodsReachTheVmm) {
    Viewer viewer("web-1");
    auto& display = viewer.display();
    display.callMethod("SendKey").onInterface(kDisplay).withArguments(uint32_t{KEY_ENTER}, true);
    auto key = vmm_->wait_for("key");
    ASSERT_TRUE(key);
    EXPECT_EQ(*key, (json{{"type", "key"}, {"code", KEY_ENTER}, {"pressed", true}}));

    uint32_t code = 0;
    display.callMethod("SendKeysym").onInterface(kDisplay).withArguments(uint32_t{'q'}, false)
        .storeResultsTo(code);
    EXPECT_EQ(code, uint32_t{KEY_Q});
    key = vmm_->wait_for("key");
    ASSERT_TRUE(key);
    EXPECT_EQ(*key, (json{{"type", "key"}, {"code", KEY_Q}, {"pressed", false}}));

    display.callMethod("SendPointer").onInterface(kDisplay)
        .withArguments(uint32_t{100}, uint32_t{32767}, uint32_t{1});
    auto pointer = vmm_->wait_for("pointer");
    ASSERT_TRUE(pointer);
    EXPECT_EQ(*pointer, (json{{"type", "pointer"}, {"x", 100}, {"y", 32767}, {"buttons", 1}}));

    display.callMethod("SendWheel").onInterface(kDisplay).withArguments(int32_t{-2});
    auto wheel = vmm_->wait_for("wheel");
    ASSERT_TRUE(wheel);
    EXPECT_EQ((*wheel)["dy"], -2);

    display.callMethod("SendMotion").onInterface(kDisplay)
        .withArguments(int32_t{5}, int32_t{-7}, uint32_t{0});
    auto motion = vmm_->wait_for("motion");
    ASSERT_TRUE(motion);
    EXPECT_EQ(*motion, (json{{"type", "motion"}, {"dx", 5}, {"dy", -7}, {"buttons", 0}}));

    display.callMethod("RequestResize").onInterface(kDisplay)
        .withArguments(uint32_t{0}, uint32_t{1280}, uint32_t{800});
    auto resize = vmm_->wait_for("resize");
    ASSERT_TRUE(resize);
    EXPECT_EQ(*resize, (json{{"type", "resize"}, {"scanout", 0}, {"width", 1280}, {"height", 800}}));
}

TEST_F(DbusTest, RefusesOutOfRangeInput) {
    Viewer viewer("web-1");
    auto expect_invalid = [&](auto&& call) {
        try {
            call();
            ADD_FAILURE() << "accepted";
        } catch (const sdbus::Error& error) {
            EXPECT_EQ(error.getName(), api::kErrorInvalidArgument) << error.getMessage();
        }
    };
    auto& display = viewer.display();
    expect_invalid([&] { display.callMethod("SendKey").onInterface(kDisplay).withArguments(uint32_t{0}, true); });
    // Mouse buttons are not keys: atoll-vmm's keyboard has none.
    expect_invalid([&] { display.callMethod("SendKey").onInterface(kDisplay).withArguments(uint32_t{BTN_LEFT}, true); });
    expect_invalid([&] {
        display.callMethod("SendPointer").onInterface(kDisplay).withArguments(uint32_t{40000}, uint32_t{0}, uint32_t{0});
    });
    expect_invalid([&] {
        display.callMethod("RequestResize").onInterface(kDisplay).withArguments(uint32_t{0}, uint32_t{10}, uint32_t{10});
    });
    expect_invalid([&] {
        display.callMethod("RequestResize").onInterface(kDisplay).withArguments(uint32_t{1}, uint32_t{800}, uint32_t{600});
    });
    expect_invalid([&] { display.callMethod("GetCursor").onInterface(kDisplay).withArguments(uint32_t{3}); });
    // Nothing reached the VMM.
    EXPECT_FALSE(vmm_->receive(300ms));
}

TEST_F(DbusTest, CursorShapeThroughGetCursor) {
    Viewer viewer("web-1");
    get_surface(viewer.display());
    std::vector<uint32_t> argb(8 * 8, 0x80112233);
    argb[9] = 0xff445566;
    ASSERT_TRUE(vmm_->send_cursor(12, 34, true, 8, 8, 2, 5, argb));
    ASSERT_TRUE(viewer.heard.wait([](Heard& heard) { return !heard.cursor_shape_changes.empty(); }));
    EXPECT_TRUE(viewer.heard.cursor_shape_changes.front());
    bool visible = false;
    int32_t x = 0, y = 0;
    uint32_t hot_x = 0, hot_y = 0, width = 0, height = 0;
    std::vector<uint8_t> pixels;
    viewer.display()
        .callMethod("GetCursor")
        .onInterface(kDisplay)
        .withArguments(uint32_t{0})
        .storeResultsTo(visible, x, y, hot_x, hot_y, width, height, pixels);
    EXPECT_TRUE(visible);
    EXPECT_EQ(x, 12);
    EXPECT_EQ(y, 34);
    EXPECT_EQ(hot_x, 2u);
    EXPECT_EQ(hot_y, 5u);
    EXPECT_EQ(width, 8u);
    ASSERT_EQ(pixels.size(), 8u * 8 * 4);
    EXPECT_EQ(pixels[9 * 4 + 0], 0x66);  // little-endian ARGB
    EXPECT_EQ(pixels[9 * 4 + 3], 0xff);
}

TEST_F(DbusTest, ReportsTheVncAddressLikeTheStateFile) {
    Viewer viewer("web-1");
    const auto port = viewer.display().getProperty("VncPort").onInterface(kDisplay).get<uint16_t>();
    const auto host = viewer.display().getProperty("VncHost").onInterface(kDisplay).get<std::string>();
    const json state = json::parse(read_file(dir_.path() + "/state/web-1.json"));
    EXPECT_EQ(port, state["vnc"]["port"].get<uint16_t>());
    EXPECT_EQ(host, state["vnc"]["host"].get<std::string>());
    EXPECT_EQ(viewer.display().getProperty("Name").onInterface(kDisplay).get<std::string>(), "web-1");
}

TEST_F(DbusTest, TheObjectGoesWithTheVm) {
    Viewer viewer("web-1");
    get_surface(viewer.display());
    vmm_.reset();
    ASSERT_TRUE(viewer.heard.wait([](Heard& heard) { return !heard.removed.empty(); }));
    EXPECT_EQ(viewer.heard.removed.front(), "web-1");
    EXPECT_THROW(get_surface(viewer.display()), sdbus::Error);
}

}  // namespace
}  // namespace atl::display::testing
