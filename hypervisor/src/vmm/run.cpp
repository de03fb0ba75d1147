// run_vm: one VM process's life. Builds a machine per boot, serves the control
// socket across boots, and turns how the guest ended into an exit code.
#include "vmm/control_server.h"
#include "vmm/machine.h"

#include <atoll/vmm/vmm.h>

#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace atl::vmm {
namespace {

using nlohmann::json;

uint64_t realtime_ns() {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + now.tv_nsec;
}

// What the control socket acts on: whichever machine is running this boot.
class VmSession final : public ControlHandler {
public:
    explicit VmSession(const VmConfig& config) : config_(config), started_unix_ns_(realtime_ns()) {}

    void set_server(ControlServer* server) { server_ = server; }

    void attach(Machine* machine) {
        std::lock_guard lock(mutex_);
        machine_ = machine;
        state_ = "running";
        ++boot_count_;
        attached_.notify_all();
        if (boot_count_ > 1) broadcast({{"event", "reset"}, {"boot_count", boot_count_}});
    }

    void detach() {
        std::lock_guard lock(mutex_);
        remember_first_entry();
        machine_ = nullptr;
    }

    bool stop_requested() const {
        std::lock_guard lock(mutex_);
        return stop_requested_;
    }

    void announce_exit(const RunOutcome& outcome, const char* reason) {
        if (!server_) return;
        server_->broadcast_and_flush(
            {{"event", "exit"}, {"code", static_cast<int>(outcome.code)}, {"reason", reason}, {"message", outcome.message}});
    }

    json greeting() override {
        std::lock_guard lock(mutex_);
        return {{"name", config_.name}, {"pid", getpid()}, {"state", state_}};
    }

    Reply handle(const std::string& command, const json& /*arguments*/) override {
        std::unique_lock lock(mutex_);
        auto invalid_state = [&](const std::string& why) { return Reply{false, "invalid-state", why, nullptr}; };
        if (command == "status") {
            remember_first_entry();
            auto result = std::make_shared<json>(json{
                {"state", state_},
                {"name", config_.name},
                {"pid", getpid()},
                {"vcpus", config_.vcpus},
                {"memory_mib", config_.memory_mib},
                {"boot_count", boot_count_},
                {"started_unix_ns", started_unix_ns_},
                {"first_vcpu_entry_unix_ns", first_entry_unix_ns_},
            });
            return Reply{true, {}, {}, result};
        }
        if (command == "config") return Reply{true, {}, {}, std::make_shared<json>(json::parse(vm_config_to_json(config_)))};
        // Between two boots of a rebooting guest: the next machine is moments away.
        attached_.wait_for(lock, std::chrono::seconds(5), [this] { return machine_ != nullptr; });
        if (!machine_) return invalid_state("the VM is between boots");
        if (command == "pause") {
            if (state_ == "paused") return invalid_state("the VM is already paused");
            machine_->pause();
            set_state("paused");
            return {};
        }
        if (command == "resume") {
            if (state_ != "paused") return invalid_state("the VM is not paused");
            machine_->resume();
            set_state("running");
            return {};
        }
        if (command == "shutdown") {
            if (state_ == "paused") return invalid_state("the VM is paused; resume it first");
            machine_->press_power_button();
            set_state("shutting-down");
            return {};
        }
        if (command == "reboot") {
            machine_->request_stop(Machine::StopReason::Reset);
            return {};
        }
        if (command == "stop") {
            stop_requested_ = true;
            machine_->request_stop(Machine::StopReason::Stopped);
            return {};
        }
        return Reply{false, "unknown-command", "unknown command \"" + command + "\"", nullptr};
    }

private:
    // The first boot's first entry, kept across reboots.
    void remember_first_entry() {
        if (!first_entry_unix_ns_ && machine_) first_entry_unix_ns_ = machine_->first_vcpu_entry_unix_ns();
    }
    void set_state(const char* state) {
        state_ = state;
        broadcast({{"event", "state"}, {"state", state_}});
    }
    void broadcast(const json& event) {
        if (server_) server_->broadcast(event);
    }

    const VmConfig& config_;
    const uint64_t started_unix_ns_;
    ControlServer* server_ = nullptr;
    mutable std::mutex mutex_;
    std::condition_variable attached_;
    Machine* machine_ = nullptr;
    std::string state_ = "running";
    unsigned boot_count_ = 0;
    uint64_t first_entry_unix_ns_ = 0;
    bool stop_requested_ = false;
};

// The consoles' own thread, stopped before the consoles go.
class ConsoleThread {
public:
    explicit ConsoleThread(EventLoop& loop) : loop_(loop), thread_([this] { loop_.run(); }) {}
    ~ConsoleThread() {
        loop_.stop();
        thread_.join();
    }

private:
    EventLoop& loop_;
    std::thread thread_;
};

const char* reason_name(Machine::StopReason reason) {
    switch (reason) {
    case Machine::StopReason::PowerOff: return "poweroff";
    case Machine::StopReason::Stopped: return "stopped";
    case Machine::StopReason::TripleFault: return "triple-fault";
    case Machine::StopReason::InternalError: return "internal-error";
    case Machine::StopReason::HostError: return "host-error";
    default: return "poweroff";
    }
}

}  // namespace

RunOutcome run_vm(const VmConfig& config, const RunOptions& options) {
    // A console client that goes away must not kill the VM.
    signal(SIGPIPE, SIG_IGN);
    auto hypervisor = hv::open_kvm(options.kvm_device.c_str());
    if (!hypervisor) return {kExitHostError, hypervisor.error().message};

    if (auto valid = validate_vm_config(config); !valid) return {kExitBadInput, valid.error().message};
    EventLoop console_loop;
    auto consoles = open_consoles(config, console_loop);
    if (!consoles) return {kExitBadInput, consoles.error().message};
    ConsoleThread console_thread(console_loop);
    // Made once, like the consoles: the display server keeps the VM and its
    // viewers while the guest reboots.
    const auto display = make_display_connection(config);

    VmSession session(config);
    std::unique_ptr<ControlServer> server;
    for (;;) {
        auto machine = Machine::build(config, **hypervisor, *consoles, display);
        if (!machine) {
            RunOutcome outcome{kExitBadInput, machine.error().message};
            session.announce_exit(outcome, "bad-input");
            return outcome;
        }
        session.attach(machine->get());
        // The socket appears once the first machine exists, so that a client
        // that sees it can act on the VM at once.
        if (!server && !options.control_socket.empty()) {
            auto started = ControlServer::start(options.control_socket, session);
            if (!started) return {kExitBadInput, started.error().message};
            server = std::move(*started);
            session.set_server(server.get());
        }
        const auto reason = (*machine)->run();
        session.detach();
        RunOutcome outcome;
        switch (reason) {
        case Machine::StopReason::Reset:
            continue;  // the guest rebooted: a fresh machine from the same configuration
        case Machine::StopReason::PowerOff:
        case Machine::StopReason::Stopped:
        case Machine::StopReason::None:
            outcome = {kExitPowerOff, {}};
            break;
        case Machine::StopReason::TripleFault:
            outcome = {kExitTripleFault, (*machine)->stop_message()};
            break;
        case Machine::StopReason::InternalError:
            outcome = {kExitInternalError, (*machine)->stop_message()};
            break;
        case Machine::StopReason::HostError:
            outcome = {kExitHostError, (*machine)->stop_message()};
            break;
        }
        session.announce_exit(outcome, reason_name(reason));
        return outcome;
    }
}

}  // namespace atl::vmm
