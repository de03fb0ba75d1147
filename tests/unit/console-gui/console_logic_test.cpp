#include <atoll/console/bus_address.h>
#include <atoll/console/key_codes.h>
#include <atoll/console/vm_draft.h>
#include <atoll/console/vm_info.h>

#include <gtest/gtest.h>
#include <linux/input-event-codes.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace atl::console {
namespace {

VmDraft kernel_draft() {
    VmDraft draft;
    draft.name = QStringLiteral("web-1");
    draft.vcpus = 2;
    draft.memory_mib = 256;
    draft.kernel = QStringLiteral("/srv/vm/vmlinuz");
    return draft;
}

QJsonObject parsed(const VmDraft& draft) {
    auto json = definition_json(draft);
    EXPECT_TRUE(json.ok()) << (json ? "" : json.error().message);
    return json ? QJsonDocument::fromJson(json->toUtf8()).object() : QJsonObject{};
}

TEST(VmDraft, KernelBootWithUserNetworkAndDisplay) {
    VmDraft draft = kernel_draft();
    draft.initrd = QStringLiteral("/srv/vm/initrd.img");
    draft.host_forwards = {QStringLiteral("tcp:8080:80")};
    const QJsonObject definition = parsed(draft);
    EXPECT_EQ(definition[QStringLiteral("name")].toString(), QStringLiteral("web-1"));
    EXPECT_EQ(definition[QStringLiteral("vcpus")].toInt(), 2);
    EXPECT_EQ(definition[QStringLiteral("memory_mib")].toInt(), 256);
    const QJsonObject boot = definition[QStringLiteral("boot")].toObject();
    EXPECT_EQ(boot[QStringLiteral("kernel")].toString(), QStringLiteral("/srv/vm/vmlinuz"));
    EXPECT_EQ(boot[QStringLiteral("initrd")].toString(), QStringLiteral("/srv/vm/initrd.img"));
    EXPECT_EQ(boot[QStringLiteral("cmdline")].toString(), QStringLiteral("console=ttyS0"));
    const QJsonArray nets = definition[QStringLiteral("nets")].toArray();
    ASSERT_EQ(nets.size(), 1);
    EXPECT_EQ(nets[0].toObject()[QStringLiteral("mode")].toString(), QStringLiteral("user"));
    EXPECT_EQ(nets[0].toObject()[QStringLiteral("host_forwards")].toArray()[0].toString(), QStringLiteral("tcp:8080:80"));
    EXPECT_TRUE(definition[QStringLiteral("display")].isObject());
    EXPECT_TRUE(definition[QStringLiteral("disks")].toArray().isEmpty());
}

TEST(VmDraft, DiskBootTapNoDisplay) {
    VmDraft draft = kernel_draft();
    draft.boot = VmDraft::Boot::Disk;
    draft.disk_image = QStringLiteral("/srv/vm/web.img");
    draft.network = VmDraft::Network::Tap;
    draft.tap = QStringLiteral("tap0");
    draft.display = false;
    const QJsonObject definition = parsed(draft);
    EXPECT_EQ(definition[QStringLiteral("boot")].toObject()[QStringLiteral("disk")].toInt(-1), 0);
    EXPECT_EQ(definition[QStringLiteral("disks")].toArray()[0].toObject()[QStringLiteral("path")].toString(),
              QStringLiteral("/srv/vm/web.img"));
    EXPECT_EQ(definition[QStringLiteral("nets")].toArray()[0].toObject()[QStringLiteral("tap")].toString(),
              QStringLiteral("tap0"));
    EXPECT_FALSE(definition.contains(QStringLiteral("display")));
}

TEST(VmDraft, RefusesWhatAtolldRefusesWithAReason) {
    struct Case {
        std::function<void(VmDraft&)> change;
        const char* says;
    };
    const Case cases[] = {
        {[](VmDraft& d) { d.name.clear(); }, "needs a name"},
        {[](VmDraft& d) { d.name = QStringLiteral("-web"); }, "starting with a letter or digit"},
        {[](VmDraft& d) { d.name = QStringLiteral("web vm"); }, "Name 'web vm'"},
        {[](VmDraft& d) { d.name = QString(65, QLatin1Char('a')); }, "1 to 64"},
        {[](VmDraft& d) { d.memory_mib = 0; }, "Memory: 0 MiB"},
        {[](VmDraft& d) { d.memory_mib = 15; }, "16 MiB"},
        {[](VmDraft& d) { d.vcpus = 0; }, "vCPUs"},
        {[](VmDraft& d) { d.vcpus = 256; }, "vCPUs"},
        {[](VmDraft& d) { d.kernel.clear(); }, "Choose the kernel"},
        {[](VmDraft& d) { d.kernel = QStringLiteral("vmlinuz"); }, "absolute path"},
        {[](VmDraft& d) { d.kernel = QStringLiteral("/srv/../etc/vmlinuz"); }, "absolute path"},
        {[](VmDraft& d) { d.boot = VmDraft::Boot::Disk; }, "disk image to boot"},
        {[](VmDraft& d) { d.host_forwards = {QStringLiteral("8080:80")}; }, "tcp:HOST-PORT:GUEST-PORT"},
        {[](VmDraft& d) { d.network = VmDraft::Network::Tap; }, "tap device"},
        {[](VmDraft& d) { d.cmdline = QString(4096, QLatin1Char('x')); }, "4095 bytes"},
    };
    for (const Case& c : cases) {
        VmDraft draft = kernel_draft();
        c.change(draft);
        const auto json = definition_json(draft);
        ASSERT_FALSE(json.ok()) << c.says;
        EXPECT_NE(json.error().message.find(c.says), std::string::npos) << json.error().message;
    }
}

TEST(BusAddress, SshHostThroughStdioBridge) {
    EXPECT_EQ(ssh_bus_address(QStringLiteral("admin@vm-host.example")),
              QStringLiteral("unixexec:path=ssh,argv1=-xT,argv2=admin%40vm-host.example,argv3=systemd-stdio-bridge"));
    EXPECT_EQ(escape_address_value(QStringLiteral("--bus-path=unix:path=/run/x bus")),
              QStringLiteral("--bus-path%3dunix%3apath%3d/run/x%20bus"));
}

TEST(BusAddress, HostOption) {
    auto named = parse_host_option(QStringLiteral("lab=root@lab1"));
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(named->label, QStringLiteral("lab"));
    EXPECT_TRUE(named->address.contains(QStringLiteral("argv2=root%40lab1")));
    auto bare = parse_host_option(QStringLiteral("lab2"));
    ASSERT_TRUE(bare.ok());
    EXPECT_EQ(bare->label, QStringLiteral("lab2"));
    EXPECT_FALSE(parse_host_option(QStringLiteral("lab=")).ok());
    EXPECT_FALSE(parse_host_option(QStringLiteral("=x")).ok());
    // An ssh option smuggled in as a host name.
    EXPECT_FALSE(parse_host_option(QStringLiteral("x=-oProxyCommand=sh")).ok());
}

TEST(KeyCodes, QtKeysToLinuxCodes) {
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_A), uint32_t{KEY_A});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_Z), uint32_t{KEY_Z});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_0), uint32_t{KEY_0});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_5), uint32_t{KEY_5});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_F12), uint32_t{KEY_F12});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_Return), uint32_t{KEY_ENTER});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_Exclam), uint32_t{KEY_1});  // shifted symbol: its key
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_Control), uint32_t{KEY_LEFTCTRL});
    EXPECT_EQ(linux_key_code_for_qt_key(Qt::Key_unknown), 0u);
    // X/Wayland keycodes are evdev + 8 and win over the table (any layout).
    EXPECT_EQ(linux_key_code(Qt::Key_Q, 38, true), uint32_t{KEY_A});  // AZERTY 'q' on the US 'a' key
    EXPECT_EQ(linux_key_code(Qt::Key_A, 0, true), uint32_t{KEY_A});
    EXPECT_EQ(linux_key_code(Qt::Key_A, 99, false), uint32_t{KEY_A});
}

TEST(KeyCodes, TabletAxisLikeAtollDisplay) {
    EXPECT_EQ(tablet_axis(0, 320), 0u);
    EXPECT_EQ(tablet_axis(319, 320), 32767u);
    EXPECT_EQ(tablet_axis(160, 320), 160u * 32767 / 319);
    EXPECT_EQ(tablet_axis(-5, 320), 0u);
    EXPECT_EQ(tablet_axis(1000, 320), 32767u);
    EXPECT_EQ(tablet_axis(3, 1), 0u);
}

TEST(VmInfo, PropertiesAndActions) {
    VmInfo vm;
    apply_properties(vm, {{QStringLiteral("Name"), QStringLiteral("web")},
                          {QStringLiteral("State"), QStringLiteral("running")},
                          {QStringLiteral("VCPUs"), 2u},
                          {QStringLiteral("MemoryMiB"), QVariant::fromValue<qulonglong>(1024)},
                          {QStringLiteral("VmmPid"), 42u}});
    EXPECT_EQ(vm.name, QStringLiteral("web"));
    EXPECT_EQ(vm.vcpus, 2u);
    EXPECT_EQ(vm.memory_mib, 1024u);
    EXPECT_TRUE(can_shut_down(vm.state));
    EXPECT_FALSE(can_start(vm.state));
    EXPECT_FALSE(can_delete(vm.state));
    EXPECT_TRUE(can_resume(QStringLiteral("paused")));
    EXPECT_TRUE(can_delete(QStringLiteral("crashed")));
    EXPECT_EQ(state_label(QStringLiteral("shut-off")), QStringLiteral("Shut off"));
}

TEST(VmInfo, DetailsShowWhereTheVncServerIs) {
    VmInfo vm;
    apply_properties(vm, {{QStringLiteral("State"), QStringLiteral("running")},
                          {QStringLiteral("StateReason"), QStringLiteral("started")},
                          {QStringLiteral("VncAddress"), QStringLiteral("127.0.0.1:5901")},
                          {QStringLiteral("VncTls"), false}});
    EXPECT_EQ(vm.vnc_address, QStringLiteral("127.0.0.1:5901"));
    EXPECT_FALSE(vm.vnc_tls);
    EXPECT_EQ(vm_details(vm), QStringLiteral("started · VNC 127.0.0.1:5901"));
    apply_properties(vm, {{QStringLiteral("VncAddress"), QStringLiteral("[::1]:5900")}, {QStringLiteral("VncTls"), true}});
    EXPECT_EQ(vm_details(vm), QStringLiteral("started · VNC [::1]:5900 (TLS)"));
    vm.reason.clear();
    EXPECT_EQ(vm_details(vm), QStringLiteral("VNC [::1]:5900 (TLS)"));
    // The screen no longer served (PropertiesChanged to ""): the reason alone.
    apply_properties(vm, {{QStringLiteral("StateReason"), QStringLiteral("the guest powered off")},
                          {QStringLiteral("VncAddress"), QString()}});
    EXPECT_EQ(vm_details(vm), QStringLiteral("the guest powered off"));
}

}  // namespace
}  // namespace atl::console
