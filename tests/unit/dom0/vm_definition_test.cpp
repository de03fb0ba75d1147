#include <atoll/dom0/vm_definition.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace atl::dom0 {
namespace {

using nlohmann::json;

json minimal() { return {{"name", "web"}, {"boot", {{"kernel", "/images/vmlinuz"}}}}; }

Outcome<VmDefinition> parse(const json& config) { return parse_vm_definition(config.dump()); }

// The error of a config that must fail: InvalidArgument, naming `key`.
void expect_refused(const json& config, const std::string& key) {
    auto parsed = parse(config);
    ASSERT_FALSE(parsed.ok()) << config.dump();
    EXPECT_EQ(parsed.error().kind, ErrorKind::InvalidArgument);
    EXPECT_NE(parsed.error().message.find(key), std::string::npos) << parsed.error().message;
}

TEST(VmDefinition, MinimalGetsDefaults) {
    auto parsed = parse(minimal());
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->name, "web");
    EXPECT_TRUE(parsed->uuid.empty());
    EXPECT_EQ(parsed->vcpus, 1u);
    EXPECT_EQ(parsed->memory_mib, 512u);
    EXPECT_EQ(parsed->boot.kind, BootSource::Kind::Kernel);
    EXPECT_EQ(parsed->boot.cmdline, "console=ttyS0");
    EXPECT_TRUE(parsed->entropy);
    EXPECT_FALSE(parsed->autostart);
    EXPECT_EQ(parsed->restart.kind, RestartPolicy::Kind::Never);
    EXPECT_EQ(parsed->extra_json, "{}");
}

TEST(VmDefinition, DisplayDefaultsAndRanges) {
    EXPECT_FALSE(display_definition(*parse(minimal())));
    json config = minimal();
    config["display"] = json::object();
    auto display = display_definition(*parse(config));
    ASSERT_TRUE(display);
    EXPECT_EQ(display->width, 1280u);
    EXPECT_EQ(display->height, 800u);
    EXPECT_EQ(display->scanouts, 1u);
    config["display"] = {{"width", 1920}, {"height", 1080}, {"scanouts", 2}};
    display = display_definition(*parse(config));
    ASSERT_TRUE(display);
    EXPECT_EQ(display->width, 1920u);
    EXPECT_EQ(display->scanouts, 2u);
    for (auto [key, value] : {std::pair{"width", 63}, std::pair{"height", 8193}, std::pair{"scanouts", 0},
                              std::pair{"scanouts", 5}}) {
        json bad = minimal();
        bad["display"] = {{key, value}};
        expect_refused(bad, std::string("display.") + key);
    }
    json bad = minimal();
    bad["display"] = {{"depth", 32}};
    expect_refused(bad, "display.depth");
    bad["display"] = true;
    expect_refused(bad, "display");
}

TEST(VmDefinition, FullRoundTripsThroughCanonicalJson) {
    json config = minimal();
    config["uuid"] = "0F8FAD5B-D9CB-469F-A165-70867728950E";
    config["vcpus"] = 4;
    config["memory_mib"] = 2048;
    config["boot"] = {{"kernel", "/images/vmlinuz"}, {"initrd", "/images/initrd"}, {"cmdline", "console=ttyS0 quiet"}};
    config["disks"] = {{{"path", "/images/root.img"}, {"serial", "root"}}, {{"path", "/images/cd.iso"}, {"read_only", true}}};
    config["nets"] = {{{"mode", "user"}, {"mac", "52:54:00:12:34:56"}, {"host_forwards", {"tcp:8080:80"}}},
                      {{"mode", "tap"}, {"tap", "tap0"}}};
    config["autostart"] = true;
    config["entropy"] = false;
    config["restart"] = {{"policy", "on-crash"}, {"max_restarts", 5}};
    config["display"] = {{"width", 1280}, {"height", 800}};
    config["usb"] = json::array({{{"vendor", "046d"}}});
    auto parsed = parse(config);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
    EXPECT_EQ(parsed->disks.size(), 2u);
    EXPECT_TRUE(parsed->disks[1].read_only);
    EXPECT_EQ(parsed->nets[1].tap, "tap0");
    EXPECT_EQ(parsed->restart.max_restarts, 5u);
    EXPECT_EQ(restart_policy_text(parsed->restart), "on-crash:5");
    EXPECT_EQ(json::parse(parsed->extra_json), json({{"display", config["display"]}, {"usb", config["usb"]}}));

    const std::string canonical = vm_definition_to_json(*parsed);
    auto again = parse_vm_definition(canonical);
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(vm_definition_to_json(*again), canonical);
    EXPECT_EQ(json::parse(canonical)["display"], config["display"]);
}

TEST(VmDefinition, BootFromDisk) {
    json config = minimal();
    config["disks"] = {{{"path", "/images/root.img"}}};
    config["boot"] = {{"disk", 0}};
    auto parsed = parse(config);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->boot.kind, BootSource::Kind::Disk);
    config["boot"] = {{"disk", 1}};
    expect_refused(config, "boot.disk");
    config["boot"] = {{"disk", 0}, {"kernel", "/images/vmlinuz"}};
    expect_refused(config, "boot");
}

TEST(VmDefinition, RefusesWrongTypesNamingTheKey) {
    json config = minimal();
    config["vcpus"] = "2";
    expect_refused(config, "vcpus");
    config = minimal();
    config["vcpus"] = 1.5;
    expect_refused(config, "vcpus");
    config = minimal();
    config["memory_mib"] = -1;
    expect_refused(config, "memory_mib");
    config = minimal();
    config["autostart"] = 1;
    expect_refused(config, "autostart");
    config = minimal();
    config["disks"] = {{"path", "/x"}};  // an object where a list belongs
    expect_refused(config, "disks");
    config = minimal();
    config["disks"] = {{{"path", 7}}};
    expect_refused(config, "disks[0].path");
    config = minimal();
    config["nets"] = {{{"mode", "bridge"}}};
    expect_refused(config, "nets[0].mode");
    config = minimal();
    config["name"] = json::array();
    expect_refused(config, "name");
}

TEST(VmDefinition, RefusesUnknownAndMissingKeys) {
    json config = minimal();
    config["cpus"] = 2;
    expect_refused(config, "cpus: unknown setting");
    config = minimal();
    config["disks"] = {{{"path", "/x"}, {"cache", "none"}}};
    expect_refused(config, "disks[0].cache");
    config = minimal();
    config.erase("name");
    expect_refused(config, "name: missing");
    config = minimal();
    config.erase("boot");
    expect_refused(config, "boot: missing");
    config = minimal();
    config["boot"] = json::object();
    expect_refused(config, "boot.kernel");
}

TEST(VmDefinition, RefusesValuesOutOfRange) {
    for (auto [key, value] : std::vector<std::pair<std::string, json>>{
             {"vcpus", 0}, {"vcpus", 256}, {"memory_mib", 8}, {"memory_mib", uint64_t{1} << 40}}) {
        json config = minimal();
        config[key] = value;
        expect_refused(config, key);
    }
    json config = minimal();
    config["boot"]["cmdline"] = std::string(5000, 'x');
    expect_refused(config, "boot.cmdline");
    config = minimal();
    config["boot"]["cmdline"] = "console=ttyS0\nrm -rf";
    expect_refused(config, "boot.cmdline");
    config = minimal();
    config["disks"] = json::array();
    for (int i = 0; i < 17; ++i) config["disks"].push_back({{"path", "/d" + std::to_string(i)}});
    expect_refused(config, "disks");
    config = minimal();
    config["nets"] = {{{"mac", "01:00:00:00:00:01"}}};  // multicast
    expect_refused(config, "nets[0].mac");
    config = minimal();
    config["nets"] = {{{"host_forwards", {"tcp:99999:80"}}}};
    expect_refused(config, "host_forwards");
    config = minimal();
    config["nets"] = {{{"mode", "tap"}}};
    expect_refused(config, "nets[0].tap");
    config = minimal();
    config["restart"] = {{"policy", "on-crash"}, {"max_restarts", 1000}};
    expect_refused(config, "restart.max_restarts");
    config = minimal();
    config["restart"] = {{"policy", "always"}};
    expect_refused(config, "restart.policy");
}

TEST(VmDefinition, Names) {
    EXPECT_TRUE(valid_vm_name("web"));
    EXPECT_TRUE(valid_vm_name("Web-1.test_2"));
    EXPECT_TRUE(valid_vm_name(std::string(64, 'a')));
    EXPECT_FALSE(valid_vm_name(""));
    EXPECT_FALSE(valid_vm_name(std::string(65, 'a')));
    EXPECT_FALSE(valid_vm_name("-web"));
    EXPECT_FALSE(valid_vm_name(".hidden"));
    EXPECT_FALSE(valid_vm_name("a/b"));
    EXPECT_FALSE(valid_vm_name("a b"));
    EXPECT_FALSE(valid_vm_name("caf\xc3\xa9"));
    json config = minimal();
    config["name"] = "../etc";
    expect_refused(config, "name");
    config["name"] = std::string(100000, 'n');  // the message quotes it cut short
    auto parsed = parse(config);
    ASSERT_FALSE(parsed.ok());
    EXPECT_LT(parsed.error().message.size(), 300u);
}

TEST(VmDefinition, PathsMustBeAbsoluteWithoutDotComponents) {
    for (const std::string path : {"vmlinuz", "", "/images/../etc/shadow", "/images/./vmlinuz", "/images/.."}) {
        json config = minimal();
        config["boot"]["kernel"] = path;
        expect_refused(config, "boot.kernel");
        config = minimal();
        config["disks"] = {{{"path", path}}};
        expect_refused(config, "disks[0].path");
    }
    json config = minimal();
    config["boot"]["kernel"] = "/images/..vmlinuz..";  // dots inside a name are fine
    EXPECT_TRUE(parse(config).ok());
}

TEST(VmDefinition, RefusesDeepNesting) {
    json config = minimal();
    std::string text = config.dump();
    text.pop_back();
    text += ", \"usb\": " + std::string(100, '[') + std::string(100, ']') + "}";
    auto parsed = parse_vm_definition(text);
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.error().message.find("nested"), std::string::npos) << parsed.error().message;
    // Brackets inside strings do not count.
    config["usb"] = json::array({{{"title", std::string(100, '[')}}});
    EXPECT_TRUE(parse(config).ok());
    // The limit itself passes ("usb" is kept as it came, for atoll-vmm to read).
    auto nested = [&](size_t depth) {  // the definition's object is the first level
        std::string deep = minimal().dump();
        deep.pop_back();
        return parse_vm_definition(deep + ", \"usb\": " + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}");
    };
    auto at_limit = nested(kMaxConfigDepth);
    EXPECT_TRUE(at_limit.ok()) << at_limit.error().message;
    auto past_limit = nested(kMaxConfigDepth + 1);
    ASSERT_FALSE(past_limit.ok());
    EXPECT_NE(past_limit.error().message.find("nested more than 32 levels"), std::string::npos)
        << past_limit.error().message;
}

TEST(VmDefinition, RefusesWhatIsNotAnObject) {
    for (const std::string text : {"", "null", "[]", "\"web\"", "{", "{\"name\": \"a\",}", "42"}) {
        auto parsed = parse_vm_definition(text);
        ASSERT_FALSE(parsed.ok()) << text;
        EXPECT_EQ(parsed.error().kind, ErrorKind::InvalidArgument);
    }
    auto huge = parse_vm_definition(std::string(kMaxConfigBytes + 1, ' '));
    ASSERT_FALSE(huge.ok());
    EXPECT_NE(huge.error().message.find("bytes"), std::string::npos);
}

TEST(VmDefinition, Uuids) {
    const std::string a = generate_uuid(), b = generate_uuid();
    EXPECT_NE(a, b);
    ASSERT_EQ(a.size(), 36u);
    EXPECT_EQ(a[14], '4');  // version 4
    EXPECT_EQ(canonical_uuid(a), a);
    EXPECT_EQ(canonical_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"), "0f8fad5b-d9cb-469f-a165-70867728950e");
    EXPECT_FALSE(canonical_uuid("00000000-0000-0000-0000-000000000000"));
    EXPECT_FALSE(canonical_uuid("0f8fad5bd9cb469fa16570867728950e"));
    EXPECT_FALSE(canonical_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
    EXPECT_EQ(vm_object_path("0f8fad5b-d9cb-469f-a165-70867728950e"),
              "/org/atoll/Atoll1/vm/0f8fad5b_d9cb_469f_a165_70867728950e");
    json config = minimal();
    config["uuid"] = "not-a-uuid";
    expect_refused(config, "uuid");
}

TEST(VmDefinition, TextForMessagesIsShortAndValidUtf8) {
    EXPECT_EQ(quote_text("web"), "\"web\"");
    EXPECT_EQ(quote_text("web", 64, '\''), "'web'");
    // Cut at a character boundary: "é" is two bytes; 63 'a' + "é" would split it at 64.
    const std::string long_name = std::string(63, 'a') + "\xc3\xa9" + std::string(10, 'b');
    const std::string quoted = quote_text(long_name);
    EXPECT_TRUE(valid_utf8(quoted)) << quoted;
    EXPECT_NE(quoted.find("(75 bytes)"), std::string::npos) << quoted;
    EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    for (const std::string bad : {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "a\x80" "b"})
        EXPECT_FALSE(valid_utf8(bad)) << bad;
    EXPECT_EQ(make_valid_utf8("a\x80" "b\xc3\xa9\xff"), "a?b\xc3\xa9?");
}

TEST(VmDefinition, States) {
    for (auto state : {VmState::ShutOff, VmState::Starting, VmState::Running, VmState::Paused, VmState::ShuttingDown,
                       VmState::Crashed})
        EXPECT_EQ(parse_state(state_name(state)), state);
    EXPECT_FALSE(parse_state("exploded"));
    EXPECT_TRUE(state_is_active(VmState::Paused));
    EXPECT_FALSE(state_is_active(VmState::Crashed));
}

}  // namespace
}  // namespace atl::dom0
