#include <atoll/dom0/vm_definition.h>
#include <atoll/json_depth.h>

#include <nlohmann/json.hpp>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <initializer_list>

namespace atl::dom0 {
namespace {

using nlohmann::json;

Fault invalid(std::string message) { return fault(ErrorKind::InvalidArgument, std::move(message)); }

Outcome<void> refuse_unknown_keys(const json& object, std::initializer_list<std::string_view> known,
                                  const std::string& where) {
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (std::find(known.begin(), known.end(), it.key()) == known.end())
            return invalid(where + (it.key().size() <= 64 ? it.key() : quote_text(it.key())) + ": unknown setting");
    }
    return {};
}

// Reads `key` of `object` into `out` when present. Integers must be integers
// (not 1.5, not -1 for an unsigned), strings strings, booleans booleans.
Outcome<void> take_string(const json& object, const char* key, std::string& out, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end()) return {};
    if (!it->is_string()) return invalid(where + key + ": expected a string, got " + it->type_name());
    out = it->get<std::string>();
    return {};
}

Outcome<void> take_bool(const json& object, const char* key, bool& out, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end()) return {};
    if (!it->is_boolean()) return invalid(where + key + ": expected true or false, got " + it->type_name());
    out = it->get<bool>();
    return {};
}

Outcome<void> take_unsigned(const json& object, const char* key, uint64_t& out, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end()) return {};
    if (it->is_number_unsigned()) {
        out = it->get<uint64_t>();
        return {};
    }
    if (it->is_number_integer()) return invalid(where + key + ": must not be negative");
    return invalid(where + key + ": expected a whole number, got " + it->type_name());
}

bool valid_path_syntax(const std::string& path, std::string& why) {
    if (path.empty()) {
        why = "empty";
        return false;
    }
    if (path.front() != '/') {
        why = quote_text(path, 256) + " is not an absolute path";
        return false;
    }
    if (path.size() > 4095) {
        why = "longer than 4095 bytes";
        return false;
    }
    if (path.find('\0') != std::string::npos) {
        why = "contains a NUL byte";
        return false;
    }
    // No "." or ".." components: a path names the file it names, nothing else.
    size_t start = 1;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        if (slash == std::string::npos) slash = path.size();
        const std::string_view part(path.data() + start, slash - start);
        if (part == ".." || part == ".") {
            why = quote_text(path, 256) + " contains a '" + std::string(part) + "' component";
            return false;
        }
        start = slash + 1;
    }
    return true;
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool valid_mac(const std::string& mac) {
    if (mac.size() != 17) return false;
    for (size_t i = 0; i < 17; ++i) {
        if (i % 3 == 2 ? mac[i] != ':' : !is_hex(mac[i])) return false;
    }
    const int first = std::stoi(mac.substr(0, 2), nullptr, 16);
    return (first & 1) == 0;  // not a multicast address
}

bool valid_port(std::string_view text) {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value >= 1 && value <= 65535;
}

bool valid_forward(const std::string& text) {
    const size_t first = text.find(':');
    if (first == std::string::npos) return false;
    const size_t second = text.find(':', first + 1);
    if (second == std::string::npos) return false;
    const std::string_view proto(text.data(), first);
    if (proto != "tcp" && proto != "udp") return false;
    return valid_port(std::string_view(text).substr(first + 1, second - first - 1)) &&
           valid_port(std::string_view(text).substr(second + 1));
}

// The ranges atoll-vmm accepts (and display-protocol.md allows for a resize).
Outcome<DisplayDefinition> parse_display(const json& entry) {
    if (!entry.is_object()) return invalid(std::string("display: expected an object, got ") + entry.type_name());
    ATOLL_DOM0_TRY(refuse_unknown_keys(entry, {"width", "height", "scanouts"}, "display."));
    DisplayDefinition display;
    ATOLL_DOM0_TRY(take_unsigned(entry, "width", display.width, "display."));
    ATOLL_DOM0_TRY(take_unsigned(entry, "height", display.height, "display."));
    ATOLL_DOM0_TRY(take_unsigned(entry, "scanouts", display.scanouts, "display."));
    for (auto [key, value] : {std::pair{"width", display.width}, std::pair{"height", display.height}}) {
        if (value < 64 || value > 8192)
            return invalid(std::string("display.") + key + ": " + std::to_string(value) + " is not 64 to 8192");
    }
    if (display.scanouts < 1 || display.scanouts > 4)
        return invalid("display.scanouts: " + std::to_string(display.scanouts) + " is not 1 to 4");
    return display;
}

Outcome<AudioDefinition> parse_audio(const json& entry) {
    if (!entry.is_object()) return invalid(std::string("audio: expected an object, got ") + entry.type_name());
    ATOLL_DOM0_TRY(refuse_unknown_keys(entry, {"server"}, "audio."));
    AudioDefinition audio;
    ATOLL_DOM0_TRY(take_string(entry, "server", audio.server, "audio."));
    if (audio.server.size() > 1024) return invalid("audio.server: longer than 1024 bytes");
    for (unsigned char c : audio.server) {
        if (c < 0x20 || c == 0x7f) return invalid("audio.server: " + quote_text(audio.server) + " has control characters");
    }
    return audio;
}

bool printable(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
}

}  // namespace

std::string quote_text(std::string_view text, size_t limit, char quote) {
    if (text.size() <= limit) return quote + std::string(text) + quote;
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // not inside a character
    return quote + std::string(text.substr(0, cut)) + "..." + quote + " (" + std::to_string(text.size()) + " bytes)";
}

namespace {
// The length of the valid UTF-8 character at text[i], or 0 (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF).
size_t utf8_character_length(std::string_view text, size_t i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xe ? 3 : (byte >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > text.size()) return 0;
    uint32_t code = length == 1 ? byte : byte & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
        const auto next = static_cast<unsigned char>(text[i + k]);
        if ((next & 0xc0) != 0x80) return 0;
        code = code << 6 | (next & 0x3f);
    }
    if ((length == 2 && code < 0x80) || (length == 3 && code < 0x800) || (length == 4 && code < 0x10000) ||
        (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
        return 0;
    return length;
}
}  // namespace

std::string make_valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t length = utf8_character_length(text, i);
        if (length == 0) {
            out += '?';
            ++i;
        } else {
            out.append(text.substr(i, length));
            i += length;
        }
    }
    return out;
}

bool valid_utf8(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        const size_t length = utf8_character_length(text, i);
        if (length == 0) return false;
        i += length;
    }
    return true;
}

const char* error_kind_name(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::Exists: return "Exists";
    case ErrorKind::InvalidState: return "InvalidState";
    case ErrorKind::Timeout: return "Timeout";
    case ErrorKind::Failed: return "Failed";
    }
    return "Failed";
}

const char* state_name(VmState state) {
    switch (state) {
    case VmState::ShutOff: return "shut-off";
    case VmState::Starting: return "starting";
    case VmState::Running: return "running";
    case VmState::Paused: return "paused";
    case VmState::ShuttingDown: return "shutting-down";
    case VmState::Crashed: return "crashed";
    }
    return "shut-off";
}

std::optional<VmState> parse_state(std::string_view text) {
    for (auto state : {VmState::ShutOff, VmState::Starting, VmState::Running, VmState::Paused, VmState::ShuttingDown,
                       VmState::Crashed}) {
        if (text == state_name(state)) return state;
    }
    return std::nullopt;
}

bool state_is_active(VmState state) {
    return state == VmState::Starting || state == VmState::Running || state == VmState::Paused ||
           state == VmState::ShuttingDown;
}

std::string restart_policy_text(const RestartPolicy& policy) {
    if (policy.kind == RestartPolicy::Kind::Never) return "never";
    return "on-crash:" + std::to_string(policy.max_restarts);
}

bool valid_vm_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxNameBytes) return false;
    auto letter_or_digit = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!letter_or_digit(name.front())) return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return letter_or_digit(c) || c == '.' || c == '_' || c == '-'; });
}

std::string generate_uuid() {
    std::array<uint8_t, 16> bytes{};
    size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t got = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (got > 0) filled += static_cast<size_t>(got);
    }
    bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4 (RFC 9562, 5.4)
    bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);  // variant 10
    char text[37];
    std::snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                  bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                  bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
    return text;
}

std::optional<std::string> canonical_uuid(std::string_view text) {
    if (text.size() != 36) return std::nullopt;
    std::string out(text);
    bool all_zero = true;
    for (size_t i = 0; i < out.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash) {
            if (out[i] != '-') return std::nullopt;
            continue;
        }
        if (!is_hex(out[i])) return std::nullopt;
        if (out[i] >= 'A' && out[i] <= 'F') out[i] = static_cast<char>(out[i] - 'A' + 'a');
        all_zero = all_zero && out[i] == '0';
    }
    if (all_zero) return std::nullopt;  // the nil UUID names nothing
    return out;
}

std::string vm_object_path(const std::string& uuid) {
    std::string path = "/org/atoll/Atoll1/vm/" + uuid;
    std::replace(path.begin() + 21, path.end(), '-', '_');
    return path;
}

Outcome<VmDefinition> parse_vm_definition(std::string_view json_text) {
    if (json_text.size() > kMaxConfigBytes)
        return invalid("configuration: " + std::to_string(json_text.size()) + " bytes is more than the " +
                       std::to_string(kMaxConfigBytes) + " allowed");
    if (json_nesting_depth(json_text, kMaxConfigDepth) > kMaxConfigDepth)
        return invalid("configuration: nested more than " + std::to_string(kMaxConfigDepth) + " levels deep");
    json root = json::parse(json_text, nullptr, false);
    if (root.is_discarded()) return invalid("configuration: not valid JSON");
    if (!root.is_object()) return invalid("configuration: must be a JSON object");
    ATOLL_DOM0_TRY(refuse_unknown_keys(root,
                                       {"name", "uuid", "vcpus", "memory_mib", "boot", "disks", "nets", "entropy",
                                        "autostart", "restart", "display", "audio", "usb"},
                                       ""));
    VmDefinition definition;
    if (!root.contains("name")) return invalid("name: missing");
    ATOLL_DOM0_TRY(take_string(root, "name", definition.name, ""));
    std::string uuid;
    ATOLL_DOM0_TRY(take_string(root, "uuid", uuid, ""));
    if (root.contains("uuid")) {
        auto canonical = canonical_uuid(uuid);
        if (!canonical) return invalid("uuid: " + quote_text(uuid) + " is not a UUID (8-4-4-4-12 hex digits, not all zero)");
        definition.uuid = *canonical;
    }
    uint64_t vcpus = definition.vcpus;
    ATOLL_DOM0_TRY(take_unsigned(root, "vcpus", vcpus, ""));
    if (vcpus == 0 || vcpus > 255) return invalid("vcpus: " + std::to_string(vcpus) + " is not between 1 and 255");
    definition.vcpus = static_cast<unsigned>(vcpus);
    ATOLL_DOM0_TRY(take_unsigned(root, "memory_mib", definition.memory_mib, ""));
    ATOLL_DOM0_TRY(take_bool(root, "entropy", definition.entropy, ""));
    ATOLL_DOM0_TRY(take_bool(root, "autostart", definition.autostart, ""));

    if (root.contains("disks")) {
        const json& disks = root["disks"];
        if (!disks.is_array()) return invalid(std::string("disks: expected a list, got ") + disks.type_name());
        if (disks.size() > 16) return invalid("disks: " + std::to_string(disks.size()) + " disks, at most 16");
        for (size_t i = 0; i < disks.size(); ++i) {
            const std::string where = "disks[" + std::to_string(i) + "].";
            const json& entry = disks[i];
            if (!entry.is_object()) return invalid(where.substr(0, where.size() - 1) + ": expected an object");
            ATOLL_DOM0_TRY(refuse_unknown_keys(entry, {"path", "read_only", "serial"}, where));
            DiskDefinition disk;
            if (!entry.contains("path")) return invalid(where + "path: missing");
            ATOLL_DOM0_TRY(take_string(entry, "path", disk.path, where));
            ATOLL_DOM0_TRY(take_bool(entry, "read_only", disk.read_only, where));
            ATOLL_DOM0_TRY(take_string(entry, "serial", disk.serial, where));
            definition.disks.push_back(std::move(disk));
        }
    }
    if (root.contains("nets")) {
        const json& nets = root["nets"];
        if (!nets.is_array()) return invalid(std::string("nets: expected a list, got ") + nets.type_name());
        if (nets.size() > 8) return invalid("nets: " + std::to_string(nets.size()) + " interfaces, at most 8");
        for (size_t i = 0; i < nets.size(); ++i) {
            const std::string where = "nets[" + std::to_string(i) + "].";
            const json& entry = nets[i];
            if (!entry.is_object()) return invalid(where.substr(0, where.size() - 1) + ": expected an object");
            ATOLL_DOM0_TRY(refuse_unknown_keys(entry, {"mode", "tap", "mac", "host_forwards"}, where));
            NicDefinition nic;
            std::string mode = "user";
            ATOLL_DOM0_TRY(take_string(entry, "mode", mode, where));
            if (mode == "user") nic.mode = NicDefinition::Mode::User;
            else if (mode == "tap") nic.mode = NicDefinition::Mode::Tap;
            else return invalid(where + "mode: " + quote_text(mode) + " is not \"user\" or \"tap\"");
            ATOLL_DOM0_TRY(take_string(entry, "tap", nic.tap, where));
            ATOLL_DOM0_TRY(take_string(entry, "mac", nic.mac, where));
            if (entry.contains("host_forwards")) {
                const json& forwards = entry["host_forwards"];
                if (!forwards.is_array()) return invalid(where + "host_forwards: expected a list of strings");
                if (forwards.size() > 32) return invalid(where + "host_forwards: at most 32");
                for (const auto& forward : forwards) {
                    if (!forward.is_string()) return invalid(where + "host_forwards: expected a list of strings");
                    nic.host_forwards.push_back(forward.get<std::string>());
                }
            }
            definition.nets.push_back(std::move(nic));
        }
    }
    if (!root.contains("boot")) return invalid("boot: missing (give {\"kernel\": PATH, ...} or {\"disk\": INDEX})");
    {
        const json& boot = root["boot"];
        if (!boot.is_object()) return invalid(std::string("boot: expected an object, got ") + boot.type_name());
        ATOLL_DOM0_TRY(refuse_unknown_keys(boot, {"kernel", "initrd", "cmdline", "disk"}, "boot."));
        if (boot.contains("disk")) {
            if (boot.contains("kernel") || boot.contains("initrd") || boot.contains("cmdline"))
                return invalid("boot: give either \"disk\" or \"kernel\" (with \"initrd\", \"cmdline\"), not both");
            uint64_t disk = 0;
            ATOLL_DOM0_TRY(take_unsigned(boot, "disk", disk, "boot."));
            if (disk >= definition.disks.size())
                return invalid("boot.disk: " + std::to_string(disk) + " is not the index of a disk (there are " +
                               std::to_string(definition.disks.size()) + ")");
            definition.boot.kind = BootSource::Kind::Disk;
            definition.boot.disk = static_cast<unsigned>(disk);
            definition.boot.cmdline.clear();
        } else {
            if (!boot.contains("kernel")) return invalid("boot.kernel: missing (or give boot.disk)");
            ATOLL_DOM0_TRY(take_string(boot, "kernel", definition.boot.kernel, "boot."));
            ATOLL_DOM0_TRY(take_string(boot, "initrd", definition.boot.initrd, "boot."));
            ATOLL_DOM0_TRY(take_string(boot, "cmdline", definition.boot.cmdline, "boot."));
        }
    }
    if (root.contains("restart")) {
        const json& restart = root["restart"];
        if (!restart.is_object()) return invalid(std::string("restart: expected an object, got ") + restart.type_name());
        ATOLL_DOM0_TRY(refuse_unknown_keys(restart, {"policy", "max_restarts"}, "restart."));
        std::string policy = "never";
        ATOLL_DOM0_TRY(take_string(restart, "policy", policy, "restart."));
        uint64_t max_restarts = 3;
        ATOLL_DOM0_TRY(take_unsigned(restart, "max_restarts", max_restarts, "restart."));
        if (policy == "never") {
            if (restart.contains("max_restarts")) return invalid("restart.max_restarts: only with policy \"on-crash\"");
            definition.restart = {};
        } else if (policy == "on-crash") {
            if (max_restarts > 100) return invalid("restart.max_restarts: " + std::to_string(max_restarts) + " is more than 100");
            definition.restart = {RestartPolicy::Kind::OnCrash, static_cast<unsigned>(max_restarts)};
        } else {
            return invalid("restart.policy: " + quote_text(policy) + " is not \"never\" or \"on-crash\"");
        }
    }
    json extra = json::object();
    for (const char* key : {"display", "audio", "usb"}) {
        if (root.contains(key)) extra[key] = root[key];
    }
    definition.extra_json = extra.dump();
    ATOLL_DOM0_TRY(validate_vm_definition(definition));
    return definition;
}

Outcome<void> validate_vm_definition(const VmDefinition& d) {
    if (!valid_vm_name(d.name))
        return invalid("name " + quote_text(d.name) +
                       ": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
    if (!d.uuid.empty() && canonical_uuid(d.uuid) != d.uuid) return invalid("uuid: " + quote_text(d.uuid) + " is not canonical");
    if (d.vcpus == 0 || d.vcpus > 255) return invalid("vcpus: " + std::to_string(d.vcpus) + " is not between 1 and 255");
    if (d.memory_mib < 16 || d.memory_mib > (uint64_t{1} << 22))
        return invalid("memory_mib: " + std::to_string(d.memory_mib) + " is not between 16 and 4194304 (4 TiB)");
    std::string why;
    if (d.boot.kind == BootSource::Kind::Kernel) {
        if (!valid_path_syntax(d.boot.kernel, why)) return invalid("boot.kernel: " + why);
        if (!d.boot.initrd.empty() && !valid_path_syntax(d.boot.initrd, why)) return invalid("boot.initrd: " + why);
        if (d.boot.cmdline.size() > 4095) return invalid("boot.cmdline: longer than 4095 bytes");
        if (!printable(d.boot.cmdline)) return invalid("boot.cmdline: contains control characters");
    } else if (d.boot.disk >= d.disks.size()) {
        return invalid("boot.disk: " + std::to_string(d.boot.disk) + " is not the index of a disk");
    }
    if (d.disks.size() > 16) return invalid("disks: at most 16");
    for (size_t i = 0; i < d.disks.size(); ++i) {
        const std::string where = "disks[" + std::to_string(i) + "].";
        if (!valid_path_syntax(d.disks[i].path, why)) return invalid(where + "path: " + why);
        if (d.disks[i].serial.size() > 20) return invalid(where + "serial: longer than 20 bytes");
        if (!printable(d.disks[i].serial)) return invalid(where + "serial: contains control characters");
    }
    if (d.nets.size() > 8) return invalid("nets: at most 8");
    for (size_t i = 0; i < d.nets.size(); ++i) {
        const auto& nic = d.nets[i];
        const std::string where = "nets[" + std::to_string(i) + "].";
        if (!nic.mac.empty() && !valid_mac(nic.mac))
            return invalid(where + "mac: " + quote_text(nic.mac) + " is not a unicast MAC address (aa:bb:cc:dd:ee:ff, first byte even)");
        if (nic.mode == NicDefinition::Mode::Tap) {
            if (nic.tap.empty() || nic.tap.size() > 15 || !printable(nic.tap) || nic.tap.find('/') != std::string::npos ||
                nic.tap.find(' ') != std::string::npos)
                return invalid(where + "tap: a tap interface name of 1-15 characters is needed");
            if (!nic.host_forwards.empty()) return invalid(where + "host_forwards: only for mode \"user\"");
        } else if (!nic.tap.empty()) {
            return invalid(where + "tap: only for mode \"tap\"");
        }
        for (const auto& forward : nic.host_forwards) {
            if (!valid_forward(forward))
                return invalid(where + "host_forwards: " + quote_text(forward) + " is not tcp|udp:HOSTPORT:GUESTPORT");
        }
    }
    if (d.restart.kind == RestartPolicy::Kind::OnCrash && d.restart.max_restarts > 100)
        return invalid("restart.max_restarts: more than 100");
    json extra = json::parse(d.extra_json, nullptr, false);
    if (extra.is_discarded() || !extra.is_object()) return invalid("display/audio/usb: not a JSON object");
    if (extra.contains("display")) ATOLL_DOM0_TRY(parse_display(extra["display"]));
    if (extra.contains("audio")) ATOLL_DOM0_TRY(parse_audio(extra["audio"]));
    return {};
}

std::optional<AudioDefinition> audio_definition(const VmDefinition& d) {
    json extra = json::parse(d.extra_json, nullptr, false);
    if (!extra.is_object() || !extra.contains("audio")) return std::nullopt;
    auto audio = parse_audio(extra["audio"]);
    if (!audio) return std::nullopt;
    return *audio;
}

std::optional<DisplayDefinition> display_definition(const VmDefinition& d) {
    json extra = json::parse(d.extra_json, nullptr, false);
    if (!extra.is_object() || !extra.contains("display")) return std::nullopt;
    auto display = parse_display(extra["display"]);
    if (!display) return std::nullopt;
    return *display;
}

std::string vm_definition_to_json(const VmDefinition& d) {
    json root;
    root["name"] = d.name;
    if (!d.uuid.empty()) root["uuid"] = d.uuid;
    root["vcpus"] = d.vcpus;
    root["memory_mib"] = d.memory_mib;
    if (d.boot.kind == BootSource::Kind::Disk) {
        root["boot"] = {{"disk", d.boot.disk}};
    } else {
        json boot{{"kernel", d.boot.kernel}, {"cmdline", d.boot.cmdline}};
        if (!d.boot.initrd.empty()) boot["initrd"] = d.boot.initrd;
        root["boot"] = boot;
    }
    root["disks"] = json::array();
    for (const auto& disk : d.disks) {
        json entry{{"path", disk.path}, {"read_only", disk.read_only}};
        if (!disk.serial.empty()) entry["serial"] = disk.serial;
        root["disks"].push_back(entry);
    }
    root["nets"] = json::array();
    for (const auto& nic : d.nets) {
        json entry{{"mode", nic.mode == NicDefinition::Mode::Tap ? "tap" : "user"}};
        if (!nic.tap.empty()) entry["tap"] = nic.tap;
        if (!nic.mac.empty()) entry["mac"] = nic.mac;
        if (!nic.host_forwards.empty()) entry["host_forwards"] = nic.host_forwards;
        root["nets"].push_back(entry);
    }
    root["entropy"] = d.entropy;
    root["autostart"] = d.autostart;
    if (d.restart.kind == RestartPolicy::Kind::Never) root["restart"] = {{"policy", "never"}};
    else root["restart"] = {{"policy", "on-crash"}, {"max_restarts", d.restart.max_restarts}};
    json extra = json::parse(d.extra_json, nullptr, false);
    if (extra.is_object()) {
        for (auto it = extra.begin(); it != extra.end(); ++it) root[it.key()] = it.value();
    }
    return root.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace atl::dom0
