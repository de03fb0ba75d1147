#include <atoll/vmm/config.h>

#include <gtest/gtest.h>

namespace atl::vmm {
namespace {

TEST(VmConfig, ParsesEverySetting) {
    auto config = parse_vm_config(R"({
        "name": "web", "kernel": "/k", "initrd": "/i", "cmdline": "console=hvc0",
        "memory_mib": 1024, "vcpus": 4, "entropy": false,
        "serial": "socket:/run/atoll/web.sock", "virtio_console": "none",
        "disks": [{"path": "/d.img", "read_only": true, "serial": "disk-a"}],
        "nets": [{"mode": "user", "host_forwards": ["tcp:8080:80"]}, {"mode": "tap", "tap": "atoll0", "mac": "52:54:00:12:34:56"}]
    })");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->name, "web");
    EXPECT_EQ(config->memory_mib, 1024u);
    EXPECT_EQ(config->vcpus, 4u);
    EXPECT_FALSE(config->entropy);
    EXPECT_EQ(config->serial.mode, ConsoleConfig::Mode::Socket);
    EXPECT_EQ(config->serial.socket_path, "/run/atoll/web.sock");
    ASSERT_EQ(config->disks.size(), 1u);
    EXPECT_TRUE(config->disks[0].read_only);
    ASSERT_EQ(config->nets.size(), 2u);
    EXPECT_EQ(config->nets[1].mode, NetConfig::Mode::Tap);
    EXPECT_EQ(config->nets[0].host_forwards[0], "tcp:8080:80");
}

TEST(VmConfig, ParsesADisplay) {
    auto config = parse_vm_config(R"({"kernel": "/k",
        "display": {"socket": "/run/atoll/display.sock", "scanouts": 2, "width": 1920, "height": 1080}})");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->display.enabled());
    EXPECT_EQ(config->display.socket, "/run/atoll/display.sock");
    EXPECT_EQ(config->display.scanouts, 2u);
    EXPECT_EQ(config->display.width, 1920u);
    EXPECT_EQ(config->display.height, 1080u);
    // Only the socket is needed; no display section means no display devices.
    auto defaults = parse_vm_config(R"({"kernel": "/k", "display": {"socket": "/d.sock"}})");
    ASSERT_TRUE(defaults) << defaults.error().message;
    EXPECT_EQ(defaults->display.scanouts, 1u);
    EXPECT_EQ(defaults->display.width, 1280u);
    EXPECT_EQ(defaults->display.height, 800u);
    auto none = parse_vm_config(R"({"kernel": "/k"})");
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->display.enabled());
    EXPECT_EQ(vm_config_to_json(*none).find("display"), std::string::npos);
}

TEST(VmConfig, ParsesAudio) {
    auto pulse = parse_vm_config(R"({"kernel": "/k", "name": "web", "audio": {"backend": "pulse", "server": "unix:/run/p"}})");
    ASSERT_TRUE(pulse) << pulse.error().message;
    EXPECT_TRUE(pulse->audio.enabled());
    EXPECT_EQ(pulse->audio.backend, AudioConfig::Backend::Pulse);
    EXPECT_EQ(pulse->audio.server, "unix:/run/p");
    auto again = parse_vm_config(vm_config_to_json(*pulse));
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->audio.server, "unix:/run/p");
    EXPECT_EQ(vm_config_to_json(*again), vm_config_to_json(*pulse));
    // The default: no sound device.
    auto none = parse_vm_config(R"({"kernel": "/k"})");
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->audio.enabled());
    EXPECT_EQ(vm_config_to_json(*none).find("audio"), std::string::npos);
    auto explicit_none = parse_vm_config(R"({"kernel": "/k", "audio": {"backend": "none"}})");
    ASSERT_TRUE(explicit_none);
    EXPECT_FALSE(explicit_none->audio.enabled());
}

TEST(VmConfig, RoundTripsThroughJson) {
    VmConfig config;
    config.kernel = "/boot/vmlinuz";
    config.vcpus = 2;
    config.disks.push_back({"/a.img", true, "x"});
    config.nets.push_back({});
    auto again = parse_vm_config(vm_config_to_json(config));
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(vm_config_to_json(*again), vm_config_to_json(config));

    config.display = {"/run/atoll/display.sock", 3, 1024, 768};
    auto with_display = parse_vm_config(vm_config_to_json(config));
    ASSERT_TRUE(with_display) << with_display.error().message;
    EXPECT_EQ(with_display->display.socket, "/run/atoll/display.sock");
    EXPECT_EQ(with_display->display.scanouts, 3u);
    EXPECT_EQ(with_display->display.width, 1024u);
    EXPECT_EQ(with_display->display.height, 768u);
    EXPECT_EQ(vm_config_to_json(*with_display), vm_config_to_json(config));
}

struct BadConfig {
    std::string json;
    const char* expected_words;
};

class VmConfigRefuses : public ::testing::TestWithParam<BadConfig> {};

TEST_P(VmConfigRefuses, WithAClearError) {
    auto config = parse_vm_config(GetParam().json);
    ASSERT_FALSE(config);
    EXPECT_NE(config.error().message.find(GetParam().expected_words), std::string::npos) << config.error().message;
    EXPECT_EQ(config.error().message.find('\n'), std::string::npos) << "errors are one line";
}

INSTANTIATE_TEST_SUITE_P(
    BadInput, VmConfigRefuses,
    ::testing::Values(BadConfig{"{", "not valid JSON"}, BadConfig{"[]", "JSON object"},
                      BadConfig{R"({"kernel":"/k","vcpus":0})", "at least one vCPU"},
                      BadConfig{R"({"kernel":"/k","vcpus":"two"})", "vcpus: wrong type"},
                      BadConfig{R"({"kernel":"/k","memory_mib":4})", "at least 16 MiB"},
                      BadConfig{R"({"vcpus":1})", "no kernel"},
                      BadConfig{R"({"kernel":"/k","colour":"red"})", "colour: unknown setting"},
                      BadConfig{R"({"kernel":"/k","name":"../etc"})", "name"},
                      BadConfig{R"({"kernel":"/k","disks":[{"path":""}]})", "disks[0].path: empty"},
                      BadConfig{R"({"kernel":"/k","disks":[{"path":"/x","mode":"rw"}]})", "disks[0].mode: unknown"},
                      BadConfig{R"({"kernel":"/k","nets":[{"mode":"bridge"}]})", "is not \"user\" or \"tap\""},
                      BadConfig{R"({"kernel":"/k","nets":[{"mac":"zz"}]})", "not a MAC address"},
                      BadConfig{R"({"kernel":"/k","nets":[{"mode":"tap"}]})", "tap interface name"},
                      BadConfig{R"({"kernel":"/k","nets":[{"host_forwards":["8080"]}]})", "PROTO:HOSTPORT:GUESTPORT"},
                      BadConfig{R"({"kernel":"/k","serial":"tcp:1"})", "stdio"},
                      BadConfig{R"({"kernel":"/k","serial":"stdio","virtio_console":"stdio"})", "both use stdio"},
                      BadConfig{R"({"kernel":"/k","display":"/d.sock"})", "display: expected an object"},
                      BadConfig{R"({"kernel":"/k","display":{"scanouts":1}})", "display.socket"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","scanouts":5}})", "display.scanouts: 5 is not 1 to 4"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","scanouts":0}})", "display.scanouts: 0"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","width":32}})", "64 to 8192"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","height":9000}})", "64 to 8192"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","width":"wide"}})", "display.width: wrong type"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":"/d","dpi":96}})", "display.dpi: unknown setting"},
                      BadConfig{R"({"kernel":"/k","display":{"socket":")" + std::string(120, 'x') + R"("}})",
                                "display.socket: path longer than 107 bytes"},
                      BadConfig{R"({"kernel":"/k","audio":"pulse"})", "audio: expected an object"},
                      BadConfig{R"({"kernel":"/k","audio":{"backend":"alsa"}})", "audio.backend: \"alsa\" is not"},
                      BadConfig{R"({"kernel":"/k","audio":{"backend":"pulse","latency":5}})", "audio.latency: unknown setting"},
                      BadConfig{R"({"kernel":"/k","audio":{"backend":"pulse","server":7}})", "audio.server: wrong type"},
                      BadConfig{R"({"kernel":"/k","audio":{"server":"unix:/x"}})", "only used with the pulse backend"},
                      BadConfig{R"({"kernel":"/k","audio":{"backend":"pulse","server":"a\nb"}})", "control character"}));

}  // namespace
}  // namespace atl::vmm
