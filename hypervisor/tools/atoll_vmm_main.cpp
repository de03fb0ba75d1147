// atoll-vmm: one process per VM. Parses the command line (or a JSON file) and
// runs the VM; everything else lives in the atoll_vmm library.
#include <atoll/vmm/config.h>
#include <atoll/vmm/vmm.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

namespace {

using atl::vmm::ConsoleConfig;
using atl::vmm::DiskConfig;
using atl::vmm::NetConfig;

atl::Result<ConsoleConfig> parse_console_option(const std::string& text, const char* option) {
    ConsoleConfig console;
    if (text == "stdio") console.mode = ConsoleConfig::Mode::Stdio;
    else if (text == "none") console.mode = ConsoleConfig::Mode::None;
    else if (text.rfind("socket:", 0) == 0 && text.size() > 7) {
        console.mode = ConsoleConfig::Mode::Socket;
        console.socket_path = text.substr(7);
    } else {
        return atl::make_error(std::string(option) + " \"" + text + "\": use stdio, none or socket:PATH");
    }
    return console;
}

// "a,b,c" -> {"a", "b", "c"}; empty parts are kept so that errors can name them.
std::vector<std::string> split_on_commas(const std::string& text) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        const size_t comma = text.find(',', start);
        parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) return parts;
        start = comma + 1;
    }
}

// PATH[,ro][,serial=ID]
atl::Result<DiskConfig> parse_disk_option(const std::string& text) {
    const auto parts = split_on_commas(text);
    DiskConfig disk;
    disk.path = parts[0];
    if (disk.path.empty()) return atl::make_error("--disk: no path given");
    for (size_t i = 1; i < parts.size(); ++i) {
        const auto& part = parts[i];
        if (part == "ro") disk.read_only = true;
        else if (part == "rw") disk.read_only = false;
        else if (part.rfind("serial=", 0) == 0) disk.serial = part.substr(7);
        else return atl::make_error("--disk \"" + text + "\": unknown option \"" + part + "\"");
    }
    return disk;
}

// user[,hostfwd=tcp:HOST:GUEST]...[,mac=..] or tap:NAME[,mac=..]
atl::Result<NetConfig> parse_net_option(const std::string& text) {
    const auto parts = split_on_commas(text);
    NetConfig net;
    if (parts[0] == "user") {
        net.mode = NetConfig::Mode::User;
    } else if (parts[0].rfind("tap:", 0) == 0) {
        net.mode = NetConfig::Mode::Tap;
        net.tap_name = parts[0].substr(4);
    } else {
        return atl::make_error("--net \"" + text + "\": starts with user or tap:NAME");
    }
    for (size_t i = 1; i < parts.size(); ++i) {
        const auto& part = parts[i];
        if (part.rfind("hostfwd=", 0) == 0) net.host_forwards.push_back(part.substr(8));
        else if (part.rfind("mac=", 0) == 0) net.mac = part.substr(4);
        else return atl::make_error("--net \"" + text + "\": unknown option \"" + part + "\"");
    }
    return net;
}

// none | pulse[,server=ADDRESS]
atl::Result<atl::vmm::AudioConfig> parse_audio_option(const std::string& text) {
    using atl::vmm::AudioConfig;
    const auto parts = split_on_commas(text);
    AudioConfig audio;
    if (parts[0] == "none" && parts.size() == 1) return audio;
    if (parts[0] != "pulse") return atl::make_error("--audio \"" + text + "\": use none or pulse[,server=ADDRESS]");
    audio.backend = AudioConfig::Backend::Pulse;
    for (size_t i = 1; i < parts.size(); ++i) {
        if (parts[i].rfind("server=", 0) == 0 && parts[i].size() > 7) audio.server = parts[i].substr(7);
        else return atl::make_error("--audio \"" + text + "\": unknown option \"" + parts[i] + "\"");
    }
    return audio;
}

// WxH, e.g. 1280x800
atl::Result<std::pair<unsigned, unsigned>> parse_size_option(const std::string& text) {
    unsigned width = 0, height = 0;
    char separator = 0, extra = 0;
    if (sscanf(text.c_str(), "%u%c%u%c", &width, &separator, &height, &extra) != 3 || separator != 'x')
        return atl::make_error("--display-size \"" + text + "\": use WIDTHxHEIGHT, e.g. 1280x800");
    return std::make_pair(width, height);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"atoll-vmm: runs one Atoll virtual machine"};
    std::string config_path, kernel, initrd, cmdline, serial, virtio_console, name, display, display_size, audio;
    uint64_t memory_mib = 0;
    unsigned vcpus = 0;
    std::vector<std::string> disks, nets;
    bool no_entropy = false, no_net = false, print_config = false;
    atl::vmm::RunOptions run_options;
    app.add_option("--config", config_path, "VM settings as JSON (command-line options override it)");
    app.add_option("--name", name, "VM name");
    app.add_option("-k,--kernel", kernel, "Linux bzImage");
    app.add_option("-i,--initrd", initrd, "initial ramdisk");
    app.add_option("-a,--cmdline", cmdline, "kernel command line");
    app.add_option("-m,--memory", memory_mib, "guest RAM in MiB");
    app.add_option("-c,--cpus", vcpus, "number of vCPUs");
    app.add_option("-d,--disk", disks, "raw disk image: PATH[,ro][,serial=ID] (repeatable)");
    app.add_option("-n,--net", nets, "network: user[,hostfwd=tcp:HOSTPORT:GUESTPORT][,mac=M] or tap:NAME (repeatable)");
    app.add_flag("--no-net", no_net, "no network interface (the default is one user-mode interface)");
    app.add_option("--serial", serial, "16550 UART (ttyS0): stdio, none or socket:PATH");
    app.add_option("--console", virtio_console, "virtio console (hvc0): stdio, none or socket:PATH");
    app.add_flag("--no-entropy", no_entropy, "no virtio-rng device");
    app.add_option("--display", display,
                   "show the VM through atoll-display at this unix socket (virtio-gpu, keyboard, tablet, mouse)");
    app.add_option("--display-size", display_size, "the display's preferred size, WIDTHxHEIGHT (default 1280x800)");
    app.add_option("--audio", audio, "sound (virtio-snd): none or pulse[,server=ADDRESS] (default none)");
    app.add_option("--kvm-device", run_options.kvm_device, "the KVM device")->capture_default_str();
    app.add_option("--control-socket", run_options.control_socket,
                   "serve the control protocol on this unix socket (hypervisor/docs/control-protocol.md)");
    app.add_option("--exit-file", run_options.exit_file,
                   "record how the VM ended here as JSON (code, reason, message) before exiting");
    app.add_flag("--print-config", print_config, "print the resulting settings as JSON and exit");
    // A later option overrides an earlier one, so scripts can append to a base command line.
    for (auto* option : app.get_options()) {
        if (option->get_items_expected_max() == 1) option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        if (error.get_exit_code() == 0) return app.exit(error);
        std::cerr << "atoll-vmm: " << error.what() << "\n";
        return atl::vmm::kExitBadInput;
    }

    auto fail = [&](const std::string& message) {
        std::cerr << "atoll-vmm: " << message << "\n";
        atl::vmm::record_exit(run_options.exit_file, {atl::vmm::kExitBadInput, message, "bad-input"});
        return atl::vmm::kExitBadInput;
    };

    atl::vmm::VmConfig config;
    if (!config_path.empty()) {
        auto loaded = atl::vmm::load_vm_config(config_path);
        if (!loaded) return fail(loaded.error().message);
        config = *loaded;
    } else {
        config.nets.push_back({});  // one user-mode interface unless told otherwise
    }
    if (!name.empty()) config.name = name;
    if (!kernel.empty()) config.kernel = kernel;
    if (!initrd.empty()) config.initrd = initrd;
    if (app.count("--cmdline")) config.cmdline = cmdline;
    if (app.count("--memory")) config.memory_mib = memory_mib;
    if (app.count("--cpus")) config.vcpus = vcpus;
    for (const auto& text : disks) {
        auto disk = parse_disk_option(text);
        if (!disk) return fail(disk.error().message);
        config.disks.push_back(*disk);
    }
    if (!nets.empty() || no_net) config.nets.clear();
    for (const auto& text : nets) {
        auto net = parse_net_option(text);
        if (!net) return fail(net.error().message);
        config.nets.push_back(*net);
    }
    if (!serial.empty()) {
        auto console = parse_console_option(serial, "--serial");
        if (!console) return fail(console.error().message);
        config.serial = *console;
    }
    if (!virtio_console.empty()) {
        auto console = parse_console_option(virtio_console, "--console");
        if (!console) return fail(console.error().message);
        config.virtio_console = *console;
    }
    if (no_entropy) config.entropy = false;
    if (!display.empty()) config.display.socket = display;
    if (!display_size.empty()) {
        if (!config.display.enabled()) return fail("--display-size needs --display (or a display in the configuration)");
        auto size = parse_size_option(display_size);
        if (!size) return fail(size.error().message);
        config.display.width = size->first;
        config.display.height = size->second;
    }
    if (!audio.empty()) {
        auto parsed = parse_audio_option(audio);
        if (!parsed) return fail(parsed.error().message);
        config.audio = *parsed;
    }
    if (auto valid = atl::vmm::validate_vm_config(config); !valid) return fail(valid.error().message);
    if (print_config) {
        std::cout << atl::vmm::vm_config_to_json(config) << "\n";
        return 0;
    }

    const auto outcome = atl::vmm::run_vm(config, run_options);
    if (outcome.code != atl::vmm::kExitPowerOff) std::cerr << "atoll-vmm: " << outcome.message << "\n";
    return outcome.code;
}
