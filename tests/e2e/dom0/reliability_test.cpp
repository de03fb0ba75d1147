// kill -9 of atolld during define, start and stop, many times at random
// moments: running VMs keep running and are re-adopted, no VMM is lost or
// duplicated, and the database stays consistent and matches the processes.
// Real parts: a private dbus-daemon, atolld, atoll-vmm booting tiny guests.
#include <atoll/dom0/dbus_service.h>
#include <atoll/dom0/store.h>

#include "../../integration/dom0/harness.h"

#include <sdbus-c++/sdbus-c++.h>

#include <atomic>
#include <map>
#include <random>
#include <set>

namespace atl::dom0 {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::TempDir;

struct Vm {
    std::string name, uuid, state;
};

class ReliabilityTest : public ::testing::Test {
protected:
    TempDir dir;
    std::unique_ptr<testing::PrivateBus> bus;
    std::unique_ptr<testing::Atolld> atolld;
    std::mt19937 random{std::random_device{}()};

    void SetUp() override {
        ATOLL_REQUIRE_VMM();
        const unsigned seed = std::random_device{}();
        random.seed(seed);
        std::cerr << "random seed " << seed << "\n";
        bus = std::make_unique<testing::PrivateBus>(dir.path());
        ASSERT_TRUE(bus->ok());
        atolld = std::make_unique<testing::Atolld>(bus->address(), testing::Atolld::paths_in(dir));
        ASSERT_TRUE(atolld->start()) << atolld->log();
    }

    void TearDown() override {
        if (atolld) atolld->kill9();
        testing::kill_processes_mentioning(dir.path());
        if (HasFailure() && atolld) std::cerr << "---- atolld's log\n" << atolld->log();
    }

    std::unique_ptr<sdbus::IConnection> connect() {
        return sdbus::createSessionBusConnectionWithAddress(bus->address());
    }

    // Calls a method; "" on success, else the error name.
    static std::string call(sdbus::IConnection& connection, const std::string& path, const std::string& interface,
                            const std::string& method, const std::function<void(sdbus::MethodCall&)>& arguments = {},
                            std::string* out_path = nullptr) {
        try {
            auto proxy = sdbus::createProxy(connection, kBusName, path);
            auto message = proxy->createMethodCall(interface, method);
            if (arguments) arguments(message);
            auto reply = proxy->callMethod(message, 60'000'000);
            if (out_path) {
                sdbus::ObjectPath result;
                reply >> result;
                *out_path = result;
            }
        } catch (const sdbus::Error& error) {
            return error.getName();
        }
        return "";
    }

    std::string define(sdbus::IConnection& connection, const std::string& name,
                       const std::string& behaviour = "poweroff-on-button") {
        const std::string config = testing::tiny_vm_config(atolld->paths().storage, name, behaviour);
        std::string path;
        const std::string error = call(
            connection, kManagerPath, kManagerInterface, "DefineVM", [&](sdbus::MethodCall& m) { m << config; }, &path);
        return error.empty() ? path : "";
    }

    std::vector<Vm> list(sdbus::IConnection& connection) {
        std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> vms;
        sdbus::createProxy(connection, kBusName, kManagerPath)
            ->callMethod("ListVMs")
            .onInterface(kManagerInterface)
            .storeResultsTo(vms);
        std::vector<Vm> out;
        for (const auto& vm : vms) out.push_back({vm.get<0>(), vm.get<1>(), vm.get<2>()});
        return out;
    }

    uint32_t vmm_pid(sdbus::IConnection& connection, const std::string& uuid) {
        return sdbus::createProxy(connection, kBusName, vm_object_path(uuid))
            ->getProperty("VmmPid")
            .onInterface(kVmInterface)
            .get<uint32_t>();
    }

    // The live atoll-vmm processes of this test, by VM UUID (zombies have no command line).
    std::map<std::string, pid_t> vmm_processes() {
        std::map<std::string, pid_t> found;
        const std::string marker = std::string("--control-socket") + '\0' + atolld->paths().runtime + "/vms/";
        for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
            const std::string name = entry.path().filename().string();
            if (name.find_first_not_of("0123456789") != std::string::npos) continue;
            const std::string cmdline = testing::read_file(entry.path().string() + "/cmdline");
            const size_t at = cmdline.find(marker);
            if (at == std::string::npos) continue;
            const std::string uuid = cmdline.substr(at + marker.size(), 36);
            EXPECT_EQ(found.count(uuid), 0u) << "two VMMs for VM " << uuid;
            found[uuid] = static_cast<pid_t>(std::stol(name));
        }
        return found;
    }

    // The database is consistent at once (every transaction whole), and soon
    // atolld's view, the database's and the processes agree: a VM is running,
    // paused or shutting down exactly when its VMM lives, and atolld follows
    // that very process. ("Soon": a VMM told to stop before the kill may still
    // be on its way out.)
    void expect_consistent(sdbus::IConnection& connection) {
        {
            auto store = Store::open(atolld->paths().database);
            ASSERT_TRUE(store.ok()) << store.error().message;
            auto checked = (*store)->check_consistency();
            EXPECT_TRUE(checked.ok()) << checked.error().message;
        }
        std::string mismatch;
        eventually([&] {
            mismatch = find_mismatch(connection);
            return mismatch.empty();
        }, 5s);
        EXPECT_EQ(mismatch, "");
    }

    std::string find_mismatch(sdbus::IConnection& connection) {
        auto store = Store::open(atolld->paths().database);
        if (!store) return store.error().message;
        auto stored = (*store)->load_all();
        if (!stored) return stored.error().message;
        const auto vms = list(connection);
        if (vms.size() != stored->size()) return "atolld lists " + std::to_string(vms.size()) + " VMs, the database has " + std::to_string(stored->size());
        const auto processes = vmm_processes();
        for (size_t i = 0; i < vms.size(); ++i) {
            const Vm& vm = vms[i];
            const StoredVm& row = (*stored)[i];
            if (vm.uuid != row.definition.uuid) return "the lists differ at " + vm.name;
            if (vm.state != state_name(row.runtime.state)) return vm.name + ": atolld says " + vm.state + ", the database " + state_name(row.runtime.state);
            if (vm.state == "starting") return vm.name + " is left starting";
            const bool active = vm.state == "running" || vm.state == "paused" || vm.state == "shutting-down";
            const bool alive = processes.count(vm.uuid) > 0;
            if (active != alive) return vm.name + " is " + vm.state + " but its VMM " + (alive ? "lives" : "does not live");
            if (active) {
                const auto pid = static_cast<uint32_t>(processes.at(vm.uuid));
                if (vmm_pid(connection, vm.uuid) != pid) return vm.name + ": atolld follows another pid than " + std::to_string(pid);
                if (row.runtime.pid != pid) return vm.name + ": the database has another pid than " + std::to_string(pid);
            }
        }
        for (const auto& [uuid, pid] : processes) {
            if (!std::any_of(vms.begin(), vms.end(), [&](const Vm& vm) { return vm.uuid == uuid; }))
                return "a VMM (pid " + std::to_string(pid) + ") of no defined VM";
        }
        return "";
    }

    void restart_atolld() {
        ASSERT_TRUE(atolld->start()) << atolld->log();
    }

    std::chrono::milliseconds random_delay(int max_ms) {
        return std::chrono::milliseconds(std::uniform_int_distribution<int>(0, max_ms)(random));
    }
};

TEST_F(ReliabilityTest, KillDuringDefine) {
    auto connection = connect();
    // A VM that runs through all of it.
    const std::string keeper = define(*connection, "keeper");
    ASSERT_EQ(call(*connection, keeper, kVmInterface, "Start"), "");
    const std::string keeper_uuid = list(*connection).front().uuid;
    const uint32_t keeper_pid = vmm_pid(*connection, keeper_uuid);

    std::set<std::string> confirmed;  // DefineVM answered with success: must survive
    int next = 0;
    for (int round = 0; round < 15; ++round) {
        std::atomic<bool> stop{false};
        std::vector<std::thread> definers;
        std::mutex mutex;
        for (int t = 0; t < 3; ++t) {
            definers.emplace_back([&] {
                auto own = connect();
                while (!stop.load()) {
                    std::string name;
                    {
                        std::lock_guard lock(mutex);
                        name = "d" + std::to_string(next++);
                    }
                    if (define(*own, name).empty()) break;  // atolld is gone
                    std::lock_guard lock(mutex);
                    confirmed.insert(name);
                }
            });
        }
        std::this_thread::sleep_for(random_delay(40));
        atolld->kill9();
        stop = true;
        for (auto& thread : definers) thread.join();
        EXPECT_TRUE(testing::process_alive(static_cast<pid_t>(keeper_pid)));
        restart_atolld();
        expect_consistent(*connection);
        std::set<std::string> names;
        for (const auto& vm : list(*connection)) names.insert(vm.name);
        for (const auto& name : confirmed) EXPECT_TRUE(names.count(name)) << name << " was confirmed but is gone";
        EXPECT_EQ(vmm_pid(*connection, keeper_uuid), keeper_pid) << "the running VM was not re-adopted";
        if (HasFailure()) break;
    }
    EXPECT_GT(confirmed.size(), 15u);
    ASSERT_EQ(call(*connection, keeper, kVmInterface, "Shutdown", [](sdbus::MethodCall& m) { m << uint32_t{10} << false; }), "");
    expect_consistent(*connection);
}

TEST_F(ReliabilityTest, KillDuringStart) {
    auto connection = connect();
    std::vector<std::string> paths;
    for (int i = 0; i < 8; ++i) paths.push_back(define(*connection, "s" + std::to_string(i)));
    for (int round = 0; round < 12; ++round) {
        std::vector<std::thread> starters;
        for (const auto& path : paths) {
            starters.emplace_back([&, path] {
                auto own = connect();
                call(*own, path, kVmInterface, "Start");
            });
        }
        std::this_thread::sleep_for(random_delay(60));
        atolld->kill9();
        for (auto& thread : starters) thread.join();
        const auto survivors = vmm_processes();  // VMMs started before the kill keep running
        restart_atolld();
        expect_consistent(*connection);
        for (const auto& [uuid, pid] : survivors) {
            if (testing::read_file("/proc/" + std::to_string(pid) + "/cmdline").empty()) continue;  // ended meanwhile
            EXPECT_EQ(vmm_pid(*connection, uuid), static_cast<uint32_t>(pid)) << "VM " << uuid << " not re-adopted";
        }
        // Back to all off, through the re-adopted VMMs, for the next round.
        for (const auto& path : paths) {
            const std::string error = call(*connection, path, kVmInterface, "ForceStop");
            EXPECT_TRUE(error.empty() || error == std::string(kErrorPrefix) + "InvalidState") << error;
        }
        EXPECT_TRUE(vmm_processes().empty());
        expect_consistent(*connection);
        if (HasFailure()) break;
    }
}

TEST_F(ReliabilityTest, KillDuringStop) {
    auto connection = connect();
    std::vector<std::string> paths;
    for (int i = 0; i < 8; ++i) paths.push_back(define(*connection, "t" + std::to_string(i), i % 2 ? "halt" : "poweroff-on-button"));
    // Two VMs nobody stops: they must run through every kill untouched.
    const std::string bystander_a = define(*connection, "bystander-a");
    const std::string bystander_b = define(*connection, "bystander-b", "halt");
    ASSERT_EQ(call(*connection, bystander_a, kVmInterface, "Start"), "");
    ASSERT_EQ(call(*connection, bystander_b, kVmInterface, "Start"), "");
    std::map<std::string, pid_t> bystanders;
    for (const auto& [uuid, pid] : vmm_processes()) bystanders[uuid] = pid;
    ASSERT_EQ(bystanders.size(), 2u);

    for (int round = 0; round < 10; ++round) {
        for (const auto& path : paths) ASSERT_EQ(call(*connection, path, kVmInterface, "Start"), "") << path;
        std::vector<std::thread> stoppers;
        for (size_t i = 0; i < paths.size(); ++i) {
            stoppers.emplace_back([&, i] {
                auto own = connect();
                if (i % 3 == 2) call(*own, paths[i], kVmInterface, "ForceStop");
                else call(*own, paths[i], kVmInterface, "Shutdown", [](sdbus::MethodCall& m) { m << uint32_t{1} << true; });
            });
        }
        std::this_thread::sleep_for(random_delay(80));
        atolld->kill9();
        for (auto& thread : stoppers) thread.join();
        restart_atolld();
        expect_consistent(*connection);
        for (const auto& [uuid, pid] : bystanders) {
            EXPECT_EQ(vmm_pid(*connection, uuid), static_cast<uint32_t>(pid)) << "a bystander VM was disturbed";
        }
        for (const auto& path : paths) {
            const std::string error = call(*connection, path, kVmInterface, "ForceStop");
            EXPECT_TRUE(error.empty() || error == std::string(kErrorPrefix) + "InvalidState") << error;
        }
        expect_consistent(*connection);
        if (HasFailure()) break;
    }
    EXPECT_EQ(vmm_processes().size(), 2u);
}

}  // namespace
}  // namespace atl::dom0
