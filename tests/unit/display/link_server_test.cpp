// The link server in-process (no VNC, no D-Bus): a VMM that breaks the
// protocol loses its own link and nothing else.
#include "fake_vmm.h"

#include <atoll/display/server.h>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/eventfd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace atl::display {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeVmm;
using testing::SharedSurface;

class LinkServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/atoll-display-test-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        directory_ = pattern;
        ServerOptions options;
        options.socket_path = directory_ + "/display.sock";
        options.state_dir = directory_ + "/state";
        options.vnc = false;
        auto server = Server::start(options);
        ASSERT_TRUE(server) << server.error().message;
        server_ = std::move(*server);
        thread_ = std::thread([this] { server_->run(); });
    }

    void TearDown() override {
        if (server_) server_->stop();
        if (thread_.joinable()) thread_.join();
        server_.reset();
        std::filesystem::remove_all(directory_);
    }

    std::unique_ptr<FakeVmm> connect() { return FakeVmm::connect(directory_ + "/display.sock"); }
    std::string state_file(const std::string& vm) { return directory_ + "/state/" + vm + ".json"; }

    // A VM that said hello and shows a surface.
    std::unique_ptr<FakeVmm> healthy_vm(const std::string& name) {
        auto vmm = connect();
        EXPECT_TRUE(vmm && vmm->hello(name));
        surface_ = SharedSurface::create(64, 48, 256, 0, F_SEAL_SHRINK | F_SEAL_GROW);
        surface_->fill(1);
        EXPECT_TRUE(vmm->send_surface(*surface_));
        return vmm;
    }

    // Runs `misbehave` on a fresh link next to a healthy VM: the misbehaving
    // link is closed, the healthy one keeps working.
    void expect_only_that_link_dropped(const std::function<void(FakeVmm&)>& misbehave) {
        auto good = healthy_vm("good");
        auto bad = connect();
        ASSERT_TRUE(bad);
        misbehave(*bad);
        EXPECT_TRUE(bad->closed_by_server(5s));
        EXPECT_TRUE(good->send_damage(0, 0, 8, 8));
        auto replacement = SharedSurface::create(32, 32, 128, 0, F_SEAL_SHRINK);
        EXPECT_TRUE(good->send_surface(*replacement));
        EXPECT_FALSE(good->closed_by_server(300ms));
        EXPECT_TRUE(std::filesystem::exists(state_file("good")));
    }

    std::string directory_;
    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::unique_ptr<SharedSurface> surface_;
};

TEST_F(LinkServerTest, WelcomesAHelloAndWritesTheStateFile) {
    auto vmm = connect();
    ASSERT_TRUE(vmm);
    ASSERT_TRUE(vmm->hello("web"));
    // Written right after the welcome.
    for (int i = 0; i < 100 && !std::filesystem::exists(state_file("web")); ++i) std::this_thread::sleep_for(20ms);
    std::ifstream file(state_file("web"));
    ASSERT_TRUE(file);
    const json state = json::parse(file);
    EXPECT_EQ(state["vm_name"], "web");
    EXPECT_TRUE(state["vnc"].is_null());  // VNC is off in this test
    vmm.reset();
    for (int i = 0; i < 100 && std::filesystem::exists(state_file("web")); ++i) std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(std::filesystem::exists(state_file("web")));
}

TEST_F(LinkServerTest, DropsALinkThatSendsGarbage) {
    expect_only_that_link_dropped([](FakeVmm& vmm) { vmm.send_raw(std::string("\x05\x00\x00\x00{{{{{", 9)); });
}

TEST_F(LinkServerTest, DropsALinkWithABadLength) {
    expect_only_that_link_dropped([](FakeVmm& vmm) { vmm.send_raw(std::string("\xff\xff\xff\x7f", 4)); });
}

TEST_F(LinkServerTest, DropsALinkThatSkipsHello) {
    expect_only_that_link_dropped([](FakeVmm& vmm) { vmm.send_damage(0, 0, 1, 1); });
}

TEST_F(LinkServerTest, DropsASecondHello) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send({{"type", "hello"}, {"protocol", 1}, {"vm_name", "bad"}, {"scanouts", 1}});
    });
}

TEST_F(LinkServerTest, RefusesASecondLinkForTheSameVm) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        vmm.send({{"type", "hello"}, {"protocol", 1}, {"vm_name", "good"}, {"scanouts", 1}});
    });
}

TEST_F(LinkServerTest, DropsAnUnknownType) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send({{"type", "format-disk"}});
    });
}

TEST_F(LinkServerTest, DropsAScanoutBeyondTheHello) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad", 2));
        vmm.send({{"type", "disable"}, {"scanout", 2}});
    });
}

TEST_F(LinkServerTest, DropsASurfaceWithoutItsDescriptor) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send({{"type", "surface"}, {"scanout", 0}, {"width", 8}, {"height", 8}, {"stride", 32},
                  {"format", "XRGB8888"}, {"offset", 0}, {"fds", 1}});
    });
}

TEST_F(LinkServerTest, DropsADescriptorSentWithAMessageThatCarriesNone) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        const int stray = eventfd(0, EFD_CLOEXEC);
        vmm.send({{"type", "damage"}, {"scanout", 0}, {"rects", json::array()}}, {stray});
        close(stray);
    });
}

TEST_F(LinkServerTest, DropsMoreDescriptorsThanAnyMessageCarries) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        std::vector<int> fds;
        for (int i = 0; i < 6; ++i) fds.push_back(eventfd(0, EFD_CLOEXEC));
        vmm.send({{"type", "hello"}, {"protocol", 1}, {"vm_name", "bad"}, {"scanouts", 1}}, fds);
        for (int fd : fds) close(fd);
    });
}

TEST_F(LinkServerTest, DropsAnUnsealedSurface) {
    auto unsealed = SharedSurface::create(64, 48, 256, 0, 0);
    expect_only_that_link_dropped([&](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send_surface(*unsealed);
    });
}

TEST_F(LinkServerTest, DropsASurfaceLargerThanItsMemfd) {
    auto small = SharedSurface::create(64, 48, 256, 0, F_SEAL_SHRINK, 4096);
    expect_only_that_link_dropped([&](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send_surface(*small);
    });
}

TEST_F(LinkServerTest, DropsAnOutOfRangeValue) {
    expect_only_that_link_dropped([](FakeVmm& vmm) {
        ASSERT_TRUE(vmm.hello("bad"));
        vmm.send({{"type", "cursor"}, {"scanout", 0}, {"x", 0}, {"y", 0}, {"visible", true}, {"hot_x", 0},
                  {"hot_y", 0}, {"width", 65}, {"height", 1}, {"pixels", ""}});
    });
}

TEST_F(LinkServerTest, ToleratesDamageOutsideTheSurface) {
    // Damage is clipped to the surface (the VMM clips too), not an error.
    auto good = healthy_vm("good");
    EXPECT_TRUE(good->send_damage(60, 40, 1000, 1000));
    EXPECT_FALSE(good->closed_by_server(300ms));
}

}  // namespace
}  // namespace atl::display
