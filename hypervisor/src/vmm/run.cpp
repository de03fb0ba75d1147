// run_vm: one VM process's life. Builds a machine per boot, serves the control
// socket across boots, and turns how the guest ended into an exit code.
#include "devices/audio_backend.h"
#include "vmm/control_server.h"
#include "vmm/machine.h"

#include <atoll/vmm/vmm.h>

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
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
    VmSession(const VmConfig& config, std::shared_ptr<AudioBackend> audio)
        : config_(config), audio_(std::move(audio)), started_unix_ns_(realtime_ns()) {}

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

    void announce_exit(const RunOutcome& outcome) {
        if (!server_) return;
        server_->broadcast_and_flush({{"event", "exit"},
                                      {"code", static_cast<int>(outcome.code)},
                                      {"reason", outcome.reason},
                                      {"message", outcome.message}});
    }

    json greeting() override {
        std::lock_guard lock(mutex_);
        return {{"name", config_.name}, {"pid", getpid()}, {"state", state_}, {"audio", audio_status()}};
    }

    // An "audio" event when the sound's state moved: volume or mute changed in
    // the mixer, the server came or went, a counter grew.
    void announce_audio_if_changed() {
        std::lock_guard lock(mutex_);
        if (!audio_) return;
        json now = audio_status();
        if (now == last_audio_) return;
        last_audio_ = now;
        broadcast({{"event", "audio"}, {"audio", std::move(now)}});
    }

    Reply handle(const std::string& command, const json& arguments) override {
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
                {"audio", audio_status()},
            });
            return Reply{true, {}, {}, result};
        }
        if (command == "audio-volume" || command == "audio-mute") return set_audio(command, arguments);
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
    json audio_status() const {
        if (!audio_) return nullptr;
        const auto status = audio_->status();
        auto channel = [](const AudioChannelState& state) {
            return json{{"volume_percent", state.volume_percent}, {"muted", state.muted}};
        };
        return {{"backend", status.backend},     {"connected", status.connected},
                {"underruns", status.underruns}, {"overruns", status.overruns},
                {"dropped_frames", status.dropped_frames}, {"capture_gaps", status.capture_gaps},
                {"playback", channel(status.playback)}, {"capture", channel(status.capture)}};
    }

    // {"stream": "playback"|"capture"|"both" (default both), "percent": 0-150} or {"muted": bool}.
    Reply set_audio(const std::string& command, const json& arguments) {
        auto bad = [](const std::string& why) { return Reply{false, "bad-request", why, nullptr}; };
        if (!audio_) return Reply{false, "invalid-state", "the VM has no audio device", nullptr};
        std::vector<AudioDirection> directions{AudioDirection::Playback, AudioDirection::Capture};
        if (arguments.contains("stream")) {
            const auto& stream = arguments["stream"];
            if (stream == "playback") directions = {AudioDirection::Playback};
            else if (stream == "capture") directions = {AudioDirection::Capture};
            else if (stream != "both") return bad("stream: use \"playback\", \"capture\" or \"both\"");
        }
        if (command == "audio-volume") {
            const auto it = arguments.find("percent");
            if (it == arguments.end() || !it->is_number_unsigned() || it->get<uint64_t>() > kMaxAudioVolumePercent)
                return bad("percent: a whole number from 0 to " + std::to_string(kMaxAudioVolumePercent) + " is needed");
            for (auto direction : directions) audio_->set_volume(direction, it->get<unsigned>());
        } else {
            const auto it = arguments.find("muted");
            if (it == arguments.end() || !it->is_boolean()) return bad("muted: true or false is needed");
            for (auto direction : directions) audio_->set_muted(direction, it->get<bool>());
        }
        return Reply{true, {}, {}, std::make_shared<json>(json{{"audio", audio_status()}})};
    }

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
    const std::shared_ptr<AudioBackend> audio_;
    json last_audio_;
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

// Looks at the VM's sound once a second on the console thread; stopped (on
// that thread) before the session it reports through goes.
class AudioWatch {
public:
    AudioWatch(EventLoop& loop, VmSession& session) : loop_(loop), session_(session) {
        loop_.post([this] { schedule(); });
    }
    ~AudioWatch() {
        loop_.invoke([this] {
            stopped_ = true;
            if (timer_) loop_.cancel_timer(timer_);
        });
    }

private:
    void schedule() {
        if (stopped_) return;
        timer_ = loop_.add_timer(EventLoop::Clock::now() + std::chrono::seconds(1), [this] {
            timer_ = 0;
            session_.announce_audio_if_changed();
            schedule();
        });
    }

    EventLoop& loop_;
    VmSession& session_;
    EventLoop::TimerId timer_ = 0;
    bool stopped_ = false;
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

RunOutcome run_until_exit(const VmConfig& config, const RunOptions& options);

}  // namespace

// Read by a manager at any moment, so it must never be half there: a
// temporary file renamed into place.
void record_exit(const std::string& path, const RunOutcome& outcome) {
    if (path.empty()) return;
    const std::string temporary = path + ".tmp";
    const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const std::string text =
        json{{"code", static_cast<int>(outcome.code)}, {"reason", outcome.reason}, {"message", outcome.message}}
            .dump(-1, ' ', false, json::error_handler_t::replace) +
        "\n";
    const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    close(fd);
    if (!written || rename(temporary.c_str(), path.c_str()) != 0) unlink(temporary.c_str());
}

RunOutcome run_vm(const VmConfig& config, const RunOptions& options) {
    RunOutcome outcome = run_until_exit(config, options);
    record_exit(options.exit_file, outcome);
    return outcome;
}

namespace {

RunOutcome run_until_exit(const VmConfig& config, const RunOptions& options) {
    // A console client that goes away must not kill the VM.
    signal(SIGPIPE, SIG_IGN);
    auto hypervisor = hv::open_kvm(options.kvm_device.c_str());
    if (!hypervisor) return {kExitHostError, hypervisor.error().message, "host-error"};

    if (auto valid = validate_vm_config(config); !valid) return {kExitBadInput, valid.error().message, "bad-input"};
    EventLoop console_loop;
    auto consoles = open_consoles(config, console_loop);
    if (!consoles) return {kExitBadInput, consoles.error().message, "bad-input"};
    ConsoleThread console_thread(console_loop);
    // Made once, like the consoles: the display server keeps the VM and its
    // viewers while the guest reboots.
    const auto display = make_display_connection(config);

    // The VM's sound client lives as long as the process: a reboot keeps the
    // mixer's entry (and the volume set on it).
    std::shared_ptr<AudioBackend> audio;
    if (config.audio.backend == AudioConfig::Backend::Pulse) {
        PulseAudioOptions pulse;
        pulse.vm_name = config.name;
        pulse.server = config.audio.server;
        auto backend = make_pulse_audio_backend(pulse);
        if (!backend) return {kExitHostError, backend.error().message, "host-error"};
        audio = std::move(*backend);
    }

    VmSession session(config, audio);
    std::optional<AudioWatch> audio_watch;
    if (audio) audio_watch.emplace(console_loop, session);
    std::unique_ptr<ControlServer> server;
    for (;;) {
        auto machine = Machine::build(config, **hypervisor, *consoles, audio, display);
        if (!machine) {
            RunOutcome outcome{kExitBadInput, machine.error().message, "bad-input"};
            session.announce_exit(outcome);
            return outcome;
        }
        session.attach(machine->get());
        // The socket appears once the first machine exists, so that a client
        // that sees it can act on the VM at once.
        if (!server && !options.control_socket.empty()) {
            auto started = ControlServer::start(options.control_socket, session);
            if (!started) return {kExitBadInput, started.error().message, "bad-input"};
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
        outcome.reason = reason_name(reason);
        session.announce_exit(outcome);
        return outcome;
    }
}

}  // namespace

}  // namespace atl::vmm
