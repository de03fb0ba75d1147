#include <atoll/vmm/config.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

namespace atl::vmm {
namespace {

using nlohmann::json;

// Reads `key` from `object` into `out` when present, refusing the wrong type.
template <class T>
Result<void> take(const json& object, const char* key, T& out, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end()) return {};
    try {
        out = it->template get<T>();
    } catch (const json::exception&) {
        return make_error(where + key + ": wrong type (" + std::string(it->type_name()) + ")");
    }
    return {};
}

Result<void> refuse_unknown_keys(const json& object, std::initializer_list<const char*> known, const std::string& where) {
    for (auto it = object.begin(); it != object.end(); ++it) {
        bool found = false;
        for (const char* name : known) found = found || it.key() == name;
        if (!found) return make_error(where + it.key() + ": unknown setting");
    }
    return {};
}

Result<ConsoleConfig> parse_console(const json& value, const std::string& where) {
    ConsoleConfig console;
    if (!value.is_string()) return make_error(where + ": expected \"stdio\", \"none\" or \"socket:PATH\"");
    const auto text = value.get<std::string>();
    if (text == "stdio") console.mode = ConsoleConfig::Mode::Stdio;
    else if (text == "none") console.mode = ConsoleConfig::Mode::None;
    else if (text.rfind("socket:", 0) == 0 && text.size() > 7) {
        console.mode = ConsoleConfig::Mode::Socket;
        console.socket_path = text.substr(7);
    } else {
        return make_error(where + ": \"" + text + "\" is not \"stdio\", \"none\" or \"socket:PATH\"");
    }
    return console;
}

std::string console_to_string(const ConsoleConfig& console) {
    switch (console.mode) {
    case ConsoleConfig::Mode::Stdio: return "stdio";
    case ConsoleConfig::Mode::None: return "none";
    case ConsoleConfig::Mode::Socket: return "socket:" + console.socket_path;
    }
    return "none";
}

}  // namespace

Result<VmConfig> parse_vm_config(std::string_view json_text) {
    json root;
    try {
        root = json::parse(json_text);
    } catch (const json::parse_error& error) {
        return make_error(std::string("configuration is not valid JSON: ") + error.what());
    }
    if (!root.is_object()) return make_error("configuration must be a JSON object");
    ATOLL_TRY(refuse_unknown_keys(root,
                                  {"name", "kernel", "initrd", "cmdline", "memory_mib", "vcpus", "disks", "nets",
                                   "serial", "virtio_console", "entropy", "display", "audio"},
                                  ""));
    VmConfig config;
    ATOLL_TRY(take(root, "name", config.name, ""));
    ATOLL_TRY(take(root, "kernel", config.kernel, ""));
    ATOLL_TRY(take(root, "initrd", config.initrd, ""));
    ATOLL_TRY(take(root, "cmdline", config.cmdline, ""));
    ATOLL_TRY(take(root, "memory_mib", config.memory_mib, ""));
    ATOLL_TRY(take(root, "vcpus", config.vcpus, ""));
    ATOLL_TRY(take(root, "entropy", config.entropy, ""));
    if (root.contains("serial")) {
        auto console = parse_console(root["serial"], "serial");
        if (!console) return console.error();
        config.serial = *console;
    }
    if (root.contains("virtio_console")) {
        auto console = parse_console(root["virtio_console"], "virtio_console");
        if (!console) return console.error();
        config.virtio_console = *console;
    }
    if (root.contains("disks")) {
        if (!root["disks"].is_array()) return make_error("disks: expected a list");
        size_t index = 0;
        for (const auto& entry : root["disks"]) {
            const std::string where = "disks[" + std::to_string(index++) + "].";
            if (!entry.is_object()) return make_error(where.substr(0, where.size() - 1) + ": expected an object");
            ATOLL_TRY(refuse_unknown_keys(entry, {"path", "read_only", "serial"}, where));
            DiskConfig disk;
            ATOLL_TRY(take(entry, "path", disk.path, where));
            ATOLL_TRY(take(entry, "read_only", disk.read_only, where));
            ATOLL_TRY(take(entry, "serial", disk.serial, where));
            config.disks.push_back(std::move(disk));
        }
    }
    if (root.contains("nets")) {
        if (!root["nets"].is_array()) return make_error("nets: expected a list");
        size_t index = 0;
        for (const auto& entry : root["nets"]) {
            const std::string where = "nets[" + std::to_string(index++) + "].";
            if (!entry.is_object()) return make_error(where.substr(0, where.size() - 1) + ": expected an object");
            ATOLL_TRY(refuse_unknown_keys(entry, {"mode", "tap", "mac", "host_forwards"}, where));
            NetConfig net;
            std::string mode = "user";
            ATOLL_TRY(take(entry, "mode", mode, where));
            if (mode == "user") net.mode = NetConfig::Mode::User;
            else if (mode == "tap") net.mode = NetConfig::Mode::Tap;
            else return make_error(where + "mode: \"" + mode + "\" is not \"user\" or \"tap\"");
            ATOLL_TRY(take(entry, "tap", net.tap_name, where));
            ATOLL_TRY(take(entry, "mac", net.mac, where));
            ATOLL_TRY(take(entry, "host_forwards", net.host_forwards, where));
            config.nets.push_back(std::move(net));
        }
    }
    if (root.contains("display")) {
        const auto& entry = root["display"];
        if (!entry.is_object()) return make_error("display: expected an object");
        ATOLL_TRY(refuse_unknown_keys(entry, {"socket", "scanouts", "width", "height"}, "display."));
        ATOLL_TRY(take(entry, "socket", config.display.socket, "display."));
        ATOLL_TRY(take(entry, "scanouts", config.display.scanouts, "display."));
        ATOLL_TRY(take(entry, "width", config.display.width, "display."));
        ATOLL_TRY(take(entry, "height", config.display.height, "display."));
        if (config.display.socket.empty()) return make_error("display.socket: the display server's socket is needed");
    }
    if (root.contains("audio")) {
        const auto& entry = root["audio"];
        if (!entry.is_object()) return make_error("audio: expected an object");
        ATOLL_TRY(refuse_unknown_keys(entry, {"backend", "server"}, "audio."));
        std::string backend = "none";
        ATOLL_TRY(take(entry, "backend", backend, "audio."));
        if (backend == "none") config.audio.backend = AudioConfig::Backend::None;
        else if (backend == "pulse") config.audio.backend = AudioConfig::Backend::Pulse;
        else return make_error("audio.backend: \"" + backend + "\" is not \"none\" or \"pulse\"");
        ATOLL_TRY(take(entry, "server", config.audio.server, "audio."));
    }
    ATOLL_TRY(validate_vm_config(config));
    return config;
}

Result<VmConfig> load_vm_config(const std::string& path) {
    std::ifstream file(path);
    if (!file) return make_error("configuration " + path + ": cannot be read");
    std::stringstream text;
    text << file.rdbuf();
    auto config = parse_vm_config(text.str());
    if (!config) return make_error("configuration " + path + ": " + config.error().message);
    return config;
}

std::string vm_config_to_json(const VmConfig& config) {
    json root;
    root["name"] = config.name;
    root["kernel"] = config.kernel;
    root["initrd"] = config.initrd;
    root["cmdline"] = config.cmdline;
    root["memory_mib"] = config.memory_mib;
    root["vcpus"] = config.vcpus;
    root["entropy"] = config.entropy;
    root["serial"] = console_to_string(config.serial);
    root["virtio_console"] = console_to_string(config.virtio_console);
    root["disks"] = json::array();
    for (const auto& disk : config.disks)
        root["disks"].push_back({{"path", disk.path}, {"read_only", disk.read_only}, {"serial", disk.serial}});
    root["nets"] = json::array();
    for (const auto& net : config.nets) {
        json entry{{"mode", net.mode == NetConfig::Mode::Tap ? "tap" : "user"}, {"host_forwards", net.host_forwards}};
        if (!net.tap_name.empty()) entry["tap"] = net.tap_name;
        if (!net.mac.empty()) entry["mac"] = net.mac;
        root["nets"].push_back(entry);
    }
    if (config.display.enabled())
        root["display"] = {{"socket", config.display.socket},
                           {"scanouts", config.display.scanouts},
                           {"width", config.display.width},
                           {"height", config.display.height}};
    if (config.audio.enabled()) {
        root["audio"] = {{"backend", "pulse"}};
        if (!config.audio.server.empty()) root["audio"]["server"] = config.audio.server;
    }
    return root.dump(2);
}

Result<void> validate_vm_config(const VmConfig& config) {
    static const std::regex name_pattern("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    if (!std::regex_match(config.name, name_pattern))
        return make_error("name \"" + config.name + "\": use 1-64 letters, digits, '.', '_' or '-'");
    if (config.kernel.empty()) return make_error("kernel: no kernel given");
    if (config.vcpus == 0) return make_error("vcpus: at least one vCPU is needed");
    if (config.vcpus > 255) return make_error("vcpus: " + std::to_string(config.vcpus) + " is more than 255");
    if (config.memory_mib < 16) return make_error("memory_mib: at least 16 MiB is needed");
    if (config.memory_mib > (1ull << 22)) return make_error("memory_mib: " + std::to_string(config.memory_mib) + " MiB is more than 4 TiB");
    if (config.cmdline.size() > 4095) return make_error("cmdline: longer than 4095 bytes");
    if (config.disks.size() > 16) return make_error("disks: at most 16");
    if (config.nets.size() > 8) return make_error("nets: at most 8");
    for (size_t i = 0; i < config.disks.size(); ++i) {
        if (config.disks[i].path.empty()) return make_error("disks[" + std::to_string(i) + "].path: empty");
        if (config.disks[i].serial.size() > 20)
            return make_error("disks[" + std::to_string(i) + "].serial: longer than 20 bytes");
    }
    static const std::regex mac_pattern("([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}");
    static const std::regex forward_pattern("(tcp|udp):[0-9]{1,5}:[0-9]{1,5}");
    for (size_t i = 0; i < config.nets.size(); ++i) {
        const auto& net = config.nets[i];
        const std::string where = "nets[" + std::to_string(i) + "].";
        if (!net.mac.empty() && !std::regex_match(net.mac, mac_pattern))
            return make_error(where + "mac: \"" + net.mac + "\" is not a MAC address");
        if (net.mode == NetConfig::Mode::Tap && (net.tap_name.empty() || net.tap_name.size() > 15))
            return make_error(where + "tap: a tap interface name of 1-15 characters is needed");
        for (const auto& forward : net.host_forwards) {
            if (!std::regex_match(forward, forward_pattern))
                return make_error(where + "host_forwards: \"" + forward + "\" is not PROTO:HOSTPORT:GUESTPORT");
        }
    }
    for (const auto* console : {&config.serial, &config.virtio_console}) {
        if (console->mode == ConsoleConfig::Mode::Socket && console->socket_path.size() > 107)
            return make_error("console socket path longer than 107 bytes: " + console->socket_path);
    }
    if (config.serial.mode == ConsoleConfig::Mode::Stdio && config.virtio_console.mode == ConsoleConfig::Mode::Stdio)
        return make_error("serial and virtio_console cannot both use stdio");
    if (config.display.enabled()) {
        const auto& display = config.display;
        if (display.socket.size() > 107) return make_error("display.socket: path longer than 107 bytes: " + display.socket);
        if (display.scanouts < 1 || display.scanouts > 4)
            return make_error("display.scanouts: " + std::to_string(display.scanouts) + " is not 1 to 4");
        // The range display-protocol.md allows for a viewer's resize.
        if (display.width < 64 || display.width > 8192 || display.height < 64 || display.height > 8192)
            return make_error("display size " + std::to_string(display.width) + "x" + std::to_string(display.height) +
                              ": width and height must be 64 to 8192");
    }
    if (!config.audio.server.empty()) {
        if (config.audio.backend != AudioConfig::Backend::Pulse)
            return make_error("audio.server: a server is only used with the pulse backend");
        if (config.audio.server.size() > 1024) return make_error("audio.server: longer than 1024 bytes");
        for (const char c : config.audio.server)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                return make_error("audio.server: contains a control character");
    }
    return {};
}

}  // namespace atl::vmm
