// The Daemon (atolld without D-Bus) with real atoll-vmm processes booting the
// tiny guests of tests/guests, a real SQLite file and real sockets.
#include <atoll/dom0/daemon.h>

#include "control_client.h"
#include <atoll/dom0/store.h>

#include "harness.h"

#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include <mutex>

namespace atl::dom0 {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::TempDir;

class Recorder final : public DaemonObserver {
public:
    void vm_defined(const VmInfo& vm) override {
        std::lock_guard lock(mutex);
        events.push_back("defined " + vm.definition.name);
    }
    void vm_undefined(const VmInfo& vm) override {
        std::lock_guard lock(mutex);
        events.push_back("undefined " + vm.definition.name);
    }
    void vm_changed(const VmInfo& vm, bool state_changed) override {
        std::lock_guard lock(mutex);
        if (state_changed) events.push_back(std::string(state_name(vm.state)) + " (" + vm.reason + ")");
    }
    std::vector<std::string> taken() {
        std::lock_guard lock(mutex);
        return std::exchange(events, {});
    }
    std::mutex mutex;
    std::vector<std::string> events;
};

class DaemonTest : public ::testing::Test {
protected:
    TempDir dir;
    DaemonOptions options;
    std::unique_ptr<Daemon> daemon;
    Recorder recorder;

    void SetUp() override {
        ATOLL_REQUIRE_VMM();
        options.database_path = dir / "state/atoll.db";
        options.runtime_dir = dir / "run";
        options.storage_dirs = {dir / "images"};
        options.vmm_path = testing::kVmm;
        options.restart_delay = 50ms;
        std::filesystem::create_directories(dir / "images");
        daemon = create();
        ASSERT_TRUE(daemon);
    }

    void TearDown() override {
        daemon.reset();
        testing::kill_processes_mentioning(dir.path());
    }

    std::unique_ptr<Daemon> create() {
        auto created = Daemon::create(options);
        EXPECT_TRUE(created.ok()) << created.error().message;
        if (!created) return nullptr;
        (*created)->set_observer(&recorder);
        return std::move(*created);
    }

    std::string define(const std::string& name, const std::string& behaviour = "poweroff-on-button",
                       const std::string& extra = {}) {
        auto defined = daemon->define(testing::tiny_vm_config(dir / "images", name, behaviour, extra));
        EXPECT_TRUE(defined.ok()) << defined.error().message;
        return defined ? defined->definition.uuid : std::string();
    }

    VmInfo info(const std::string& uuid) { return daemon->find(uuid).value(); }

    bool wait_for(const std::string& uuid, VmState state, std::chrono::milliseconds timeout = 10s) {
        return eventually([&] { return daemon->find(uuid)->state == state; }, timeout);
    }
};

TEST_F(DaemonTest, WholeLifeOfAVm) {
    const std::string uuid = define("life");
    EXPECT_EQ(info(uuid).state, VmState::ShutOff);
    EXPECT_EQ(info(uuid).reason, "defined");

    auto started = daemon->start(uuid);
    ASSERT_TRUE(started.ok()) << started.error().message;
    VmInfo running = info(uuid);
    EXPECT_EQ(running.state, VmState::Running);
    EXPECT_GT(running.pid, 0);
    EXPECT_TRUE(testing::process_alive(static_cast<pid_t>(running.pid)));
    EXPECT_EQ(running.boot_count, 1u);
    EXPECT_GT(running.started_unix_us, 0u);
    EXPECT_FALSE(running.console_socket.empty());
    // The VMM got the configuration atolld wrote.
    const auto config = nlohmann::json::parse(testing::read_file(dir / ("run/vms/" + uuid + ".json")));
    EXPECT_EQ(config["name"], "life");
    EXPECT_EQ(config["memory_mib"], 32);
    EXPECT_EQ(config["serial"], "socket:" + running.console_socket);

    ASSERT_TRUE(daemon->pause(uuid).ok());
    EXPECT_EQ(info(uuid).state, VmState::Paused);
    EXPECT_EQ(daemon->pause(uuid).error().kind, ErrorKind::InvalidState);
    EXPECT_EQ(daemon->shutdown(uuid, 1s, false).error().kind, ErrorKind::InvalidState);
    ASSERT_TRUE(daemon->resume(uuid).ok());
    EXPECT_EQ(info(uuid).state, VmState::Running);
    EXPECT_EQ(daemon->resume(uuid).error().kind, ErrorKind::InvalidState);

    ASSERT_TRUE(daemon->reboot(uuid).ok());
    EXPECT_TRUE(eventually([&] { return info(uuid).boot_count == 2; })) << info(uuid).boot_count;
    EXPECT_EQ(info(uuid).pid, running.pid);  // a reboot keeps the process

    auto stopped = daemon->shutdown(uuid, 10s, false);
    ASSERT_TRUE(stopped.ok()) << stopped.error().message;
    VmInfo off = info(uuid);
    EXPECT_EQ(off.state, VmState::ShutOff);
    EXPECT_EQ(off.reason, "the guest powered off");
    EXPECT_EQ(off.pid, 0);
    EXPECT_TRUE(off.console_socket.empty());
    EXPECT_FALSE(std::filesystem::exists(dir / ("run/vms/" + uuid + ".ctl")));
    EXPECT_TRUE(eventually([&] { return !testing::process_alive(static_cast<pid_t>(running.pid)); }));

    EXPECT_EQ(recorder.taken(),
              (std::vector<std::string>{"defined life", "starting (start requested)", "running (started)",
                                        "paused (paused)", "running (resumed)",
                                        "shutting-down (the power button was pressed)",
                                        "shut-off (the guest powered off)"}));
    ASSERT_TRUE(daemon->undefine(uuid).ok());
    EXPECT_FALSE(daemon->find(uuid));
    EXPECT_TRUE(daemon->check_database().ok());
}

TEST_F(DaemonTest, InvalidStateChangesAreRefused) {
    const std::string uuid = define("idle");
    for (auto outcome : {daemon->pause(uuid), daemon->resume(uuid), daemon->reboot(uuid), daemon->force_stop(uuid),
                         daemon->shutdown(uuid, 1s, false)}) {
        ASSERT_FALSE(outcome.ok());
        EXPECT_EQ(outcome.error().kind, ErrorKind::InvalidState);
        EXPECT_NE(outcome.error().message.find("'idle'"), std::string::npos) << outcome.error().message;
    }
    EXPECT_EQ(daemon->open_console(uuid).error().kind, ErrorKind::InvalidState);
    ASSERT_TRUE(daemon->start(uuid).ok());
    EXPECT_EQ(daemon->start(uuid).error().kind, ErrorKind::InvalidState);
    auto undefined = daemon->undefine(uuid);
    ASSERT_FALSE(undefined.ok());
    EXPECT_EQ(undefined.error().kind, ErrorKind::InvalidState);
    EXPECT_TRUE(daemon->find(uuid));
    ASSERT_TRUE(daemon->force_stop(uuid).ok());
    EXPECT_EQ(info(uuid).reason, "force-stopped");
    for (const std::string& unknown : {std::string("nope"), generate_uuid()})
        EXPECT_EQ(daemon->start(unknown).error().kind, ErrorKind::NotFound);
}

TEST_F(DaemonTest, DefineRefusesBadConfigsAndDuplicates) {
    define("one");
    auto again = daemon->define(testing::tiny_vm_config(dir / "images", "one"));
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().kind, ErrorKind::Exists);
    auto outside = daemon->define(R"({"name": "out", "boot": {"kernel": "/etc/passwd"}})");
    ASSERT_FALSE(outside.ok());
    EXPECT_EQ(outside.error().kind, ErrorKind::InvalidArgument);
    EXPECT_NE(outside.error().message.find("outside the permitted storage directories"), std::string::npos);
    auto missing = daemon->define(R"({"name": "gone", "boot": {"kernel": ")" + dir / "images/missing" + R"("}})");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("not found"), std::string::npos);
    EXPECT_EQ(daemon->list().size(), 1u);
}

TEST_F(DaemonTest, ShutdownTimeoutThenForce) {
    const std::string uuid = define("stubborn", "halt");  // ignores the power button
    ASSERT_TRUE(daemon->start(uuid).ok());
    auto timed_out = daemon->shutdown(uuid, 300ms, false);
    ASSERT_FALSE(timed_out.ok());
    EXPECT_EQ(timed_out.error().kind, ErrorKind::Timeout);
    EXPECT_NE(timed_out.error().message.find("did not power off"), std::string::npos);
    EXPECT_EQ(info(uuid).state, VmState::ShuttingDown);
    auto forced = daemon->shutdown(uuid, 300ms, true);
    ASSERT_TRUE(forced.ok()) << forced.error().message;
    EXPECT_EQ(info(uuid).state, VmState::ShutOff);
    EXPECT_EQ(info(uuid).reason, "force-stopped");
}

TEST_F(DaemonTest, ShutdownWithoutWaiting) {
    const std::string uuid = define("quick");
    ASSERT_TRUE(daemon->start(uuid).ok());
    ASSERT_TRUE(daemon->shutdown(uuid, 0ms, false).ok());
    EXPECT_TRUE(wait_for(uuid, VmState::ShutOff));
}

TEST_F(DaemonTest, CrashIsRecordedWithItsReason) {
    const std::string uuid = define("faulty", "triple-fault");
    // The guest triple-faults in its first instructions: during Start or just after.
    (void)daemon->start(uuid);
    ASSERT_TRUE(wait_for(uuid, VmState::Crashed));
    EXPECT_NE(info(uuid).reason.find("triple-fault"), std::string::npos) << info(uuid).reason;
    EXPECT_EQ(info(uuid).pid, 0);
    // A crashed VM can start again.
    (void)daemon->start(uuid);
    EXPECT_TRUE(wait_for(uuid, VmState::Crashed));
}

TEST_F(DaemonTest, KilledVmmIsACrashAndTheRestartPolicyBringsItBack) {
    const std::string uuid = define("phoenix", "poweroff-on-button",
                                    R"(, "restart": {"policy": "on-crash", "max_restarts": 2})");
    ASSERT_TRUE(daemon->start(uuid).ok());
    for (uint32_t restart = 1; restart <= 2; ++restart) {
        const int64_t pid = info(uuid).pid;
        ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
        ASSERT_TRUE(eventually([&] {
            const VmInfo now = info(uuid);
            return now.state == VmState::Running && now.pid != pid;
        })) << info(uuid).reason;
        EXPECT_EQ(info(uuid).restart_count, restart);
        EXPECT_EQ(info(uuid).reason, "restarted after a crash");
    }
    ASSERT_EQ(kill(static_cast<pid_t>(info(uuid).pid), SIGKILL), 0);
    ASSERT_TRUE(wait_for(uuid, VmState::Crashed));
    EXPECT_NE(info(uuid).reason.find("SIGKILL"), std::string::npos) << info(uuid).reason;
    EXPECT_NE(info(uuid).reason.find("not restarted"), std::string::npos) << info(uuid).reason;
    // A Start by hand resets the count.
    ASSERT_TRUE(daemon->start(uuid).ok());
    EXPECT_EQ(info(uuid).restart_count, 0u);
    ASSERT_TRUE(daemon->force_stop(uuid).ok());
}

TEST_F(DaemonTest, StartFailureSaysWhy) {
    const std::string uuid = define("broken");
    // The kernel file is replaced by something that is not a bzImage.
    testing::TempDir unused;
    std::ofstream(dir / "images/tiny-poweroff-on-button.bzImage", std::ios::trunc) << "not a kernel";
    auto started = daemon->start(uuid);
    ASSERT_FALSE(started.ok());
    EXPECT_EQ(started.error().kind, ErrorKind::Failed);
    EXPECT_NE(started.error().message.find("exit code 1"), std::string::npos) << started.error().message;
    EXPECT_EQ(info(uuid).state, VmState::ShutOff);
    EXPECT_EQ(info(uuid).reason.rfind("failed to start: ", 0), 0u) << info(uuid).reason;
    // Files are checked again at start: gone is gone.
    std::filesystem::remove(dir / "images/tiny-poweroff-on-button.bzImage");
    started = daemon->start(uuid);
    ASSERT_FALSE(started.ok());
    EXPECT_NE(started.error().message.find("not found"), std::string::npos) << started.error().message;
}

TEST_F(DaemonTest, ConsoleIsAConnectedSocket) {
    const std::string uuid = define("talk");
    ASSERT_TRUE(daemon->start(uuid).ok());
    auto console = daemon->open_console(uuid);
    ASSERT_TRUE(console.ok()) << console.error().message;
    int type = 0;
    socklen_t length = sizeof type;
    EXPECT_EQ(getsockopt(*console, SOL_SOCKET, SO_TYPE, &type, &length), 0);
    EXPECT_EQ(type, SOCK_STREAM);
    close(*console);
    ASSERT_TRUE(daemon->force_stop(uuid).ok());
}

TEST_F(DaemonTest, OneOperationAtATimePerVm) {
    const std::string uuid = define("busy", "halt");
    ASSERT_TRUE(daemon->start(uuid).ok());
    // The VM ends (by ForceStop below) while Shutdown waits: Shutdown got what it wanted.
    std::thread waiting([&] { EXPECT_TRUE(daemon->shutdown(uuid, 5s, false).ok()); });
    ASSERT_TRUE(eventually([&] { return info(uuid).busy; }));
    auto paused = daemon->pause(uuid);
    ASSERT_FALSE(paused.ok());
    EXPECT_NE(paused.error().message.find("busy: shutdown in progress"), std::string::npos) << paused.error().message;
    // ForceStop is the way out and ends the wait.
    ASSERT_TRUE(daemon->force_stop(uuid).ok());
    waiting.join();
}

TEST_F(DaemonTest, RestartOfAtolldReadoptsRunningVms) {
    const std::string kept = define("kept");
    const std::string paused = define("paused");
    const std::string lost = define("lost");
    ASSERT_TRUE(daemon->start(kept).ok());
    ASSERT_TRUE(daemon->start(paused).ok());
    ASSERT_TRUE(daemon->pause(paused).ok());
    ASSERT_TRUE(daemon->start(lost).ok());
    const int64_t kept_pid = info(kept).pid, lost_pid = info(lost).pid;
    daemon.reset();  // atolld goes away; its VMMs stay
    ASSERT_TRUE(testing::process_alive(static_cast<pid_t>(kept_pid)));
    kill(static_cast<pid_t>(lost_pid), SIGKILL);  // and one of them dies meanwhile
    waitpid(static_cast<pid_t>(lost_pid), nullptr, 0);  // (the in-process daemon made it our child)

    daemon = create();
    ASSERT_TRUE(daemon);
    EXPECT_EQ(info(kept).state, VmState::Running);
    EXPECT_EQ(info(kept).pid, kept_pid);
    EXPECT_EQ(info(paused).state, VmState::Paused);
    EXPECT_EQ(info(lost).state, VmState::Crashed);
    EXPECT_NE(info(lost).reason.find("while atolld was not running"), std::string::npos) << info(lost).reason;
    // The adopted VMMs are controlled and followed as before.
    ASSERT_TRUE(daemon->resume(paused).ok());
    auto stopped = daemon->shutdown(kept, 10s, false);
    ASSERT_TRUE(stopped.ok()) << stopped.error().message;
    EXPECT_EQ(info(kept).reason, "the guest powered off");  // from the VMM's exit event: not our child now
    const int64_t paused_pid = info(paused).pid;
    kill(static_cast<pid_t>(paused_pid), SIGKILL);
    ASSERT_TRUE(wait_for(paused, VmState::Crashed));
    EXPECT_NE(info(paused).reason.find("ended abruptly"), std::string::npos) << info(paused).reason;
    EXPECT_TRUE(daemon->check_database().ok());
}

TEST_F(DaemonTest, HowAVmEndedWhileAtolldWasDownIsKnownAfterwards) {
    const std::string uuid = define("quiet");
    ASSERT_TRUE(daemon->start(uuid).ok());
    const auto pid = static_cast<pid_t>(info(uuid).pid);
    daemon.reset();
    // Someone else presses the power button; the guest powers off; atoll-vmm exits.
    auto client = ControlClient::connect(options.runtime_dir + "/vms/" + uuid + ".ctl", 2000ms);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->request("shutdown", 2000ms).ok());
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    daemon = create();
    ASSERT_TRUE(daemon);
    EXPECT_EQ(info(uuid).state, VmState::ShutOff);
    EXPECT_EQ(info(uuid).reason, "the guest powered off (while atolld was not running)");
    EXPECT_FALSE(std::filesystem::exists(options.runtime_dir + "/vms/" + uuid + ".exit"));
}

TEST_F(DaemonTest, OnlyOneDaemonPerRuntimeDirectory) {
    auto second = Daemon::create(options);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("another atolld"), std::string::npos);
}

TEST_F(DaemonTest, AutostartOncePerBoot) {
    const std::string uuid = define("auto", "poweroff-on-button", R"(, "autostart": true)");
    const std::string manual = define("manual");
    daemon->start_autostart_vms();
    ASSERT_TRUE(wait_for(uuid, VmState::Running));
    EXPECT_EQ(info(manual).state, VmState::ShutOff);
    ASSERT_TRUE(daemon->shutdown(uuid, 10s, false).ok());
    // A restarted atolld (same runtime directory, same boot) does not start it again.
    daemon.reset();
    daemon = create();
    daemon->start_autostart_vms();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(info(uuid).state, VmState::ShutOff);
    // Autostart can be switched off, and is stored.
    ASSERT_TRUE(daemon->set_autostart(uuid, false).ok());
    daemon.reset();
    daemon = create();
    EXPECT_FALSE(info(uuid).definition.autostart);
}

TEST_F(DaemonTest, ManyVmsSideBySide) {
    std::vector<std::string> uuids;
    for (int i = 0; i < 10; ++i) uuids.push_back(define("vm" + std::to_string(i)));
    std::vector<std::thread> threads;
    std::atomic<int> started{0};
    for (const auto& uuid : uuids)
        threads.emplace_back([&, uuid] { started += daemon->start(uuid).ok(); });
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(started.load(), 10);
    threads.clear();
    std::atomic<int> stopped{0};
    for (const auto& uuid : uuids)
        threads.emplace_back([&, uuid] { stopped += daemon->shutdown(uuid, 20s, false).ok(); });
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(stopped.load(), 10);
    for (const auto& vm : daemon->list()) EXPECT_EQ(vm.state, VmState::ShutOff) << vm.definition.name;
}

}  // namespace
}  // namespace atl::dom0
