#include <atoll/dom0/atollctl.h>
#include <atoll/dom0/dbus_service.h>
#include <atoll/dom0/vm_definition.h>

// Generated at build time from dom0/dbus/*.xml by sdbus-c++-xml2cpp.
#include "atoll/dom0/dbus/manager_proxy.h"
#include "atoll/dom0/dbus/vm_proxy.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

namespace atl::dom0 {
namespace {

using nlohmann::json;
namespace generated = org::atoll::Atoll1;

class ManagerProxy final : public sdbus::ProxyInterfaces<generated::Manager_proxy> {
public:
    explicit ManagerProxy(sdbus::IConnection& connection) : ProxyInterfaces(connection, kBusName, kManagerPath) {}
    ~ManagerProxy() = default;

private:
    // atollctl makes calls only; it does not subscribe to the signals.
    void onVMDefined(const std::string&, const sdbus::ObjectPath&) override {}
    void onVMUndefined(const std::string&, const sdbus::ObjectPath&) override {}
};

class VmProxy final : public sdbus::ProxyInterfaces<generated::VM_proxy> {
public:
    VmProxy(sdbus::IConnection& connection, const std::string& path) : ProxyInterfaces(connection, kBusName, path) {}
    ~VmProxy() = default;

    std::map<std::string, sdbus::Variant> all_properties() {
        std::map<std::string, sdbus::Variant> properties;
        getProxy()
            .callMethod("GetAll")
            .onInterface("org.freedesktop.DBus.Properties")
            .withArguments(std::string(kVmInterface))
            .storeResultsTo(properties);
        return properties;
    }

private:
    void onStateChanged(const std::string&, const std::string&) override {}
};

// An error that ends atollctl with a message and an exit code.
struct CtlError {
    int code;
    std::string message;
};

std::string bus_description(const BusOptions& bus) {
    switch (bus.bus) {
    case BusOptions::Bus::System: return "the system bus";
    case BusOptions::Bus::Session: return "the session bus";
    case BusOptions::Bus::Address: return "the bus at " + bus.address;
    }
    return "the bus";
}

CtlError from_dbus(const sdbus::Error& error, const BusOptions& bus) {
    const std::string& name = error.getName();
    const std::string message = error.getMessage();
    if (name.rfind(kErrorPrefix, 0) == 0) {
        const std::string kind = name.substr(std::strlen(kErrorPrefix));
        if (kind == "NotFound") return {kCtlNotFound, message};
        if (kind == "InvalidState") return {kCtlInvalidState, message};
        if (kind == "InvalidArgument" || kind == "Exists") return {kCtlInvalidArgument, message};
        if (kind == "Timeout") return {kCtlTimeout, message};
        return {kCtlFailed, message};
    }
    if (name == "org.freedesktop.DBus.Error.AccessDenied" ||
        name == "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
        return {kCtlAccessDenied, "permission denied: " + message +
                                      " (changing VMs on the system bus needs root or the group 'atoll')"};
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        return {kCtlUnreachable, "atolld is not running on " + bus_description(bus)};
    if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout" ||
        name == "org.freedesktop.DBus.Error.TimedOut")
        return {kCtlTimeout, "atolld did not answer in time: " + message};
    if (name == "org.freedesktop.DBus.Error.Disconnected" || name == "org.freedesktop.DBus.Error.NoServer" ||
        name == "org.freedesktop.DBus.Error.FileNotFound")
        return {kCtlUnreachable, "lost " + bus_description(bus) + ": " + message};
    return {kCtlFailed, name + ": " + message};
}

json variant_to_json(const sdbus::Variant& value) {
    if (value.containsValueOfType<std::string>()) return value.get<std::string>();
    if (value.containsValueOfType<bool>()) return value.get<bool>();
    if (value.containsValueOfType<uint32_t>()) return value.get<uint32_t>();
    if (value.containsValueOfType<uint64_t>()) return value.get<uint64_t>();
    if (value.containsValueOfType<int32_t>()) return value.get<int32_t>();
    if (value.containsValueOfType<int64_t>()) return value.get<int64_t>();
    if (value.containsValueOfType<std::vector<std::string>>()) return value.get<std::vector<std::string>>();
    return nullptr;
}

std::string time_text(uint64_t unix_us) {
    if (unix_us == 0) return "-";
    const time_t seconds = static_cast<time_t>(unix_us / 1000000);
    tm local{};
    localtime_r(&seconds, &local);
    char text[64];
    strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S %z", &local);
    return text;
}

class Ctl {
public:
    Ctl(BusOptions bus, bool as_json) : bus_(std::move(bus)), json_(as_json) {}

    void connect() {
        try {
            switch (bus_.bus) {
            case BusOptions::Bus::System: connection_ = sdbus::createSystemBusConnection(); break;
            case BusOptions::Bus::Session: connection_ = sdbus::createSessionBusConnection(); break;
            case BusOptions::Bus::Address:
                connection_ = sdbus::createSessionBusConnectionWithAddress(bus_.address);
                break;
            }
        } catch (const sdbus::Error& error) {
            throw CtlError{kCtlUnreachable, "cannot connect to " + bus_description(bus_) + ": " + error.getMessage()};
        }
        manager_ = std::make_unique<ManagerProxy>(*connection_);
    }

    // Long calls (Start, Shutdown) must not hit the default 25 s call timeout first.
    void set_call_timeout(std::chrono::seconds timeout) { connection_->setMethodCallTimeout(timeout); }

    const BusOptions& bus() const { return bus_; }
    bool as_json() const { return json_; }
    ManagerProxy& manager() { return *manager_; }
    sdbus::IConnection& connection() { return *connection_; }

    // A VM by name or UUID.
    std::string resolve(const std::string& vm) {
        if (canonical_uuid(vm)) return manager_->LookupByUUID(vm);
        return manager_->LookupByName(vm);
    }
    std::unique_ptr<VmProxy> vm(const std::string& name_or_uuid) {
        return std::make_unique<VmProxy>(*connection_, resolve(name_or_uuid));
    }

private:
    BusOptions bus_;
    bool json_;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<ManagerProxy> manager_;
};

void print_json(const json& value) { std::cout << value.dump(2) << "\n"; }

int cmd_list(Ctl& ctl) {
    const auto vms = ctl.manager().ListVMs();
    if (ctl.as_json()) {
        json out = json::array();
        for (const auto& vm : vms)
            out.push_back({{"name", vm.get<0>()}, {"uuid", vm.get<1>()}, {"state", vm.get<2>()}, {"path", vm.get<3>()}});
        print_json(out);
        return kCtlOk;
    }
    size_t width = 4;
    for (const auto& vm : vms) width = std::max(width, vm.get<0>().size());
    std::printf("%-*s  %-13s  %s\n", static_cast<int>(width), "NAME", "STATE", "UUID");
    for (const auto& vm : vms)
        std::printf("%-*s  %-13s  %s\n", static_cast<int>(width), vm.get<0>().c_str(), vm.get<2>().c_str(),
                    vm.get<1>().c_str());
    return kCtlOk;
}

int cmd_info(Ctl& ctl, const std::string& name) {
    auto vm = ctl.vm(name);
    const auto properties = vm->all_properties();
    json all = json::object();
    for (const auto& [key, value] : properties) all[key] = variant_to_json(value);
    all["ObjectPath"] = vm->getObjectPath();
    if (ctl.as_json()) {
        if (all.contains("Config") && all["Config"].is_string())
            all["Config"] = json::parse(all["Config"].get<std::string>(), nullptr, false);
        print_json(all);
        return kCtlOk;
    }
    auto text = [&](const char* key) { return all.contains(key) && all[key].is_string() ? all[key].get<std::string>() : std::string(); };
    auto number = [&](const char* key) { return all.contains(key) && all[key].is_number() ? all[key].get<uint64_t>() : uint64_t{0}; };
    const std::string reason = text("StateReason");
    std::printf("Name:         %s\n", text("Name").c_str());
    std::printf("UUID:         %s\n", text("UUID").c_str());
    std::printf("State:        %s%s\n", text("State").c_str(), reason.empty() ? "" : (" (" + reason + ")").c_str());
    std::printf("vCPUs:        %llu\n", static_cast<unsigned long long>(number("VCPUs")));
    std::printf("Memory:       %llu MiB\n", static_cast<unsigned long long>(number("MemoryMiB")));
    std::printf("Autostart:    %s\n", all.value("Autostart", false) ? "yes" : "no");
    std::printf("Restart:      %s\n", text("RestartPolicy").c_str());
    if (number("VmmPid")) {
        std::printf("VMM pid:      %llu\n", static_cast<unsigned long long>(number("VmmPid")));
        std::printf("Started:      %s\n", time_text(number("StartedAt")).c_str());
        std::printf("Boots:        %llu\n", static_cast<unsigned long long>(number("BootCount")));
    }
    if (!text("ConsoleSocket").empty()) std::printf("Console:      %s\n", text("ConsoleSocket").c_str());
    if (!text("VncAddress").empty())
        std::printf("VNC:          %s%s\n", text("VncAddress").c_str(), all.value("VncTls", false) ? " (TLS)" : "");
    std::printf("Object path:  %s\n", vm->getObjectPath().c_str());
    return kCtlOk;
}

// Like `virsh vncdisplay`: one line a script can hand to a viewer.
int cmd_vnc(Ctl& ctl, const std::string& name) {
    auto vm = ctl.vm(name);
    const std::string address = vm->VncAddress();
    const bool tls = !address.empty() && vm->VncTls();
    if (ctl.as_json()) {
        print_json({{"address", address.empty() ? json(nullptr) : json(address)}, {"tls", tls}});
        return address.empty() ? kCtlInvalidState : kCtlOk;
    }
    if (address.empty()) {
        const std::string state = vm->State();
        std::cerr << "atollctl: VM '" << name << "' has no VNC server "
                  << (state == "running" || state == "paused"
                          ? "(it has no display, or atoll-display is not running)"
                          : "(it is " + state + ")")
                  << "\n";
        return kCtlInvalidState;
    }
    std::printf("%s\n", address.c_str());
    return kCtlOk;
}

// Shows the VM's sound, after setting what was asked.
int cmd_audio(Ctl& ctl, const std::string& name, std::optional<unsigned> volume, std::optional<bool> muted) {
    auto vm = ctl.vm(name);
    if (volume) vm->SetAudioVolume(*volume);
    if (muted) vm->SetAudioMuted(*muted);
    if (!vm->HasAudio()) {
        const json config = json::parse(vm->Config(), nullptr, false);
        if (!config.is_object() || !config.contains("audio"))
            std::cerr << "atollctl: VM '" << name << "' has no sound device (no \"audio\" in its definition)\n";
        else
            std::cerr << "atollctl: VM '" << name << "' has no sound now (it is " << vm->State() << ")\n";
        return kCtlInvalidState;
    }
    const unsigned percent = vm->AudioVolume();
    const bool is_muted = vm->AudioMuted(), connected = vm->AudioConnected();
    const uint64_t underruns = vm->AudioUnderruns(), overruns = vm->AudioOverruns();
    const uint64_t dropped_frames = vm->AudioDroppedFrames(), capture_gaps = vm->AudioCaptureGaps();
    if (ctl.as_json()) {
        print_json({{"volume_percent", percent},
                    {"muted", is_muted},
                    {"connected", connected},
                    {"underruns", underruns},
                    {"overruns", overruns},
                    {"dropped_frames", dropped_frames},
                    {"capture_gaps", capture_gaps}});
    } else {
        auto count = [](uint64_t value) { return static_cast<unsigned long long>(value); };
        std::printf("Volume:         %u%%%s\n", percent, is_muted ? " (muted)" : "");
        std::printf("PulseAudio:     %s\n", connected ? "connected" : "not reachable (retrying)");
        std::printf("Underruns:      %llu\n", count(underruns));
        std::printf("Overruns:       %llu\n", count(overruns));
        std::printf("Dropped frames: %llu\n", count(dropped_frames));
        std::printf("Capture gaps:   %llu\n", count(capture_gaps));
    }
    return kCtlOk;
}

int cmd_state(Ctl& ctl, const std::string& name) {
    auto vm = ctl.vm(name);
    const std::string state = vm->State();
    const std::string reason = vm->StateReason();
    if (ctl.as_json()) print_json({{"state", state}, {"reason", reason}});
    else std::printf("%s%s\n", state.c_str(), reason.empty() ? "" : (" (" + reason + ")").c_str());
    return kCtlOk;
}

// A definition from a file or ('-') standard input.
std::string read_config(const std::string& file) {
    std::stringstream text;
    if (file == "-") {
        text << std::cin.rdbuf();
    } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) throw CtlError{kCtlInvalidArgument, file + ": " + std::strerror(errno)};
        text << in.rdbuf();
    }
    return text.str();
}

int cmd_redefine(Ctl& ctl, const std::string& vm_name, const std::string& file) {
    auto vm = ctl.vm(vm_name);
    vm->Redefine(read_config(file));
    const std::string name = vm->Name();
    if (ctl.as_json()) print_json({{"name", name}, {"uuid", vm->UUID()}, {"path", vm->getObjectPath()}});
    else std::printf("Redefined VM '%s'\n", name.c_str());
    return kCtlOk;
}

int cmd_define(Ctl& ctl, const std::string& file) {
    const std::string path = ctl.manager().DefineVM(read_config(file));
    VmProxy vm(ctl.connection(), path);
    const std::string name = vm.Name(), uuid = vm.UUID();
    if (ctl.as_json()) print_json({{"name", name}, {"uuid", uuid}, {"path", path}});
    else std::printf("Defined VM '%s' (UUID %s)\n", name.c_str(), uuid.c_str());
    return kCtlOk;
}

void report(Ctl& ctl, const std::string& vm, const char* done) {
    if (ctl.as_json()) print_json({{"vm", vm}, {"result", done}});
    else std::printf("VM '%s' %s\n", vm.c_str(), done);
}

// The terminal in raw mode while the console is attached, restored however we leave.
class RawTerminal {
public:
    RawTerminal() : active_(isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
        if (!active_) return;
        termios raw = saved_;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    ~RawTerminal() {
        if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    bool active() const { return active_; }

private:
    termios saved_{};
    bool active_;
};

bool write_all(int fd, const char* data, size_t size) {
    while (size > 0) {
        const ssize_t written = write(fd, data, size);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        data += written;
        size -= static_cast<size_t>(written);
    }
    return true;
}

// A new console connection after the old one closed: the VM rebooted (each
// boot has a machine, and a serial port, of its own) unless it stopped.
sdbus::UnixFd reopen_console(VmProxy& vm) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        const std::string state = vm.State();
        if (state != "running" && state != "paused" && state != "shutting-down") return {};
        try {
            return vm.OpenConsole();
        } catch (const sdbus::Error&) {
            usleep(50'000);  // between two boots
        }
    }
    return {};
}

// The serial console: raw terminal, Ctrl-] detaches; follows the VM across reboots.
int cmd_console(Ctl& ctl, const std::string& name) {
    auto vm = ctl.vm(name);
    sdbus::UnixFd console = vm->OpenConsole();
    RawTerminal terminal;
    if (terminal.active())
        std::fprintf(stderr, "Connected to the serial console of VM '%s'. Ctrl-] detaches.\r\n", name.c_str());
    constexpr char kDetach = 0x1d;  // Ctrl-]
    bool stdin_open = true;
    std::string end = "console closed (the VM stopped)";
    for (;;) {
        pollfd fds[2] = {{console.get(), POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            end = std::string("poll: ") + std::strerror(errno);
            break;
        }
        char buffer[4096];
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t count = read(console.get(), buffer, sizeof buffer);
            if (count <= 0) {
                console = reopen_console(*vm);
                if (!console.isValid()) break;
                continue;
            }
            write_all(STDOUT_FILENO, buffer, static_cast<size_t>(count));
        }
        if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            const ssize_t count = read(STDIN_FILENO, buffer, sizeof buffer);
            if (count <= 0) {
                stdin_open = false;  // a script's input ended: keep showing output
                continue;
            }
            const char* detach = terminal.active()
                                     ? static_cast<const char*>(std::memchr(buffer, kDetach, static_cast<size_t>(count)))
                                     : nullptr;
            write_all(console.get(), buffer, detach ? static_cast<size_t>(detach - buffer) : static_cast<size_t>(count));
            if (detach) {
                end = "detached";
                break;
            }
        }
    }
    if (terminal.active()) std::fprintf(stderr, "\r\n%s\r\n", end.c_str());
    return kCtlOk;
}

int cmd_host(Ctl& ctl) {
    auto& manager = ctl.manager();
    json facts{{"version", manager.Version()},       {"host_name", manager.HostName()},
               {"cpu_count", manager.CpuCount()},    {"memory_mib", manager.MemoryMiB()},
               {"kvm_available", manager.KvmAvailable()}, {"storage_directories", manager.StorageDirectories()},
               {"vm_count", manager.VMCount()}};
    if (ctl.as_json()) {
        print_json(facts);
        return kCtlOk;
    }
    std::printf("Version:      %s\n", facts["version"].get<std::string>().c_str());
    std::printf("Host name:    %s\n", facts["host_name"].get<std::string>().c_str());
    std::printf("CPUs:         %u\n", facts["cpu_count"].get<unsigned>());
    std::printf("Memory:       %llu MiB\n", facts["memory_mib"].get<unsigned long long>());
    std::printf("KVM:          %s\n", facts["kvm_available"].get<bool>() ? "available" : "not available");
    std::string directories;
    for (const auto& directory : facts["storage_directories"]) directories += (directories.empty() ? "" : ", ") + directory.get<std::string>();
    std::printf("Storage:      %s\n", directories.c_str());
    std::printf("VMs:          %u\n", facts["vm_count"].get<unsigned>());
    return kCtlOk;
}

}  // namespace

int atollctl_main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);  // a console whose VM went away is an EOF, not a death
    CLI::App app{"atollctl: drives atolld (the Atoll VM manager) over D-Bus"};
    app.require_subcommand(1);
    bool session = false, system = false, as_json = false;
    std::string address;
    app.add_flag("--system", system, "use the system bus (the default)");
    app.add_flag("--session", session, "use the session bus (atolld --session)");
    app.add_option("--bus-address", address, "use the bus at this D-Bus address (atolld --bus-address)");
    app.add_flag("--json", as_json, "print results as JSON");

    std::string vm, file, value;
    unsigned timeout_seconds = 60;
    bool force = false, no_wait = false;
    auto* list = app.add_subcommand("list", "list the VMs with their state");
    auto* info = app.add_subcommand("info", "show a VM's properties");
    auto* state = app.add_subcommand("state", "show a VM's state and why");
    auto* define = app.add_subcommand("define", "define a VM from a JSON file ('-': standard input)");
    auto* redefine = app.add_subcommand("redefine", "replace a shut-off VM's definition from a JSON file ('-': standard input)");
    auto* undefine = app.add_subcommand("undefine", "remove a VM's definition");
    auto* start = app.add_subcommand("start", "start a VM");
    auto* shutdown = app.add_subcommand("shutdown", "press the VM's power button and wait for it to power off");
    auto* force_stop = app.add_subcommand("force-stop", "stop a VM at once (as pulling the plug)");
    force_stop->alias("destroy");
    auto* reboot = app.add_subcommand("reboot", "reset a VM now");
    auto* pause = app.add_subcommand("pause", "pause a VM's vCPUs");
    auto* resume = app.add_subcommand("resume", "resume a paused VM");
    auto* autostart = app.add_subcommand("autostart", "start a VM when atolld starts (on|off)");
    auto* console = app.add_subcommand("console", "attach to a VM's serial console (Ctrl-] detaches)");
    auto* host = app.add_subcommand("host", "show facts about the host");
    auto* vnc = app.add_subcommand("vnc", "print where a VNC viewer reaches the VM's screen (HOST:PORT)");
    auto* audio = app.add_subcommand("audio", "show a running VM's sound; --volume and --mute/--unmute change it");
    std::optional<unsigned> volume;
    bool mute = false, unmute = false;
    audio->add_option("--volume", volume, "percent, 0 to 150")->check(CLI::Range(0u, 150u));
    auto* mute_flag = audio->add_flag("--mute", mute, "mute it");
    audio->add_flag("--unmute", unmute, "unmute it")->excludes(mute_flag);
    for (auto* command : {info, state, redefine, undefine, start, shutdown, force_stop, reboot, pause, resume, autostart, console, vnc, audio})
        command->add_option("vm", vm, "VM name or UUID")->required();
    define->add_option("file", file, "JSON file")->required();
    redefine->add_option("file", file, "JSON file")->required();
    shutdown->add_option("--timeout", timeout_seconds, "seconds to wait for the guest (default 60)");
    shutdown->add_flag("--force", force, "stop the VM at once when the timeout passes");
    shutdown->add_flag("--no-wait", no_wait, "press the button and return");
    autostart->add_option("value", value, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
    for (auto* command : {list, info, state, define, redefine, undefine, start, shutdown, force_stop, reboot, pause, resume,
                          autostart, console, host, vnc, audio})
        command->add_flag("--json", as_json, "print results as JSON");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        if (error.get_exit_code() == 0) return app.exit(error);
        std::cerr << "atollctl: " << error.what() << " (see atollctl --help)\n";
        return kCtlUsage;
    }
    if (static_cast<int>(session) + static_cast<int>(system) + static_cast<int>(!address.empty()) > 1) {
        std::cerr << "atollctl: give only one of --system, --session, --bus-address\n";
        return kCtlUsage;
    }
    BusOptions bus;
    if (session) bus.bus = BusOptions::Bus::Session;
    if (!address.empty()) {
        bus.bus = BusOptions::Bus::Address;
        bus.address = address;
    }

    Ctl ctl(bus, as_json);
    try {
        ctl.connect();
        if (*list) return cmd_list(ctl);
        if (*info) return cmd_info(ctl, vm);
        if (*state) return cmd_state(ctl, vm);
        if (*define) return cmd_define(ctl, file);
        if (*redefine) return cmd_redefine(ctl, vm, file);
        if (*host) return cmd_host(ctl);
        if (*console) return cmd_console(ctl, vm);
        if (*vnc) return cmd_vnc(ctl, vm);
        if (*audio) {
            return cmd_audio(ctl, vm, volume, mute ? std::optional<bool>(true) : unmute ? std::optional<bool>(false) : std::nullopt);
        }
        if (*autostart) {
            ctl.vm(vm)->Autostart(value == "on");
            report(ctl, vm, value == "on" ? "will start with atolld" : "will not start with atolld");
            return kCtlOk;
        }
        ctl.set_call_timeout(std::chrono::seconds(120));
        auto proxy = ctl.vm(vm);
        if (*undefine) proxy->Undefine(), report(ctl, vm, "undefined");
        else if (*start) proxy->Start(), report(ctl, vm, "started");
        else if (*force_stop) proxy->ForceStop(), report(ctl, vm, "stopped");
        else if (*reboot) proxy->Reboot(), report(ctl, vm, "reset");
        else if (*pause) proxy->Pause(), report(ctl, vm, "paused");
        else if (*resume) proxy->Resume(), report(ctl, vm, "resumed");
        else if (*shutdown) {
            ctl.set_call_timeout(std::chrono::seconds(timeout_seconds + 60));
            proxy->Shutdown(no_wait ? 0 : timeout_seconds, force);
            report(ctl, vm, no_wait ? "is shutting down" : "shut down");
        }
        return kCtlOk;
    } catch (const sdbus::Error& error) {
        const CtlError failure = from_dbus(error, ctl.bus());
        std::cerr << "atollctl: " << failure.message << "\n";
        return failure.code;
    } catch (const CtlError& failure) {
        std::cerr << "atollctl: " << failure.message << "\n";
        return failure.code;
    }
}

}  // namespace atl::dom0
