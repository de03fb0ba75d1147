// atolld's D-Bus API over a private dbus-daemon, from the client's side:
// what busctl, gdbus or a Python script would see.
#include <atoll/dom0/dbus_service.h>
#include <atoll/dom0/store.h>

#include "control_client.h"
#include "harness.h"

#include <sdbus-c++/sdbus-c++.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <regex>

namespace atl::dom0 {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::TempDir;

const std::string kInvalidArgs = "org.freedesktop.DBus.Error.InvalidArgs";
std::string named(const char* kind) { return std::string(kErrorPrefix) + kind; }

// A client connection to the private bus.
class Client {
public:
    explicit Client(const std::string& address)
        : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
          manager_(sdbus::createProxy(*connection_, kBusName, kManagerPath)) {}

    sdbus::IProxy& manager() { return *manager_; }
    sdbus::IConnection& connection() { return *connection_; }

    std::unique_ptr<sdbus::IProxy> object(const std::string& path) {
        return sdbus::createProxy(*connection_, kBusName, path);
    }

    std::string define(const std::string& config) {
        sdbus::ObjectPath path;
        manager_->callMethod("DefineVM").onInterface(kManagerInterface).withArguments(config).storeResultsTo(path);
        return path;
    }

    std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> list() {
        std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> vms;
        manager_->callMethod("ListVMs").onInterface(kManagerInterface).storeResultsTo(vms);
        return vms;
    }

    template <class T>
    T vm_property(const std::string& path, const std::string& name) {
        return object(path)->getProperty(name).onInterface(kVmInterface).get<T>();
    }

    std::string state(const std::string& path) { return vm_property<std::string>(path, "State"); }

    // Calls a VM method; "" when it succeeds, else the D-Bus error's name.
    template <class... Args>
    std::string vm_call(const std::string& path, const std::string& method, Args... args) {
        return error_of([&] {
            auto proxy = object(path);
            auto call = proxy->createMethodCall(kVmInterface, method);
            if constexpr (sizeof...(args) > 0) (call << ... << args);
            proxy->callMethod(call, 60'000'000);
        });
    }

    static std::string error_of(const std::function<void()>& call) {
        try {
            call();
        } catch (const sdbus::Error& error) {
            return error.getName();
        }
        return "";
    }

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
};

// Signals as a listener on its own connection sees them.
class SignalLog {
public:
    explicit SignalLog(const std::string& address) : connection_(sdbus::createSessionBusConnectionWithAddress(address)) {
        connection_->addMatch("type='signal',sender='org.atoll.Atoll1'",
                              [this](sdbus::Message& message) { record(message); }, sdbus::floating_slot);
        connection_->enterEventLoopAsync();
    }
    ~SignalLog() { connection_->leaveEventLoop(); }

    std::vector<std::string> lines() {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    bool wait_for(const std::string& line, std::chrono::milliseconds timeout = 10s) {
        return eventually([&] {
            auto all = lines();
            return std::find(all.begin(), all.end(), line) != all.end();
        }, timeout);
    }

private:
    void record(sdbus::Message& message) {
        std::string line = message.getInterfaceName() + "." + message.getMemberName();
        if (message.getMemberName() == "StateChanged") {
            std::string state, reason;
            message >> state >> reason;
            line += " " + state + " (" + reason + ")";
        } else if (message.getMemberName() == "PropertiesChanged") {
            std::string interface;
            std::map<std::string, sdbus::Variant> changed;
            message >> interface >> changed;
            for (const auto& [name, value] : changed) line += " " + name;
        } else if (message.getMemberName() == "VMDefined" || message.getMemberName() == "VMUndefined") {
            std::string name;
            message >> name;
            line += " " + name;
        }
        std::lock_guard lock(mutex_);
        lines_.push_back(line);
    }

    std::unique_ptr<sdbus::IConnection> connection_;
    std::mutex mutex_;
    std::vector<std::string> lines_;
};

class DbusTest : public ::testing::Test {
protected:
    TempDir dir;
    std::unique_ptr<testing::PrivateBus> bus;
    std::unique_ptr<testing::Atolld> atolld;
    std::unique_ptr<Client> client;
    std::string vmm = testing::kVmm;  // what atolld runs as atoll-vmm

    void SetUp() override {
        ATOLL_REQUIRE_VMM();
        bus = std::make_unique<testing::PrivateBus>(dir.path());
        ASSERT_TRUE(bus->ok()) << "dbus-daemon did not start";
        atolld = std::make_unique<testing::Atolld>(bus->address(), testing::Atolld::paths_in(dir));
        atolld->vmm = vmm;
        ASSERT_TRUE(atolld->start()) << atolld->log();
        client = std::make_unique<Client>(bus->address());
    }

    void TearDown() override {
        client.reset();
        if (atolld) atolld->kill9();
        testing::kill_processes_mentioning(dir.path());
        if (HasFailure() && atolld) std::cerr << "---- atolld's log\n" << atolld->log();
    }

    std::string define(const std::string& name, const std::string& behaviour = "poweroff-on-button",
                       const std::string& extra = {}) {
        return client->define(testing::tiny_vm_config(atolld->paths().storage, name, behaviour, extra));
    }
};

// Every method, property and signal of the XML in the repository is served.
TEST_F(DbusTest, ServesTheInterfacesOfTheRepositoryXml) {
    const std::string vm = define("x");
    const std::map<std::string, std::string> objects{{"org.atoll.Atoll1.Manager.xml", kManagerPath},
                                                     {"org.atoll.Atoll1.VM.xml", vm}};
    for (const auto& [xml_file, path] : objects) {
        std::string served;
        client->object(path)
            ->callMethod("Introspect")
            .onInterface("org.freedesktop.DBus.Introspectable")
            .storeResultsTo(served);
        const std::string xml = testing::read_file(testing::kDom0SourceDir + "/dbus/" + xml_file);
        const std::regex member(R"re(<(method|property|signal) name="([A-Za-z]+)")re");
        int count = 0;
        for (std::sregex_iterator it(xml.begin(), xml.end(), member), end; it != end; ++it, ++count) {
            const std::string wanted = "<" + (*it)[1].str() + " name=\"" + (*it)[2].str() + "\"";
            EXPECT_NE(served.find(wanted), std::string::npos) << path << " lacks " << wanted;
        }
        EXPECT_GT(count, 5) << xml_file;
    }
}

TEST_F(DbusTest, HostFacts) {
    auto& manager = client->manager();
    EXPECT_FALSE(manager.getProperty("Version").onInterface(kManagerInterface).get<std::string>().empty());
    EXPECT_FALSE(manager.getProperty("HostName").onInterface(kManagerInterface).get<std::string>().empty());
    EXPECT_GE(manager.getProperty("CpuCount").onInterface(kManagerInterface).get<uint32_t>(), 1u);
    EXPECT_GT(manager.getProperty("MemoryMiB").onInterface(kManagerInterface).get<uint64_t>(), 0u);
    EXPECT_TRUE(manager.getProperty("KvmAvailable").onInterface(kManagerInterface).get<bool>());
    EXPECT_EQ(manager.getProperty("StorageDirectories").onInterface(kManagerInterface).get<std::vector<std::string>>(),
              std::vector<std::string>{atolld->paths().storage});
}

TEST_F(DbusTest, DefineListLookupUndefine) {
    SignalLog signals(bus->address());
    const std::string path = define("alpha");
    define("beta");
    EXPECT_EQ(path.rfind("/org/atoll/Atoll1/vm/", 0), 0u);
    EXPECT_TRUE(signals.wait_for("org.atoll.Atoll1.Manager.VMDefined alpha"));
    EXPECT_TRUE(signals.wait_for("org.freedesktop.DBus.ObjectManager.InterfacesAdded"));

    auto vms = client->list();
    ASSERT_EQ(vms.size(), 2u);
    EXPECT_EQ(vms[0].get<0>(), "alpha");
    EXPECT_EQ(vms[0].get<2>(), "shut-off");
    EXPECT_EQ(std::string(vms[0].get<3>()), path);
    const std::string uuid = vms[0].get<1>();

    sdbus::ObjectPath found;
    client->manager().callMethod("LookupByName").onInterface(kManagerInterface).withArguments(std::string("alpha")).storeResultsTo(found);
    EXPECT_EQ(std::string(found), path);
    std::string upper = uuid;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    client->manager().callMethod("LookupByUUID").onInterface(kManagerInterface).withArguments(upper).storeResultsTo(found);
    EXPECT_EQ(std::string(found), path);

    EXPECT_EQ(client->vm_property<std::string>(path, "Name"), "alpha");
    EXPECT_EQ(client->vm_property<std::string>(path, "UUID"), uuid);
    EXPECT_EQ(client->vm_property<uint32_t>(path, "VCPUs"), 1u);
    EXPECT_EQ(client->vm_property<uint64_t>(path, "MemoryMiB"), 32u);
    EXPECT_EQ(client->vm_property<std::string>(path, "RestartPolicy"), "never");
    EXPECT_NE(client->vm_property<std::string>(path, "Config").find("\"uuid\":\"" + uuid + "\""), std::string::npos);
    EXPECT_EQ(client->manager().getProperty("VMCount").onInterface(kManagerInterface).get<uint32_t>(), 2u);

    std::map<sdbus::ObjectPath, std::map<std::string, std::map<std::string, sdbus::Variant>>> managed;
    client->manager().callMethod("GetManagedObjects").onInterface("org.freedesktop.DBus.ObjectManager").storeResultsTo(managed);
    ASSERT_EQ(managed.size(), 2u);
    EXPECT_EQ(managed[sdbus::ObjectPath(path)][kVmInterface]["Name"].get<std::string>(), "alpha");

    EXPECT_EQ(client->vm_call(path, "Undefine"), "");
    EXPECT_TRUE(signals.wait_for("org.atoll.Atoll1.Manager.VMUndefined alpha"));
    EXPECT_EQ(client->list().size(), 1u);
    EXPECT_EQ(Client::error_of([&] { client->state(path); }), "org.freedesktop.DBus.Error.UnknownObject");
}

TEST_F(DbusTest, LifecycleEmitsStateChangedAndPropertiesChanged) {
    const std::string path = define("life");
    SignalLog signals(bus->address());
    ASSERT_EQ(client->vm_call(path, "Start"), "");
    EXPECT_EQ(client->state(path), "running");
    EXPECT_GT(client->vm_property<uint32_t>(path, "VmmPid"), 0u);
    EXPECT_FALSE(client->vm_property<std::string>(path, "ConsoleSocket").empty());
    EXPECT_GT(client->vm_property<uint64_t>(path, "StartedAt"), 0u);
    EXPECT_TRUE(signals.wait_for("org.atoll.Atoll1.VM.StateChanged starting (start requested)"));
    EXPECT_TRUE(signals.wait_for("org.atoll.Atoll1.VM.StateChanged running (started)"));

    ASSERT_EQ(client->vm_call(path, "Pause"), "");
    EXPECT_EQ(client->state(path), "paused");
    ASSERT_EQ(client->vm_call(path, "Resume"), "");
    ASSERT_EQ(client->vm_call(path, "Reboot"), "");
    EXPECT_TRUE(eventually([&] { return client->vm_property<uint32_t>(path, "BootCount") == 2; }));
    ASSERT_EQ(client->vm_call(path, "Shutdown", uint32_t{10}, false), "");
    EXPECT_EQ(client->state(path), "shut-off");
    EXPECT_EQ(client->vm_property<std::string>(path, "StateReason"), "the guest powered off");
    EXPECT_EQ(client->vm_property<uint32_t>(path, "VmmPid"), 0u);
    EXPECT_TRUE(signals.wait_for("org.atoll.Atoll1.VM.StateChanged shut-off (the guest powered off)"));

    // In order, each once.
    std::vector<std::string> states;
    for (const auto& line : signals.lines())
        if (line.find(".StateChanged ") != std::string::npos) states.push_back(line.substr(line.find("StateChanged ") + 13));
    EXPECT_EQ(states, (std::vector<std::string>{"starting (start requested)", "running (started)", "paused (paused)",
                                                "running (resumed)", "shutting-down (the power button was pressed)",
                                                "shut-off (the guest powered off)"}));
    bool state_property_changed = false;
    for (const auto& line : signals.lines())
        state_property_changed |= line.rfind("org.freedesktop.DBus.Properties.PropertiesChanged State", 0) == 0;
    EXPECT_TRUE(state_property_changed);
}

// atolld with a stand-in atoll-vmm (fake-audio-vmm.py) that reports whatever
// audio counters the test makes it send, as atoll-vmm's audio events.
class DbusAudioTest : public DbusTest {
protected:
    DbusAudioTest() { vmm = kFakeAudioVmm; }

    static inline const std::string kFakeAudioVmm = FAKE_AUDIO_VMM_PATH;

    // Makes the stand-in send `line` to atolld, over a control connection of our own.
    void vmm_sends(const std::string& path, const std::string& line) {
        const std::string socket =
            atolld->paths().runtime + "/vms/" + client->vm_property<std::string>(path, "UUID") + ".ctl";
        auto control = ControlClient::connect(socket, 5000ms);
        ASSERT_TRUE(control) << control.error().message;
        auto sent = (*control)->request("test-send", 5000ms, {{"line", line}});
        ASSERT_TRUE(sent) << sent.error().message;
    }
    static std::string audio_event(const std::string& counters) {
        return R"({"event": "audio", "audio": {"backend": "pulse", "connected": true, )" + counters +
               R"(, "playback": {"volume_percent": 100, "muted": false}, "capture": {"volume_percent": 100, "muted": false}}})";
    }
    struct Counters {
        uint64_t underruns, overruns, dropped_frames, capture_gaps;
        bool operator==(const Counters&) const = default;
        friend std::ostream& operator<<(std::ostream& out, const Counters& c) {
            return out << "underruns " << c.underruns << ", overruns " << c.overruns << ", dropped frames "
                       << c.dropped_frames << ", capture gaps " << c.capture_gaps;
        }
    };
    Counters counters(const std::string& path) {
        return {client->vm_property<uint64_t>(path, "AudioUnderruns"), client->vm_property<uint64_t>(path, "AudioOverruns"),
                client->vm_property<uint64_t>(path, "AudioDroppedFrames"),
                client->vm_property<uint64_t>(path, "AudioCaptureGaps")};
    }
    size_t log_count(const std::string& text) {
        const std::string log = atolld->log();
        size_t count = 0;
        for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++count;
        return count;
    }
};

TEST_F(DbusAudioTest, EveryCounterReachesDbusAndAtollctl) {
    const std::string path = define("sound", "poweroff-on-button", R"(, "audio": {})");
    ASSERT_EQ(client->vm_call(path, "Start"), "") << atolld->log();
    ASSERT_TRUE(client->vm_property<bool>(path, "HasAudio"));
    EXPECT_TRUE(client->vm_property<bool>(path, "AudioConnected"));
    EXPECT_EQ(counters(path), (Counters{0, 0, 0, 0}));

    SignalLog signals(bus->address());
    vmm_sends(path, audio_event(R"("underruns": 2, "overruns": 5, "dropped_frames": 4800, "capture_gaps": 7)"));
    EXPECT_TRUE(signals.wait_for(
        "org.freedesktop.DBus.Properties.PropertiesChanged AudioCaptureGaps AudioDroppedFrames AudioOverruns AudioUnderruns"));
    EXPECT_EQ(counters(path), (Counters{2, 5, 4800, 7}));

    // Only what changed is announced.
    vmm_sends(path, audio_event(R"("underruns": 2, "overruns": 5, "dropped_frames": 9600, "capture_gaps": 7)"));
    EXPECT_TRUE(signals.wait_for("org.freedesktop.DBus.Properties.PropertiesChanged AudioDroppedFrames"));
    EXPECT_EQ(counters(path), (Counters{2, 5, 9600, 7}));

    // One log line per counter that grew, in words.
    EXPECT_TRUE(eventually([&] { return log_count("audio frames dropped so far") == 2; })) << atolld->log();
    EXPECT_EQ(log_count("'sound': 4800 audio frames dropped so far"), 1u);
    EXPECT_EQ(log_count("'sound': 9600 audio frames dropped so far"), 1u);
    EXPECT_EQ(log_count("'sound': 7 audio capture gaps so far"), 1u);
    EXPECT_EQ(log_count("'sound': 2 audio underruns so far"), 1u);
    EXPECT_EQ(log_count("overrun"), 0u);

    auto shown = atolld->ctl({"audio", "sound"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_NE(shown.out.find("Underruns:      2\n"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("Overruns:       5\n"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("Dropped frames: 9600\n"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("Capture gaps:   7\n"), std::string::npos) << shown.out;
    shown = atolld->ctl({"--json", "audio", "sound"});
    ASSERT_EQ(shown.exit_code, 0) << shown.err;
    const auto json = nlohmann::json::parse(shown.out, nullptr, false);
    ASSERT_TRUE(json.is_object()) << shown.out;
    EXPECT_EQ(json.value("underruns", 0), 2);
    EXPECT_EQ(json.value("overruns", 0), 5);
    EXPECT_EQ(json.value("dropped_frames", 0), 9600);
    EXPECT_EQ(json.value("capture_gaps", 0), 7);

    // The counters go with the run.
    ASSERT_EQ(client->vm_call(path, "ForceStop"), "");
    EXPECT_FALSE(client->vm_property<bool>(path, "HasAudio"));
    EXPECT_EQ(counters(path), (Counters{0, 0, 0, 0}));
}

// Bad counters from atoll-vmm: the bad field keeps its value, the good ones
// of the same event are taken, atolld goes on.
TEST_F(DbusAudioTest, MalformedCountersChangeNothingElse) {
    const std::string path = define("sound", "poweroff-on-button", R"(, "audio": {})");
    ASSERT_EQ(client->vm_call(path, "Start"), "") << atolld->log();
    const uint32_t pid = client->vm_property<uint32_t>(path, "VmmPid");
    SignalLog signals(bus->address());
    vmm_sends(path, audio_event(R"("underruns": 1, "overruns": 2, "dropped_frames": 3, "capture_gaps": 4)"));
    ASSERT_TRUE(eventually([&] { return counters(path) == Counters{1, 2, 3, 4}; }));

    vmm_sends(path, audio_event(R"("underruns": 10, "overruns": "many", "dropped_frames": -1, "capture_gaps": 2.5)"));
    EXPECT_TRUE(signals.wait_for("org.freedesktop.DBus.Properties.PropertiesChanged AudioUnderruns"));
    EXPECT_EQ(counters(path), (Counters{10, 2, 3, 4}));
    vmm_sends(path, audio_event(R"("underruns": 11, "overruns": null, "dropped_frames": 1e30, "capture_gaps": [4])"));
    EXPECT_TRUE(eventually([&] { return counters(path) == Counters{11, 2, 3, 4}; })) << counters(path);
    vmm_sends(path, audio_event(R"("underruns": 12)"));  // the others missing
    EXPECT_TRUE(eventually([&] { return counters(path) == Counters{12, 2, 3, 4}; })) << counters(path);
    // Not an object, not JSON, a line too long: no change at all.
    vmm_sends(path, R"({"event": "audio", "audio": "loud"})");
    vmm_sends(path, R"({"event": "audio", "audio": {"dropped_frames": )");
    vmm_sends(path, R"({"event": "audio", "audio": {"dropped_frames": 1, "x": ")" + std::string(70000, 'x') + "\"}}");
    // A well-formed event after them shows that they were read and passed over.
    vmm_sends(path, audio_event(R"("underruns": 13, "overruns": 2, "dropped_frames": 3, "capture_gaps": 4)"));
    EXPECT_TRUE(eventually([&] { return counters(path).underruns == 13; }));
    EXPECT_EQ(counters(path), (Counters{13, 2, 3, 4}));
    EXPECT_TRUE(client->vm_property<bool>(path, "HasAudio"));
    EXPECT_TRUE(client->vm_property<bool>(path, "AudioConnected"));
    EXPECT_EQ(client->vm_property<uint32_t>(path, "AudioVolume"), 100u);
    EXPECT_EQ(client->state(path), "running");
    EXPECT_EQ(client->vm_property<uint32_t>(path, "VmmPid"), pid);
    EXPECT_TRUE(atolld->running());
    // No counter but underruns was announced after the first event.
    size_t announced_others = 0;
    bool first = true;
    for (const auto& line : signals.lines()) {
        if (line.find("AudioCaptureGaps") == std::string::npos && line.find("AudioOverruns") == std::string::npos &&
            line.find("AudioDroppedFrames") == std::string::npos)
            continue;
        if (first) first = false;
        else ++announced_others;
    }
    EXPECT_EQ(announced_others, 0u);
    // Bad values are no news for the log either.
    EXPECT_EQ(log_count("audio frames dropped so far"), 1u);
    EXPECT_EQ(log_count("audio capture gaps so far"), 1u);
}

TEST_F(DbusTest, AutostartIsWritable) {
    const std::string path = define("auto");
    SignalLog signals(bus->address());
    client->object(path)->setProperty("Autostart").onInterface(kVmInterface).toValue(true);
    EXPECT_TRUE(client->vm_property<bool>(path, "Autostart"));
    EXPECT_NE(client->vm_property<std::string>(path, "Config").find("\"autostart\":true"), std::string::npos);
    EXPECT_TRUE(signals.wait_for("org.freedesktop.DBus.Properties.PropertiesChanged Autostart Config"));
}

TEST_F(DbusTest, OpenConsoleHandsOverASocket) {
    const std::string path = define("console");
    EXPECT_EQ(Client::error_of([&] {
                  sdbus::UnixFd fd;
                  client->object(path)->callMethod("OpenConsole").onInterface(kVmInterface).storeResultsTo(fd);
              }),
              named("InvalidState"));
    ASSERT_EQ(client->vm_call(path, "Start"), "");
    sdbus::UnixFd fd;
    client->object(path)->callMethod("OpenConsole").onInterface(kVmInterface).storeResultsTo(fd);
    ASSERT_TRUE(fd.isValid());
    int type = 0;
    socklen_t length = sizeof type;
    EXPECT_EQ(getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &length), 0);
    EXPECT_EQ(type, SOCK_STREAM);
    ASSERT_EQ(client->vm_call(path, "ForceStop"), "");
}

// Wrong types, huge strings, unknown VMs, invalid state changes and bad
// configurations: each a named error, and nothing changes.
TEST_F(DbusTest, MalformedCallsGetNamedErrorsAndChangeNothing) {
    const std::string idle = define("idle");
    const std::string running = define("running");
    ASSERT_EQ(client->vm_call(running, "Start"), "");
    const auto before = client->list();
    auto& manager = client->manager();
    auto manager_call = [&](const std::string& method, auto... args) {
        return Client::error_of([&] {
            auto call = manager.createMethodCall(kManagerInterface, method);
            if constexpr (sizeof...(args) > 0) (call << ... << args);
            manager.callMethod(call);
        });
    };

    // Wrong argument types and counts: refused by the bus binding itself.
    EXPECT_EQ(manager_call("DefineVM", int32_t{5}), kInvalidArgs);
    EXPECT_EQ(manager_call("DefineVM"), kInvalidArgs);
    EXPECT_EQ(manager_call("DefineVM", std::string("{}"), std::string("{}")), kInvalidArgs);
    EXPECT_EQ(manager_call("LookupByName", uint32_t{1}), kInvalidArgs);
    EXPECT_EQ(client->vm_call(idle, "Shutdown", std::string("soon")), kInvalidArgs);
    EXPECT_EQ(client->vm_call(idle, "Shutdown", uint32_t{1}), kInvalidArgs);
    EXPECT_EQ(client->vm_call(idle, "Start", true), kInvalidArgs);
    EXPECT_EQ(Client::error_of([&] { client->object(idle)->setProperty("Autostart").onInterface(kVmInterface).toValue(std::string("yes")); }),
              kInvalidArgs);
    EXPECT_EQ(Client::error_of([&] { client->object(idle)->setProperty("State").onInterface(kVmInterface).toValue(std::string("running")); }),
              "org.freedesktop.DBus.Error.PropertyReadOnly");
    EXPECT_EQ(client->vm_call(idle, "Explode"), "org.freedesktop.DBus.Error.UnknownMethod");
    EXPECT_EQ(Client::error_of([&] { client->vm_property<std::string>(idle, "Colour"); }),
              "org.freedesktop.DBus.Error.UnknownProperty");

    // Huge strings.
    const std::string huge(4 << 20, 'a');
    EXPECT_EQ(manager_call("DefineVM", huge), named("InvalidArgument"));
    EXPECT_EQ(manager_call("DefineVM", R"({"name": ")" + huge + R"(", "boot": {"kernel": "/x"}})"), named("InvalidArgument"));
    EXPECT_EQ(manager_call("LookupByName", huge), named("InvalidArgument"));
    EXPECT_EQ(manager_call("LookupByUUID", huge), named("InvalidArgument"));

    // Unknown VMs.
    EXPECT_EQ(manager_call("LookupByName", std::string("nosuch")), named("NotFound"));
    EXPECT_EQ(manager_call("LookupByUUID", generate_uuid()), named("NotFound"));
    EXPECT_EQ(manager_call("LookupByUUID", std::string("12345")), named("InvalidArgument"));
    EXPECT_EQ(client->vm_call(vm_object_path(generate_uuid()), "Start"), "org.freedesktop.DBus.Error.UnknownObject");

    // Invalid state changes.
    EXPECT_EQ(client->vm_call(idle, "Pause"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(idle, "Resume"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(idle, "Reboot"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(idle, "ForceStop"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(idle, "Shutdown", uint32_t{1}, false), named("InvalidState"));
    EXPECT_EQ(client->vm_call(running, "Start"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(running, "Resume"), named("InvalidState"));
    EXPECT_EQ(client->vm_call(running, "Undefine"), named("InvalidState"));

    // Bad configurations.
    const std::string storage = atolld->paths().storage;
    const std::string kernel = storage + "/tiny-poweroff-on-button.bzImage";
    for (const std::string& config : std::vector<std::string>{
             "not json", "[]", "{}", R"({"name": "a"})",
          R"({"name": "bad name!", "boot": {"kernel": ")" + kernel + R"("}})",
          R"({"name": "a", "vcpus": "two", "boot": {"kernel": ")" + kernel + R"("}})",
          R"({"name": "a", "vcpus": 0, "boot": {"kernel": ")" + kernel + R"("}})",
          R"({"name": "a", "memory_mib": 1e30, "boot": {"kernel": ")" + kernel + R"("}})",
          R"({"name": "a", "boot": {"kernel": "/etc/passwd"}})",
          R"({"name": "a", "boot": {"kernel": ")" + storage + R"(/../state/atoll.db"}})",
          R"({"name": "a", "boot": {"kernel": ")" + storage + R"(/missing"}})",
          R"({"name": "a", "boot": {"kernel": ")" + kernel + R"("}, "disks": [{"path": "/dev/sda"}]})",
          R"({"name": "a", "boot": {"kernel": ")" + kernel + R"("}, "flavour": "large"})"}) {
        EXPECT_EQ(manager_call("DefineVM", config), named("InvalidArgument")) << config;
    }
    EXPECT_EQ(manager_call("DefineVM", testing::tiny_vm_config(storage, "idle")), named("Exists"));

    // Nothing changed.
    const auto after = client->list();
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].get<0>(), before[i].get<0>());
        EXPECT_EQ(after[i].get<2>(), before[i].get<2>());
    }
    EXPECT_TRUE(atolld->running());
    auto store = Store::open(atolld->paths().database);
    ASSERT_TRUE(store.ok());
    EXPECT_TRUE((*store)->check_consistency().ok());
    EXPECT_EQ((*store)->load_all()->size(), 2u);
}

// 50 VMs defined, 10 lifecycle calls in flight at once, and the bus thread
// keeps answering property reads meanwhile.
TEST_F(DbusTest, FiftyVmsAndTenCallsInFlight) {
    std::vector<std::string> paths;
    for (int i = 0; i < 50; ++i) paths.push_back(define("vm" + std::to_string(i), i < 10 ? "halt" : "poweroff-on-button"));
    ASSERT_EQ(client->list().size(), 50u);

    auto in_flight = [&](const std::function<std::string(Client&, const std::string&)>& call) {
        std::atomic<int> done{0};
        std::vector<std::string> errors(10);
        std::vector<std::thread> threads;
        for (int i = 0; i < 10; ++i) {
            threads.emplace_back([&, i] {
                Client own(bus->address());
                errors[i] = call(own, paths[i]);
                ++done;
            });
        }
        // Reads stay quick while the calls run.
        std::chrono::nanoseconds slowest{0};
        while (done.load() < 10) {
            const auto start = std::chrono::steady_clock::now();
            client->state(paths[20]);
            slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
        }
        for (auto& thread : threads) thread.join();
        EXPECT_LT(slowest, 250ms) << "a property read waited behind the lifecycle calls";
        return errors;
    };

    for (const auto& error : in_flight([](Client& own, const std::string& path) { return own.vm_call(path, "Start"); }))
        EXPECT_EQ(error, "");
    for (int i = 0; i < 10; ++i) EXPECT_EQ(client->state(paths[i]), "running");
    // The halt guests ignore the power button: ten Shutdowns wait out their timeout side by side.
    const auto start = std::chrono::steady_clock::now();
    for (const auto& error : in_flight([](Client& own, const std::string& path) {
             return own.vm_call(path, "Shutdown", uint32_t{2}, true);
         }))
        EXPECT_EQ(error, "");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << "the shutdowns did not run side by side";
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(client->state(paths[i]), "shut-off");
        EXPECT_EQ(client->vm_property<std::string>(paths[i], "StateReason"), "force-stopped");
    }
}

TEST_F(DbusTest, ASecondAtolldCannotTakeTheName) {
    TempDir other;
    testing::Atolld second(bus->address(), testing::Atolld::paths_in(other));
    EXPECT_FALSE(second.start());
    EXPECT_NE(second.log().find("org.atoll.Atoll1"), std::string::npos) << second.log();
}

TEST_F(DbusTest, SigtermLeavesRunningVmsAlone) {
    const std::string path = define("survivor");
    ASSERT_EQ(client->vm_call(path, "Start"), "");
    const uint32_t pid = client->vm_property<uint32_t>(path, "VmmPid");
    EXPECT_EQ(atolld->stop(), 0);
    EXPECT_TRUE(testing::process_alive(static_cast<pid_t>(pid)));
    ASSERT_TRUE(atolld->start()) << atolld->log();
    EXPECT_EQ(client->state(path), "running");
    EXPECT_EQ(client->vm_property<uint32_t>(path, "VmmPid"), pid);
    ASSERT_EQ(client->vm_call(path, "Shutdown", uint32_t{10}, false), "");
}

}  // namespace
}  // namespace atl::dom0
