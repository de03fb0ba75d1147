#include <atoll/dom0/daemon.h>
#include <atoll/dom0/storage_policy.h>
#include <atoll/dom0/store.h>
#include <atoll/vmm/config.h>

#include "audio_state.h"
#include "control_client.h"
#include "display_watch.h"
#include "log.h"
#include "supervisor.h"
#include "task_group.h"
#include "vmm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#ifndef ATOLL_VERSION
#define ATOLL_VERSION "0.0.0"
#endif

namespace atl::dom0 {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

uint64_t now_unix_us() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

std::string first_line(const std::string& text) {
    const size_t newline = text.find('\n');
    return newline == std::string::npos ? text : text.substr(0, newline);
}

std::string seconds_text(milliseconds duration) {
    const auto ms = duration.count();
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

Outcome<void> write_file_atomically(const std::string& path, const std::string& content) {
    const std::string temporary = path + ".tmp";
    {
        const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return fault(ErrorKind::Failed, temporary + ": " + std::strerror(errno));
        size_t written = 0;
        while (written < content.size()) {
            const ssize_t count = write(fd, content.data() + written, content.size() - written);
            if (count < 0) {
                if (errno == EINTR) continue;
                const int error = errno;
                close(fd);
                return fault(ErrorKind::Failed, temporary + ": " + std::strerror(error));
            }
            written += static_cast<size_t>(count);
        }
        close(fd);
    }
    if (rename(temporary.c_str(), path.c_str()) != 0) return fault(ErrorKind::Failed, path + ": " + std::strerror(errno));
    return {};
}

// The VMM's view of a definition (hypervisor/include/atoll/vmm/config.h), with
// resolved paths and the serial console on a socket for atollctl console.
Outcome<vmm::VmConfig> to_vmm_config(const VmDefinition& d, const std::string& serial_socket,
                                     const std::string& display_socket, const std::string& audio_server) {
    if (d.boot.kind != BootSource::Kind::Kernel)
        return fault(ErrorKind::Failed, "VM '" + d.name +
                                            "' boots from a disk, which needs firmware atoll-vmm does not have yet; "
                                            "give boot.kernel instead");
    vmm::VmConfig config;
    config.name = d.name;
    config.kernel = d.boot.kernel;
    config.initrd = d.boot.initrd;
    config.cmdline = d.boot.cmdline;
    config.memory_mib = d.memory_mib;
    config.vcpus = d.vcpus;
    for (const auto& disk : d.disks) config.disks.push_back({disk.path, disk.read_only, disk.serial});
    for (const auto& nic : d.nets) {
        vmm::NetConfig net;
        net.mode = nic.mode == NicDefinition::Mode::Tap ? vmm::NetConfig::Mode::Tap : vmm::NetConfig::Mode::User;
        net.tap_name = nic.tap;
        net.mac = nic.mac;
        net.host_forwards = nic.host_forwards;
        config.nets.push_back(std::move(net));
    }
    config.serial = {vmm::ConsoleConfig::Mode::Socket, serial_socket};
    config.virtio_console = {vmm::ConsoleConfig::Mode::None, {}};
    config.entropy = d.entropy;
    if (auto display = display_definition(d)) {
        config.display.socket = display_socket;
        config.display.width = static_cast<unsigned>(display->width);
        config.display.height = static_cast<unsigned>(display->height);
        config.display.scanouts = static_cast<unsigned>(display->scanouts);
    }
    if (auto audio = audio_definition(d)) {
        config.audio.backend = vmm::AudioConfig::Backend::Pulse;
        config.audio.server = audio->server.empty() ? audio_server : audio->server;
    }
    if (auto valid = vmm::validate_vm_config(config); !valid)
        return fault(ErrorKind::Failed, "VM '" + d.name + "': atoll-vmm would refuse it: " + valid.error().message);
    return config;
}

// What atoll-vmm's --exit-file says, if it is there and well-formed.
std::optional<VmmEnd> read_exit_file(const std::string& path) {
    std::ifstream file(path);
    if (!file) return std::nullopt;
    std::string text;
    std::getline(file, text);
    const auto record = nlohmann::json::parse(text, nullptr, false);
    if (!record.is_object() || !record.contains("code") || !record["code"].is_number_integer()) return std::nullopt;
    VmmEnd end;
    end.code = record["code"].get<int>();
    if (record.contains("reason") && record["reason"].is_string()) end.reason = record["reason"].get<std::string>();
    if (record.contains("message") && record["message"].is_string()) end.message = record["message"].get<std::string>();
    return end;
}

std::optional<VmState> vmm_state(const std::string& text) {
    if (text == "running") return VmState::Running;
    if (text == "paused") return VmState::Paused;
    if (text == "shutting-down") return VmState::ShuttingDown;
    return std::nullopt;
}

// One life of an atoll-vmm process, from spawn to its end.
struct Run {
    uint64_t id = 0;
    pid_t pid = 0;
    int signal_fd = -1;  // a pidfd of our own for signals (the supervisor owns another)
    bool ended = false;
    bool stop_requested = false;
    // States our own commands caused, whose "state" events are still to come.
    // atoll-vmm announces a change after replying, and a later command's reply
    // can overtake that announcement: the echo must not undo the later change.
    std::deque<std::string> echoes;
    std::string control_socket;
    std::string console_socket;
    std::optional<VncEndpoint> vnc;  // as atoll-display last reported it
    std::optional<AudioState> audio;  // as atoll-vmm last reported it
    ~Run() {
        if (signal_fd >= 0) close(signal_fd);
    }
};

struct Vm {
    VmDefinition definition;
    RuntimeRecord runtime;
    std::string busy;  // the operation in progress, if any
    std::shared_ptr<Run> run;
};

}  // namespace

class Daemon::Impl {
public:
    explicit Impl(const DaemonOptions& opts) : options(opts), policy(opts.storage_dirs) {}

    DaemonOptions options;
    StoragePolicy policy;
    std::unique_ptr<Store> store;
    std::string vms_dir;
    int lock_fd = -1;

    mutable std::mutex mutex;
    std::condition_variable changed;  // a run ended or atolld is stopping
    DaemonObserver* observer = nullptr;
    std::map<std::string, std::shared_ptr<Vm>> vms;  // by UUID
    std::map<uint64_t, std::string> run_owner;       // supervised runs: run id -> UUID
    uint64_t next_run = 1;
    bool stopping = false;

    TaskGroup tasks;  // automatic restarts, autostart
    std::unique_ptr<Supervisor> supervisor;
    std::unique_ptr<DisplayStateWatcher> display_watcher;

    // Takes in what atoll-display now says of `vm`'s screen.
    void refresh_vnc_locked(Vm& vm) {
        if (!vm.run || vm.run->ended) return;
        auto vnc = read_vnc_state(options.display_state_dir, vm.definition.name);
        if (vnc == vm.run->vnc) return;
        vm.run->vnc = std::move(vnc);
        if (vm.run->vnc)
            log_info("VM '" + vm.definition.name + "': VNC at " + vnc_address_text(*vm.run->vnc));
        if (observer) observer->vm_changed(info_locked(vm), false);
    }
    void set_audio_locked(Vm& vm, std::optional<AudioState> audio) {
        if (!vm.run || audio == vm.run->audio) return;
        if (audio && vm.run->audio)
            for (const auto& news : audio_trouble_news(*vm.run->audio, *audio))
                log_warning("VM '" + vm.definition.name + "': " + news);
        vm.run->audio = audio;
        if (observer) observer->vm_changed(info_locked(vm), false);
    }

    Outcome<void> audio_command(const std::string& uuid, const char* command, const nlohmann::json& arguments) {
        uint64_t run_id = 0;
        std::string name;
        {
            std::lock_guard lock(mutex);
            auto found = lookup_locked(uuid);
            if (!found) return found.error();
            auto vm = *found;
            name = vm->definition.name;
            if (!audio_definition(vm->definition))
                return fault(ErrorKind::InvalidState, "VM '" + name + "' has no sound device (\"audio\" in its definition)");
            if (!vm->run || vm->runtime.state == VmState::Starting || !state_is_active(vm->runtime.state))
                return not_running_fault(*vm, "start it first");
            run_id = vm->run->id;
        }
        auto reply = supervisor->request(run_id, command, milliseconds(5000), arguments);
        if (!reply) return fault(reply.error().kind, "VM '" + name + "': " + reply.error().message);
        std::lock_guard lock(mutex);
        auto vm = find_locked(uuid);
        if (vm && vm->run && vm->run->id == run_id && reply->contains("audio") && (*reply)["audio"].is_object())
            set_audio_locked(*vm, audio_state_from((*reply)["audio"], vm->run->audio));
        return {};
    }

    void display_state_changed(const std::string& vm_name) {
        std::lock_guard lock(mutex);
        for (auto& [uuid, vm] : vms) {
            if (vm_name.empty() || vm->definition.name == vm_name) refresh_vnc_locked(*vm);
        }
    }

    std::string path_for(const std::string& uuid, const char* suffix) const { return vms_dir + "/" + uuid + suffix; }

    void remove_run_files(const std::string& uuid) {
        for (const char* suffix : {".ctl", ".serial", ".json", ".exit"}) unlink(path_for(uuid, suffix).c_str());
    }

    VmInfo info_locked(const Vm& vm) const {
        VmInfo info;
        info.definition = vm.definition;
        info.state = vm.runtime.state;
        info.reason = vm.runtime.reason;
        info.pid = vm.runtime.pid;
        info.boot_count = vm.runtime.boot_count;
        info.started_unix_us = vm.runtime.started_unix_us;
        info.restart_count = vm.runtime.restart_count;
        if (vm.run && state_is_active(vm.runtime.state) && vm.runtime.state != VmState::Starting) {
            info.console_socket = vm.run->console_socket;
            info.vnc = vm.run->vnc;
            info.audio = vm.run->audio;
        }
        info.busy = !vm.busy.empty();
        return info;
    }

    // Records a new runtime state: database first, then memory, then observers.
    void commit_locked(Vm& vm, const RuntimeRecord& runtime) {
        const bool state_changed = runtime.state != vm.runtime.state || runtime.reason != vm.runtime.reason;
        if (runtime == vm.runtime) return;
        if (auto stored = store->set_runtime(vm.definition.uuid, runtime); !stored)
            log_error("VM '" + vm.definition.name + "': " + stored.error().message);
        if (state_changed && runtime.state != vm.runtime.state)
            log_info("VM '" + vm.definition.name + "': " + state_name(runtime.state) +
                     (runtime.reason.empty() ? "" : " (" + runtime.reason + ")"));
        vm.runtime = runtime;
        if (observer) observer->vm_changed(info_locked(vm), state_changed);
    }

    std::shared_ptr<Vm> find_locked(const std::string& uuid) const {
        auto it = vms.find(uuid);
        return it == vms.end() ? nullptr : it->second;
    }

    Outcome<std::shared_ptr<Vm>> lookup_locked(const std::string& uuid) const {
        auto vm = find_locked(uuid);
        if (!vm) return fault(ErrorKind::NotFound, "no VM with UUID " + uuid);
        return vm;
    }

    static Fault busy_fault(const Vm& vm) {
        return fault(ErrorKind::InvalidState, "VM '" + vm.definition.name + "' is busy: " + vm.busy + " in progress");
    }

    static Fault not_running_fault(const Vm& vm, const std::string& wanted) {
        return fault(ErrorKind::InvalidState, "VM '" + vm.definition.name + "' is " +
                                                  state_name(vm.runtime.state) + "; " + wanted);
    }

    // Clears `busy` when an operation ends, however it ends.
    class BusyGuard {
    public:
        BusyGuard(Impl& impl, std::shared_ptr<Vm> vm) : impl_(impl), vm_(std::move(vm)) {}
        ~BusyGuard() {
            std::lock_guard lock(impl_.mutex);
            vm_->busy.clear();
        }

    private:
        Impl& impl_;
        std::shared_ptr<Vm> vm_;
    };

    // ---- how a VMM ended --------------------------------------------------------
    static void describe_end(const Run& run, const VmmEnd& end, const std::string& log_path, VmState& state,
                             std::string& reason) {
        if (run.stop_requested) {
            state = VmState::ShutOff;
            reason = "force-stopped";
            return;
        }
        std::optional<int> code = end.code ? end.code : end.exit_status;
        std::string message = first_line(end.message);
        if (!end.code && end.exit_status && *end.exit_status != 0) message = vmm_error_from_log(log_path);
        if (code) {
            switch (*code) {
            case 0:
                state = VmState::ShutOff;
                reason = end.reason == "stopped" ? "stopped" : "the guest powered off";
                return;
            case 1: reason = "bad input"; break;
            case 2: reason = "host error"; break;
            case 3: reason = "the guest triple-faulted"; break;
            case 4: reason = "KVM could not run the guest"; break;
            default: reason = "atoll-vmm exited with code " + std::to_string(*code); break;
            }
            state = VmState::Crashed;
            if (!message.empty()) reason += ": " + message;
            return;
        }
        state = VmState::Crashed;
        if (end.signal) reason = "atoll-vmm was killed by " + signal_text(*end.signal);
        else reason = "atoll-vmm ended abruptly (no exit event: killed or crashed)";
    }

    void on_end(uint64_t run_id, const VmmEnd& end) {
        std::unique_lock lock(mutex);
        auto owner = run_owner.find(run_id);
        if (owner == run_owner.end()) return;
        const std::string uuid = owner->second;
        run_owner.erase(owner);
        auto vm = find_locked(uuid);
        if (!vm || !vm->run || vm->run->id != run_id) return;
        auto run = vm->run;
        RuntimeRecord record = vm->runtime;
        describe_end(*run, end, path_for(uuid, ".log"), record.state, record.reason);
        record.pid = 0;
        record.started_unix_us = 0;
        bool restart = false;
        const RestartPolicy& policy = vm->definition.restart;
        if (record.state == VmState::Crashed && policy.kind == RestartPolicy::Kind::OnCrash && !stopping) {
            if (record.restart_count < policy.max_restarts) {
                ++record.restart_count;
                restart = true;
                record.reason += "; restarting (" + std::to_string(record.restart_count) + " of " +
                                 std::to_string(policy.max_restarts) + ")";
            } else {
                record.reason += "; not restarted (" + std::to_string(policy.max_restarts) + " restarts used)";
            }
        }
        if (record.state == VmState::Crashed) log_error("VM '" + vm->definition.name + "' crashed: " + record.reason);
        run->ended = true;
        vm->run.reset();
        remove_run_files(uuid);
        commit_locked(*vm, record);
        changed.notify_all();
        if (restart) {
            tasks.spawn([this, uuid] {
                {
                    std::unique_lock wait_lock(mutex);
                    if (changed.wait_for(wait_lock, options.restart_delay, [this] { return stopping; })) return;
                }
                if (auto started = start(uuid, true); !started)
                    log_error("automatic restart of VM " + uuid + " failed: " + started.error().message);
            });
        }
    }

    // A command's success, in the order of the VMM's stream (see supervisor.h).
    void on_reply(uint64_t run_id, const std::string& command) {
        std::lock_guard lock(mutex);
        auto owner = run_owner.find(run_id);
        if (owner == run_owner.end()) return;
        auto vm = find_locked(owner->second);
        if (!vm || !vm->run || vm->run->id != run_id || vm->run->ended) return;
        RuntimeRecord record = vm->runtime;
        if (command == "pause") {
            record.state = VmState::Paused;
            record.reason = "paused";
        } else if (command == "resume") {
            record.state = VmState::Running;
            record.reason = "resumed";
        } else if (command == "shutdown") {
            record.state = VmState::ShuttingDown;
            record.reason = "the power button was pressed";
        } else {
            return;
        }
        vm->run->echoes.push_back(command == "pause" ? "paused" : command == "resume" ? "running" : "shutting-down");
        if (record.state != vm->runtime.state) commit_locked(*vm, record);
    }

    void on_event(uint64_t run_id, const nlohmann::json& event) {
        std::lock_guard lock(mutex);
        auto owner = run_owner.find(run_id);
        if (owner == run_owner.end()) return;
        auto vm = find_locked(owner->second);
        if (!vm || !vm->run || vm->run->id != run_id || vm->runtime.state == VmState::Starting) return;
        RuntimeRecord record = vm->runtime;
        const std::string kind = event.value("event", "");
        if (kind == "audio") {
            // Only a VM with sound sends these, and it keeps its sound while it
            // runs: anything but an object is a malformed event, ignored.
            if (event.contains("audio") && event["audio"].is_object())
                set_audio_locked(*vm, audio_state_from(event["audio"], vm->run->audio));
            return;
        }
        if (kind == "state" && event.contains("state") && event["state"].is_string()) {
            const std::string announced = event["state"].get<std::string>();
            auto& echoes = vm->run->echoes;
            if (auto echo = std::find(echoes.begin(), echoes.end(), announced); echo != echoes.end()) {
                echoes.erase(echoes.begin(), echo + 1);  // our own change, already recorded
                return;
            }
            auto state = vmm_state(announced);
            if (!state || *state == record.state) return;
            record.state = *state;
            record.reason = *state == VmState::Paused ? "paused"
                            : *state == VmState::ShuttingDown ? "the power button was pressed"
                                                               : "resumed";
        } else if (kind == "reset" && event.contains("boot_count") && event["boot_count"].is_number_unsigned()) {
            record.boot_count = event["boot_count"].get<uint32_t>();
            // A new machine runs, whatever the last one was doing.
            if (record.state != VmState::Running) {
                record.state = VmState::Running;
                record.reason = "the guest rebooted";
            }
        } else {
            return;
        }
        commit_locked(*vm, record);
    }

    // ---- start ------------------------------------------------------------------
    Outcome<void> start(const std::string& uuid, bool automatic) {
        std::shared_ptr<Vm> vm;
        VmDefinition definition;
        {
            std::lock_guard lock(mutex);
            if (stopping) return fault(ErrorKind::Failed, "atolld is stopping");
            auto found = lookup_locked(uuid);
            if (!found) return found.error();
            vm = *found;
            if (!vm->busy.empty()) return busy_fault(*vm);
            if (state_is_active(vm->runtime.state))
                return fault(ErrorKind::InvalidState,
                             "VM '" + vm->definition.name + "' is already " + state_name(vm->runtime.state));
            if (automatic && vm->runtime.state != VmState::Crashed) return {};  // started or stopped by hand meanwhile
            vm->busy = "start";
            definition = vm->definition;
        }
        BusyGuard guard(*this, vm);
        const std::string& name = definition.name;

        auto checked = policy.check_definition(definition);
        if (!checked) return fault(ErrorKind::Failed, "cannot start: " + checked.error().message);
        const std::string control_socket = path_for(uuid, ".ctl");
        const std::string console_socket = path_for(uuid, ".serial");
        const std::string config_path = path_for(uuid, ".json");
        const std::string log_path = path_for(uuid, ".log");
        auto config = to_vmm_config(*checked, console_socket, options.display_socket, options.audio_server);
        if (!config) return config.error();
        remove_run_files(uuid);
        if (auto written = write_file_atomically(config_path, vmm::vm_config_to_json(*config) + "\n"); !written)
            return fault(ErrorKind::Failed, "cannot start VM '" + name + "': " + written.error().message);

        auto run = std::make_shared<Run>();
        RuntimeRecord record;
        {
            std::lock_guard lock(mutex);
            run->id = next_run++;
            run->control_socket = control_socket;
            run->console_socket = console_socket;
            vm->run = run;
            record = vm->runtime;
            record.state = VmState::Starting;
            record.reason = automatic ? "restarting after a crash" : "start requested";
            record.pid = 0;
            record.boot_count = 0;
            record.started_unix_us = now_unix_us();
            if (!automatic) record.restart_count = 0;
            // Recorded before the VMM exists: an atolld killed from here on
            // finds the VM "starting" and looks for its VMM by socket path.
            commit_locked(*vm, record);
        }
        // The VM did not come up: back to shut-off, and say why.
        // `crashed`: the guest itself failed in its first moments (a triple
        // fault, an instruction KVM cannot run), not the start.
        auto fail = [&](const std::string& why, bool crashed = false) -> Fault {
            std::lock_guard lock(mutex);
            run->ended = true;
            if (vm->run == run) vm->run.reset();
            remove_run_files(uuid);
            RuntimeRecord failed = vm->runtime;
            failed.state = crashed && !run->stop_requested ? VmState::Crashed : VmState::ShutOff;
            failed.reason = run->stop_requested ? "force-stopped while starting"
                            : crashed           ? why
                                                : "failed to start: " + why;
            failed.pid = 0;
            failed.started_unix_us = 0;
            if (crashed) log_error("VM '" + name + "' crashed while starting: " + why);
            commit_locked(*vm, failed);
            changed.notify_all();
            if (run->stop_requested) return fault(ErrorKind::Failed, "VM '" + name + "' was force-stopped while starting");
            if (crashed) return fault(ErrorKind::Failed, "VM '" + name + "' crashed while starting: " + why);
            return fault(ErrorKind::Failed, "cannot start VM '" + name + "': " + why);
        };

        // One older log is kept when the log grows past 1 MiB.
        if (struct stat log_info {}; stat(log_path.c_str(), &log_info) == 0 && log_info.st_size > (1 << 20))
            rename(log_path.c_str(), (log_path + ".1").c_str());
        if (const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600); log_fd >= 0) {
            const std::string header = "---- atolld: starting VM '" + name + "'\n";
            (void)!write(log_fd, header.data(), header.size());
            close(log_fd);
        }
        auto spawned = spawn_detached(options.vmm_path,
                                      {"--config", config_path, "--control-socket", control_socket, "--serial",
                                       "socket:" + console_socket, "--exit-file", path_for(uuid, ".exit")},
                                      log_path);
        if (!spawned) return fail(spawned.error().message);
        const int pidfd = spawned->pidfd;
        {
            std::lock_guard lock(mutex);
            run->pid = spawned->pid;
            run->signal_fd = dup(pidfd);
            fcntl(run->signal_fd, F_SETFD, FD_CLOEXEC);
            record = vm->runtime;
            record.pid = spawned->pid;
            commit_locked(*vm, record);
        }

        // Wait for the control socket, or the process's early end.
        const auto deadline = Clock::now() + options.start_timeout;
        std::unique_ptr<ControlClient> client;
        for (;;) {
            auto connected = ControlClient::connect(control_socket, milliseconds(2000));
            if (connected) {
                client = std::move(*connected);
                break;
            }
            if (connected.error().kind != ErrorKind::NotFound) {
                pidfd_signal(pidfd, SIGKILL);
                (void)reap(pidfd, true);
                close(pidfd);
                return fail(connected.error().message);
            }
            {
                std::lock_guard lock(mutex);
                if (stopping) {
                    // Leave the VMM be: the next atolld finds it "starting" and adopts it.
                    close(pidfd);
                    run->ended = true;
                    return fault(ErrorKind::Failed, "atolld is stopping");
                }
            }
            pollfd waiting{pidfd, POLLIN, 0};
            if (poll(&waiting, 1, 2) > 0) {
                auto status = reap(pidfd, true);
                close(pidfd);
                if (status && !status->signaled && (status->code == 3 || status->code == 4)) {
                    VmmEnd end;
                    end.exit_status = status->code;
                    VmState state;
                    std::string why;
                    describe_end(*run, end, log_path, state, why);
                    return fail(why, true);
                }
                std::string why = vmm_error_from_log(log_path);
                if (status) {
                    why += status->signaled ? " (atoll-vmm killed by " + signal_text(status->code) + ")"
                                            : " (atoll-vmm exit code " + std::to_string(status->code) + ")";
                }
                return fail(why);
            }
            if (Clock::now() > deadline) {
                pidfd_signal(pidfd, SIGKILL);
                (void)reap(pidfd, true);
                close(pidfd);
                return fail("atoll-vmm did not serve its control socket within " + seconds_text(options.start_timeout));
            }
        }
        const VmmHello hello = client->hello();
        if (hello.pid != spawned->pid) {
            pidfd_signal(pidfd, SIGKILL);
            (void)reap(pidfd, true);
            close(pidfd);
            return fail("another process (pid " + std::to_string(hello.pid) + ") serves " + control_socket);
        }
        {
            std::lock_guard lock(mutex);
            run_owner[run->id] = uuid;
            run->audio = audio_state_from(hello.audio);
        }
        std::string unread;
        const int control_fd = client->release(unread);
        supervisor->watch(run->id, pidfd, true, control_fd, std::move(unread));

        std::lock_guard lock(mutex);
        if (run->ended) {
            return fault(ErrorKind::Failed, "VM '" + name + "' ended right after starting: " + vm->runtime.reason);
        }
        record = vm->runtime;
        record.state = vmm_state(hello.state).value_or(VmState::Running);
        record.reason = automatic ? "restarted after a crash" : "started";
        record.boot_count = 1;
        commit_locked(*vm, record);
        refresh_vnc_locked(*vm);
        return {};
    }

    // ---- stop -------------------------------------------------------------------
    // Ends `run` (stop over the control socket, SIGKILL when that fails) and
    // waits until it is gone.
    Outcome<void> stop_run(const std::string& name, const std::shared_ptr<Run>& run) {
        {
            std::lock_guard lock(mutex);
            if (run->ended) return {};
            run->stop_requested = true;
        }
        const bool asked = supervisor->request(run->id, "stop", milliseconds(2000)).ok();
        std::unique_lock lock(mutex);
        if (!asked && run->signal_fd >= 0) pidfd_signal(run->signal_fd, SIGKILL);
        if (changed.wait_for(lock, options.stop_timeout, [&] { return run->ended; })) return {};
        if (run->signal_fd >= 0) pidfd_signal(run->signal_fd, SIGKILL);
        if (changed.wait_for(lock, options.stop_timeout, [&] { return run->ended; })) return {};
        return fault(ErrorKind::Failed, "VM '" + name + "': atoll-vmm (pid " + std::to_string(run->pid) +
                                            ") did not end, even after SIGKILL");
    }

    // ---- quick commands over the control socket --------------------------------------
    Outcome<std::shared_ptr<Run>> begin_command(const std::string& uuid, const char* operation,
                                               std::initializer_list<VmState> allowed, const std::string& wanted,
                                               std::shared_ptr<Vm>& vm_out) {
        std::lock_guard lock(mutex);
        auto found = lookup_locked(uuid);
        if (!found) return found.error();
        auto vm = *found;
        if (!vm->busy.empty()) return busy_fault(*vm);
        bool ok = false;
        for (auto state : allowed) ok = ok || vm->runtime.state == state;
        if (!ok || !vm->run) return not_running_fault(*vm, wanted);
        vm->busy = operation;
        vm_out = vm;
        return vm->run;
    }

    Outcome<void> simple_command(const std::string& uuid, const char* command, std::initializer_list<VmState> allowed,
                                 const std::string& wanted) {
        std::shared_ptr<Vm> vm;
        auto run = begin_command(uuid, command, allowed, wanted, vm);
        if (!run) return run.error();
        BusyGuard guard(*this, vm);
        // The state that follows (paused, running...) is recorded by on_reply.
        auto reply = supervisor->request((*run)->id, command, milliseconds(5000));
        if (!reply) return fault(reply.error().kind, "VM '" + vm->definition.name + "': " + reply.error().message);
        return {};
    }

    // A VMM that ended while atolld was down without leaving an exit file.
    static void describe_unseen_end(RuntimeRecord& record) {
        switch (record.state) {
        case VmState::ShuttingDown:
            record.state = VmState::ShutOff;
            record.reason = "shut down while atolld was not running";
            break;
        case VmState::Starting:
            record.state = VmState::ShutOff;
            record.reason = "start interrupted: atolld stopped before atoll-vmm came up";
            break;
        default:
            record.reason = "atoll-vmm" + (record.pid ? " (pid " + std::to_string(record.pid) + ")" : std::string()) +
                            " ended while atolld was not running; how is unknown";
            record.state = VmState::Crashed;
            break;
        }
    }

    // ---- restart of atolld: find the VMMs of an earlier atolld --------------------------
    void reconcile(std::shared_ptr<Vm> vm) {
        const std::string uuid = vm->definition.uuid;
        const std::string control_socket = path_for(uuid, ".ctl");
        auto client = ControlClient::connect(control_socket, milliseconds(2000));
        if (!client && client.error().kind == ErrorKind::NotFound) {
            // A VMM started just before atolld died may not serve its socket yet.
            if (auto pid = find_vmm_by_control_socket(control_socket)) {
                const int pidfd = open_pidfd(*pid);
                const auto deadline = Clock::now() + options.start_timeout;
                while (pidfd >= 0 && !pidfd_exited(pidfd) && Clock::now() < deadline) {
                    client = ControlClient::connect(control_socket, milliseconds(2000));
                    if (client || client.error().kind != ErrorKind::NotFound) break;
                    usleep(5000);
                }
                if (!client && pidfd >= 0 && !pidfd_exited(pidfd)) {
                    log_warning("VM '" + vm->definition.name + "': atoll-vmm (pid " + std::to_string(*pid) +
                                ") does not serve its control socket; killing it");
                    pidfd_signal(pidfd, SIGKILL);
                }
                if (pidfd >= 0) close(pidfd);
            }
        }
        RuntimeRecord record = vm->runtime;
        if (client) {
            const VmmHello hello = (*client)->hello();
            const int pidfd = open_pidfd(static_cast<pid_t>(hello.pid));
            // Asked after the pidfd exists: an answer proves the pidfd is that VMM's.
            auto status = (*client)->request("status", milliseconds(2000));
            if (pidfd >= 0 && status) {
                auto run = std::make_shared<Run>();
                std::string unread;
                {
                    std::lock_guard lock(mutex);
                    run->id = next_run++;
                    run->pid = static_cast<pid_t>(hello.pid);
                    run->signal_fd = dup(pidfd);
                    fcntl(run->signal_fd, F_SETFD, FD_CLOEXEC);
                    run->control_socket = control_socket;
                    run->console_socket = path_for(uuid, ".serial");
                    run->audio = audio_state_from(status->value("audio", nlohmann::json()));
                    vm->run = run;
                    run_owner[run->id] = uuid;
                    const VmState state = vmm_state(status->value("state", hello.state)).value_or(VmState::Running);
                    if (state != record.state) record.reason = "found " + std::string(state_name(state)) + " when atolld started";
                    record.state = state;
                    record.pid = hello.pid;
                    record.boot_count = status->value("boot_count", 1u);
                    if (status->contains("started_unix_ns") && (*status)["started_unix_ns"].is_number_unsigned())
                        record.started_unix_us = (*status)["started_unix_ns"].get<uint64_t>() / 1000;
                    commit_locked(*vm, record);
                }
                const int control_fd = (*client)->release(unread);
                supervisor->watch(run->id, pidfd, false, control_fd, std::move(unread));
                log_info("VM '" + vm->definition.name + "': re-adopted atoll-vmm (pid " + std::to_string(hello.pid) +
                         ")");
                return;
            }
            if (pidfd >= 0) close(pidfd);
        }
        // No VMM: whatever the database says, the VM is not running. How it
        // ended is in its exit file, if it got to write one.
        if (state_is_active(record.state)) {
            if (auto end = read_exit_file(path_for(uuid, ".exit"))) {
                Run unwatched;
                describe_end(unwatched, *end, path_for(uuid, ".log"), record.state, record.reason);
                record.reason += " (while atolld was not running)";
            } else {
                describe_unseen_end(record);
            }
            record.pid = 0;
            record.started_unix_us = 0;
            std::lock_guard lock(mutex);
            commit_locked(*vm, record);
        }
        remove_run_files(uuid);
    }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Daemon::~Daemon() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
        impl_->changed.notify_all();
    }
    impl_->tasks.wait();
    impl_->display_watcher.reset();
    impl_->supervisor.reset();  // the VMMs keep running
    if (impl_->lock_fd >= 0) close(impl_->lock_fd);
}

uint64_t process_cpu_time_ns(int64_t pid) {
    if (pid <= 0) return 0;
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(file, text)) return 0;
    // proc(5): the command name is in parentheses and may hold spaces; utime and
    // stime are fields 14 and 15, the 12th and 13th after the closing one.
    const auto close = text.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 1));
    std::string field;
    uint64_t ticks = 0;
    for (int index = 1; index <= 13 && fields >> field; ++index) {
        if (index >= 12) ticks += std::strtoull(field.c_str(), nullptr, 10);
    }
    const long per_second = sysconf(_SC_CLK_TCK);
    return per_second > 0 ? ticks * (1'000'000'000ull / static_cast<uint64_t>(per_second)) : 0;
}

std::string default_vmm_path() {
    std::error_code error;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error) {
        // A build tree, then an installation (both in lib/atoll, whatever the prefix).
        for (const auto& candidate : {self.parent_path().parent_path() / "hypervisor" / "atoll-vmm",
                                      self.parent_path() / "atoll-vmm"}) {
            if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
        }
    }
    return "/usr/lib/atoll/atoll-vmm";
}

Outcome<std::unique_ptr<Daemon>> Daemon::create(const DaemonOptions& options) {
    DaemonOptions resolved = options;
    if (resolved.display_socket.empty()) resolved.display_socket = options.runtime_dir + "/display.sock";
    if (resolved.display_state_dir.empty()) resolved.display_state_dir = options.runtime_dir + "/display";
    auto impl = std::make_unique<Impl>(resolved);
    impl->vms_dir = options.runtime_dir + "/vms";
    // <vms_dir>/<uuid>.serial must fit in sockaddr_un's 108 bytes.
    if (impl->vms_dir.size() + 1 + 36 + 7 >= sizeof(sockaddr_un::sun_path))
        return fault(ErrorKind::InvalidArgument, "runtime directory " + options.runtime_dir +
                                                     ": too long for socket paths (at most 59 bytes)");
    std::error_code error;
    std::filesystem::create_directories(impl->vms_dir, error);
    if (error) return fault(ErrorKind::Failed, "runtime directory " + impl->vms_dir + ": " + error.message());
    chmod(impl->vms_dir.c_str(), 0700);
    const auto database_dir = std::filesystem::path(options.database_path).parent_path();
    if (!database_dir.empty()) std::filesystem::create_directories(database_dir, error);

    // One atolld per runtime directory.
    const std::string lock_path = options.runtime_dir + "/atolld.lock";
    impl->lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (impl->lock_fd < 0) return fault(ErrorKind::Failed, lock_path + ": " + std::strerror(errno));
    if (flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return fault(ErrorKind::Failed, "another atolld is running with runtime directory " + options.runtime_dir);
    if (access(options.vmm_path.c_str(), X_OK) != 0)
        log_warning("atoll-vmm " + options.vmm_path + ": " + std::strerror(errno) + "; VMs cannot start");

    auto store = Store::open(options.database_path);
    if (!store) return store.error();
    impl->store = std::move(*store);
    auto stored = impl->store->load_all();
    if (!stored) return stored.error();

    Impl* raw = impl.get();
    impl->supervisor = std::make_unique<Supervisor>(Supervisor::Callbacks{
        [raw](uint64_t run, const nlohmann::json& event) { raw->on_event(run, event); },
        [raw](uint64_t run, const std::string& command, const nlohmann::json&) { raw->on_reply(run, command); },
        [raw](uint64_t run, const VmmEnd& end) { raw->on_end(run, end); },
    });
    for (auto& entry : *stored) {
        auto vm = std::make_shared<Vm>();
        vm->definition = std::move(entry.definition);
        vm->runtime = std::move(entry.runtime);
        std::lock_guard lock(impl->mutex);
        impl->vms[vm->definition.uuid] = vm;
    }
    std::vector<std::shared_ptr<Vm>> all;
    {
        std::lock_guard lock(impl->mutex);
        for (auto& [uuid, vm] : impl->vms) all.push_back(vm);
    }
    // Side by side (16 at a time): a VMM that is slow to answer must not hold up the others.
    {
        std::atomic<size_t> next{0};
        TaskGroup reconciling;
        for (size_t worker = 0; worker < std::min<size_t>(16, all.size()); ++worker) {
            reconciling.spawn([raw, &all, &next] {
                for (size_t i; (i = next++) < all.size();) raw->reconcile(all[i]);
            });
        }
    }
    // Files of VMs that are no longer defined: a VMM there is not ours to judge.
    for (const auto& entry : std::filesystem::directory_iterator(impl->vms_dir, error)) {
        const std::string file = entry.path().filename().string();
        if (file.size() < 37) continue;
        const std::string uuid = file.substr(0, 36);
        if (impl->vms.count(uuid)) continue;
        if (entry.path().extension() == ".ctl" && ControlClient::connect(entry.path(), milliseconds(500)))
            log_warning("atoll-vmm of an unknown VM " + uuid + " serves " + entry.path().string() + "; left alone");
    }
    // Reports every VM once when it starts watching, the adopted ones included.
    impl->display_watcher = std::make_unique<DisplayStateWatcher>(
        impl->options.display_state_dir, [raw](const std::string& vm_name) { raw->display_state_changed(vm_name); });
    return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

void Daemon::stop_operations() {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    impl_->changed.notify_all();
}

void Daemon::set_observer(DaemonObserver* observer) {
    std::lock_guard lock(impl_->mutex);
    impl_->observer = observer;
}

void Daemon::start_autostart_vms() {
    if (!impl_->options.autostart) return;
    const std::string marker = impl_->options.runtime_dir + "/autostarted";
    if (access(marker.c_str(), F_OK) == 0) return;  // done this boot
    const int fd = open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    std::vector<std::string> starting;
    {
        std::lock_guard lock(impl_->mutex);
        for (auto& [uuid, vm] : impl_->vms) {
            if (vm->definition.autostart && !state_is_active(vm->runtime.state)) starting.push_back(uuid);
        }
    }
    for (const auto& uuid : starting) {
        impl_->tasks.spawn([this, uuid] {
            if (auto started = impl_->start(uuid, false); !started)
                log_error("autostart: " + started.error().message);
        });
    }
}

Outcome<VmInfo> Daemon::define(std::string_view config_json) {
    auto parsed = parse_vm_definition(config_json);
    if (!parsed) return parsed.error();
    VmDefinition definition = std::move(*parsed);
    if (definition.uuid.empty()) definition.uuid = generate_uuid();
    if (auto checked = impl_->policy.check_definition(definition); !checked) return checked.error();
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) return fault(ErrorKind::Failed, "atolld is stopping");
    for (const auto& [uuid, vm] : impl_->vms) {
        if (vm->definition.name == definition.name)
            return fault(ErrorKind::Exists, "a VM named '" + definition.name + "' is already defined (UUID " + uuid + ")");
    }
    if (impl_->vms.count(definition.uuid))
        return fault(ErrorKind::Exists, "a VM with UUID " + definition.uuid + " is already defined ('" +
                                            impl_->vms[definition.uuid]->definition.name + "')");
    auto vm = std::make_shared<Vm>();
    vm->definition = definition;
    vm->runtime.reason = "defined";
    ATOLL_DOM0_TRY(impl_->store->insert(vm->definition, vm->runtime));
    impl_->vms[definition.uuid] = vm;
    log_info("VM '" + definition.name + "' defined (UUID " + definition.uuid + ")");
    VmInfo info = impl_->info_locked(*vm);
    if (impl_->observer) impl_->observer->vm_defined(info);
    return info;
}

Outcome<VmInfo> Daemon::redefine(const std::string& uuid, std::string_view config_json) {
    auto parsed = parse_vm_definition(config_json);
    if (!parsed) return parsed.error();
    VmDefinition definition = std::move(*parsed);
    if (!definition.uuid.empty() && definition.uuid != uuid)
        return fault(ErrorKind::InvalidArgument, "uuid: " + definition.uuid + " is not this VM's (" + uuid +
                                                     "); a VM keeps its UUID");
    definition.uuid = uuid;
    if (auto checked = impl_->policy.check_definition(definition); !checked) return checked.error();
    std::lock_guard lock(impl_->mutex);
    auto found = impl_->lookup_locked(uuid);
    if (!found) return found.error();
    auto vm = *found;
    if (!vm->busy.empty()) return Impl::busy_fault(*vm);
    if (state_is_active(vm->runtime.state) || vm->run)
        return Impl::not_running_fault(*vm, "shut it down before changing its definition");
    for (const auto& [other_uuid, other] : impl_->vms) {
        if (other_uuid != uuid && other->definition.name == definition.name)
            return fault(ErrorKind::Exists,
                         "a VM named '" + definition.name + "' is already defined (UUID " + other_uuid + ")");
    }
    ATOLL_DOM0_TRY(impl_->store->replace(definition, vm->runtime));
    const std::string old_name = vm->definition.name;
    vm->definition = std::move(definition);
    log_info("VM '" + vm->definition.name + "' redefined" +
             (old_name != vm->definition.name ? " (was '" + old_name + "')" : std::string()));
    VmInfo info = impl_->info_locked(*vm);
    if (impl_->observer) impl_->observer->vm_changed(info, false);
    return info;
}

Outcome<void> Daemon::undefine(const std::string& uuid) {
    std::lock_guard lock(impl_->mutex);
    auto found = impl_->lookup_locked(uuid);
    if (!found) return found.error();
    auto vm = *found;
    if (!vm->busy.empty()) return Impl::busy_fault(*vm);
    if (state_is_active(vm->runtime.state) || vm->run)
        return Impl::not_running_fault(*vm, "stop it before undefining it");
    ATOLL_DOM0_TRY(impl_->store->remove(uuid));
    impl_->vms.erase(uuid);
    impl_->remove_run_files(uuid);
    unlink(impl_->path_for(uuid, ".log").c_str());
    unlink(impl_->path_for(uuid, ".log.1").c_str());
    log_info("VM '" + vm->definition.name + "' undefined");
    if (impl_->observer) impl_->observer->vm_undefined(impl_->info_locked(*vm));
    return {};
}

std::vector<VmInfo> Daemon::list() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<VmInfo> out;
    out.reserve(impl_->vms.size());
    for (const auto& [uuid, vm] : impl_->vms) out.push_back(impl_->info_locked(*vm));
    std::sort(out.begin(), out.end(),
              [](const VmInfo& a, const VmInfo& b) { return a.definition.name < b.definition.name; });
    return out;
}

std::optional<VmInfo> Daemon::find(const std::string& uuid) const {
    std::lock_guard lock(impl_->mutex);
    auto vm = impl_->find_locked(uuid);
    if (!vm) return std::nullopt;
    return impl_->info_locked(*vm);
}

std::optional<VmStatus> Daemon::status(const std::string& uuid) const {
    std::lock_guard lock(impl_->mutex);
    auto vm = impl_->find_locked(uuid);
    if (!vm) return std::nullopt;
    VmStatus status;
    status.state = vm->runtime.state;
    status.reason = vm->runtime.reason;
    status.pid = vm->runtime.pid;
    status.boot_count = vm->runtime.boot_count;
    status.started_unix_us = vm->runtime.started_unix_us;
    if (vm->run && state_is_active(vm->runtime.state) && vm->runtime.state != VmState::Starting) {
        status.console_socket = vm->run->console_socket;
        status.vnc = vm->run->vnc;
        status.audio = vm->run->audio;
    }
    status.autostart = vm->definition.autostart;
    return status;
}

std::optional<VmInfo> Daemon::find_by_name(const std::string& name) const {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [uuid, vm] : impl_->vms) {
        if (vm->definition.name == name) return impl_->info_locked(*vm);
    }
    return std::nullopt;
}

Outcome<void> Daemon::start(const std::string& uuid) { return impl_->start(uuid, false); }

Outcome<void> Daemon::shutdown(const std::string& uuid, std::chrono::milliseconds timeout, bool force) {
    std::shared_ptr<Vm> vm;
    auto run = impl_->begin_command(uuid, "shutdown", {VmState::Running, VmState::ShuttingDown},
                                    "only a running VM can be shut down", vm);
    if (!run) {
        // Say what to do about a paused VM rather than just "invalid state".
        if (run.error().kind == ErrorKind::InvalidState) {
            if (auto info = find(uuid); info && info->state == VmState::Paused && !info->busy)
                return fault(ErrorKind::InvalidState,
                             "VM '" + info->definition.name + "' is paused; resume it before shutting it down");
        }
        return run.error();
    }
    Impl::BusyGuard guard(*impl_, vm);
    const std::string name = vm->definition.name;
    // shutting-down is recorded by on_reply.
    auto reply = impl_->supervisor->request((*run)->id, "shutdown", milliseconds(5000));
    if (!reply) return fault(reply.error().kind, "VM '" + name + "': " + reply.error().message);
    std::unique_lock lock(impl_->mutex);
    if (timeout.count() == 0) return {};
    const bool ended = impl_->changed.wait_for(lock, timeout, [&] { return (*run)->ended || impl_->stopping; });
    if ((*run)->ended) return {};
    if (!ended && !force)
        return fault(ErrorKind::Timeout, "VM '" + name + "' did not power off within " + seconds_text(timeout) +
                                             "; it is still running (use ForceStop, or Shutdown with force)");
    if (impl_->stopping) return fault(ErrorKind::Failed, "atolld is stopping");
    lock.unlock();
    log_info("VM '" + name + "' did not power off within " + seconds_text(timeout) + "; stopping it");
    return impl_->stop_run(name, *run);
}

Outcome<void> Daemon::force_stop(const std::string& uuid) {
    std::shared_ptr<Run> run;
    std::string name;
    {
        std::lock_guard lock(impl_->mutex);
        auto found = impl_->lookup_locked(uuid);
        if (!found) return found.error();
        auto vm = *found;
        // No busy check: this is the way out of a start or shutdown that hangs.
        if (!vm->run) return Impl::not_running_fault(*vm, "nothing to stop");
        run = vm->run;
        name = vm->definition.name;
    }
    return impl_->stop_run(name, run);
}

Outcome<void> Daemon::reboot(const std::string& uuid) {
    return impl_->simple_command(uuid, "reboot", {VmState::Running, VmState::Paused, VmState::ShuttingDown},
                                 "only a running VM can be rebooted");
}

Outcome<void> Daemon::pause(const std::string& uuid) {
    return impl_->simple_command(uuid, "pause", {VmState::Running}, "only a running VM can be paused");
}

Outcome<void> Daemon::resume(const std::string& uuid) {
    return impl_->simple_command(uuid, "resume", {VmState::Paused}, "only a paused VM can be resumed");
}

Outcome<void> Daemon::set_audio_volume(const std::string& uuid, unsigned percent) {
    if (percent > 150) return fault(ErrorKind::InvalidArgument, "volume " + std::to_string(percent) + " %: at most 150");
    return impl_->audio_command(uuid, "audio-volume", {{"percent", percent}, {"stream", "both"}});
}

Outcome<void> Daemon::set_audio_muted(const std::string& uuid, bool muted) {
    return impl_->audio_command(uuid, "audio-mute", {{"muted", muted}, {"stream", "both"}});
}

Outcome<void> Daemon::set_autostart(const std::string& uuid, bool autostart) {
    std::lock_guard lock(impl_->mutex);
    auto found = impl_->lookup_locked(uuid);
    if (!found) return found.error();
    auto vm = *found;
    if (vm->definition.autostart == autostart) return {};
    ATOLL_DOM0_TRY(impl_->store->set_autostart(uuid, autostart));
    vm->definition.autostart = autostart;
    if (impl_->observer) impl_->observer->vm_changed(impl_->info_locked(*vm), false);
    return {};
}

Outcome<int> Daemon::open_console(const std::string& uuid) {
    std::string path, name;
    {
        std::lock_guard lock(impl_->mutex);
        auto found = impl_->lookup_locked(uuid);
        if (!found) return found.error();
        auto vm = *found;
        const VmState state = vm->runtime.state;
        if (!vm->run || !state_is_active(state) || state == VmState::Starting)
            return Impl::not_running_fault(*vm, "its console exists while it runs");
        path = vm->run->console_socket;
        name = vm->definition.name;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), std::min(path.size() + 1, sizeof address.sun_path - 1));
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fault(ErrorKind::Failed, std::string("socket: ") + std::strerror(errno));
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        close(fd);
        return fault(ErrorKind::Failed, "VM '" + name + "': console " + path + ": " + std::strerror(error));
    }
    return fd;
}

HostFacts Daemon::host_facts() const {
    HostFacts facts;
    facts.version = ATOLL_VERSION;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) facts.host_name = host;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    facts.cpu_count = cpus > 0 ? static_cast<uint32_t>(cpus) : 0;
    struct sysinfo info {};
    if (sysinfo(&info) == 0) facts.memory_mib = static_cast<uint64_t>(info.totalram) * info.mem_unit / (1024 * 1024);
    facts.kvm_available = access("/dev/kvm", R_OK | W_OK) == 0;
    return facts;
}

const DaemonOptions& Daemon::options() const { return impl_->options; }

Outcome<void> Daemon::check_database() { return impl_->store->check_consistency(); }

}  // namespace atl::dom0
