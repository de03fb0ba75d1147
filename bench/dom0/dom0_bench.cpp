// dom0's benchmarks against atolld on a private bus (bench/dom0/run starts
// both). Each metric is measured against a floor in the same run:
//   property_read        a VM property Get       vs a Get the bus daemon answers itself
//                        (and, for scale, the same Get answered by a trivial service)
//   define_undefine      DefineVM + Undefine     vs two calls the bus daemon answers
//   list_100             ListVMs with 100 VMs    vs ListNames answered by the bus daemon
//   start_to_first_entry Start -> first vCPU entry vs atoll-vmm started by hand
// Prints one JSON line per metric: {"metric","value","unit","baseline","ratio"}.
//
// Usage: dom0_bench BUS_ADDRESS STORAGE_DIR RUNTIME_DIR ATOLL_VMM [--quick]
#include <atoll/dom0/dbus_service.h>
#include <atoll/dom0/vm_definition.h>

#include "control_client.h"
#include "vmm_process.h"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace atl::dom0;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Median microseconds of `operation` over `count` runs (after a warm-up).
double median_us(int count, const std::function<void()>& operation) {
    for (int i = 0; i < std::max(10, count / 20); ++i) operation();
    std::vector<double> samples;
    samples.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
        const auto start = Clock::now();
        operation();
        samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    return median(samples);
}

void report(const std::string& metric, double value, const std::string& unit, double baseline) {
    json line{{"metric", metric}, {"unit", unit}};
    if (value > 0 && baseline > 0) {
        line["value"] = std::round(value * 100) / 100;
        line["baseline"] = std::round(baseline * 100) / 100;
        line["ratio"] = std::round(value / baseline * 1000) / 1000;
    } else {
        line["value"] = nullptr;
        line["baseline"] = nullptr;
        line["ratio"] = nullptr;
    }
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
}

uint64_t realtime_ns() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

// first_vcpu_entry_unix_ns from the VMM's status, once it is known.
uint64_t first_entry_ns(const std::string& control_socket) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
        if (auto client = ControlClient::connect(control_socket, std::chrono::milliseconds(2000))) {
            while (Clock::now() < deadline) {
                auto status = (*client)->request("status", std::chrono::milliseconds(2000));
                if (!status) break;
                const uint64_t entry = status->value("first_vcpu_entry_unix_ns", uint64_t{0});
                if (entry) return entry;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return 0;
}

std::string tiny_config(const std::string& storage, const std::string& name) {
    return R"({"name": ")" + name + R"(", "memory_mib": 32, "nets": [], "entropy": false, "boot": {"kernel": ")" +
           storage + R"(/tiny-poweroff-on-button.bzImage"}})";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: dom0_bench BUS_ADDRESS STORAGE_DIR RUNTIME_DIR ATOLL_VMM [--quick]\n");
        return 2;
    }
    const std::string address = argv[1], storage = argv[2], runtime = argv[3], vmm = argv[4];
    const bool quick = argc > 5 && std::string(argv[5]) == "--quick";
    const int reads = quick ? 300 : 5000, defines = quick ? 30 : 300, lists = quick ? 50 : 500,
              starts = quick ? 5 : 21;

    auto connection = sdbus::createSessionBusConnectionWithAddress(address);
    auto bus = sdbus::createProxy(*connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    auto manager = sdbus::createProxy(*connection, kBusName, kManagerPath);
    auto define = [&](const std::string& config) {
        sdbus::ObjectPath path;
        manager->callMethod("DefineVM").onInterface(kManagerInterface).withArguments(config).storeResultsTo(path);
        return std::string(path);
    };
    auto undefine = [&](const std::string& path) {
        sdbus::createProxy(*connection, kBusName, path)->callMethod("Undefine").onInterface(kVmInterface);
    };

    // ---- property read --------------------------------------------------------
    // Interleaved in rounds, so that a busy moment of the machine weighs on
    // all three alike. The reference is a trivial service (one constant
    // property) in this process: what any service on the bus costs.
    const std::string probe = define(tiny_config(storage, "probe"));
    auto probe_proxy = sdbus::createProxy(*connection, kBusName, probe);
    auto reference_connection = sdbus::createSessionBusConnectionWithAddress(address);
    reference_connection->requestName("org.atoll.BenchReference");
    auto reference_object = sdbus::createObject(*reference_connection, "/reference");
    reference_object->registerProperty("State").onInterface("org.atoll.BenchReference").withGetter([] {
        return std::string("running");
    });
    reference_object->finishRegistration();
    reference_connection->enterEventLoopAsync();
    auto reference = sdbus::createProxy(*connection, "org.atoll.BenchReference", "/reference");
    std::vector<double> floor_reads, atolld_reads, reference_reads;
    auto sample = [](std::vector<double>& into, int count, const std::function<void()>& operation) {
        for (int i = 0; i < count; ++i) {
            const auto start = Clock::now();
            operation();
            into.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
    };
    auto floor_get = [&] {
        (void)bus->getProperty("Features").onInterface("org.freedesktop.DBus").get<std::vector<std::string>>();
    };
    auto atolld_get = [&] { (void)probe_proxy->getProperty("State").onInterface(kVmInterface).get<std::string>(); };
    auto reference_get = [&] {
        (void)reference->getProperty("State").onInterface("org.atoll.BenchReference").get<std::string>();
    };
    std::vector<double> warm_up;
    sample(warm_up, 200, floor_get);
    sample(warm_up, 200, atolld_get);
    sample(warm_up, 200, reference_get);
    for (int round = 0; round < 10; ++round) {
        sample(floor_reads, reads / 10, floor_get);
        sample(atolld_reads, reads / 10, atolld_get);
        sample(reference_reads, reads / 10, reference_get);
    }
    report("dom0_property_read", median(atolld_reads), "us", median(floor_reads));
    report("dbus_reference_service_property_read", median(reference_reads), "us", median(floor_reads));
    reference_connection->leaveEventLoop();

    // ---- define + undefine --------------------------------------------------------
    int serial = 0;
    const double floor_pair = median_us(defines, [&] {
        std::string owner;
        bus->callMethod("GetNameOwner").onInterface("org.freedesktop.DBus").withArguments(std::string(kBusName)).storeResultsTo(owner);
        bool has = false;
        bus->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(std::string(kBusName)).storeResultsTo(has);
    });
    const double pair = median_us(defines, [&] { undefine(define(tiny_config(storage, "d" + std::to_string(serial++)))); });
    report("dom0_define_undefine", pair, "us", floor_pair);

    // ---- listing 100 VMs ------------------------------------------------------------
    std::vector<std::string> hundred;
    for (int i = 0; i < 99; ++i) hundred.push_back(define(tiny_config(storage, "l" + std::to_string(i))));
    size_t listed = 0;
    const double floor_list = median_us(lists, [&] {
        std::vector<std::string> names;
        bus->callMethod("ListNames").onInterface("org.freedesktop.DBus").storeResultsTo(names);
    });
    const double list = median_us(lists, [&] {
        std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> vms;
        manager->callMethod("ListVMs").onInterface(kManagerInterface).storeResultsTo(vms);
        listed = vms.size();
    });
    if (listed != 100) std::fprintf(stderr, "dom0_bench: ListVMs gave %zu VMs, not 100\n", listed);
    report("dom0_list_100_vms", list, "us", floor_list);
    for (const auto& path : hundred) undefine(path);

    // ---- Start -> first vCPU entry ----------------------------------------------------
    const std::string uuid = probe_proxy->getProperty("UUID").onInterface(kVmInterface).get<std::string>();
    const std::string control_socket = runtime + "/vms/" + uuid + ".ctl";
    std::vector<double> via_atolld, direct;
    for (int i = 0; i < starts; ++i) {
        const uint64_t t0 = realtime_ns();
        probe_proxy->callMethod("Start").onInterface(kVmInterface);
        const uint64_t entry = first_entry_ns(control_socket);
        if (entry > t0) via_atolld.push_back(static_cast<double>(entry - t0) / 1e6);
        probe_proxy->callMethod("ForceStop").onInterface(kVmInterface);
    }
    // The floor: atoll-vmm started by hand with the configuration atolld writes.
    const std::string config_path = runtime + "/bench-direct.json";
    const std::string direct_socket = runtime + "/bench-direct.ctl";
    std::ofstream(config_path) << R"({"name": "direct", "kernel": ")" << storage
                               << R"(/tiny-poweroff-on-button.bzImage", "memory_mib": 32, "nets": [], "entropy": false,)"
                               << R"( "serial": "socket:)" << runtime << R"(/bench-direct.serial", "virtio_console": "none"})";
    for (int i = 0; i < starts; ++i) {
        const uint64_t t0 = realtime_ns();
        auto spawned = spawn_detached(vmm, {"--config", config_path, "--control-socket", direct_socket}, runtime + "/bench-direct.log");
        if (!spawned) break;
        const uint64_t entry = first_entry_ns(direct_socket);
        if (entry > t0) direct.push_back(static_cast<double>(entry - t0) / 1e6);
        pidfd_signal(spawned->pidfd, SIGKILL);
        (void)reap(spawned->pidfd, true);
        close(spawned->pidfd);
    }
    report("dom0_start_to_first_vcpu_entry", via_atolld.empty() ? 0 : median(via_atolld), "ms",
           direct.empty() ? 0 : median(direct));
    undefine(probe);
    return 0;
}
