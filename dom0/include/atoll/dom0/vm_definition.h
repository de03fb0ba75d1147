// A VM as atolld keeps it: the definition DefineVM takes (JSON), its parser and
// validator, and the states a VM goes through.
#pragma once

#include <atoll/dom0/error.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atl::dom0 {

// shut-off -> starting -> running <-> paused; running -> shutting-down -> shut-off;
// any running state -> crashed when atoll-vmm dies unexpectedly.
enum class VmState { ShutOff, Starting, Running, Paused, ShuttingDown, Crashed };

const char* state_name(VmState state);  // "shut-off", "starting", ...
std::optional<VmState> parse_state(std::string_view text);
// Whether an atoll-vmm process belongs to the VM in this state.
bool state_is_active(VmState state);

struct BootSource {
    enum class Kind { Kernel, Disk };
    Kind kind = Kind::Kernel;
    std::string kernel;  // Kind::Kernel: a bzImage
    std::string initrd;  // optional
    std::string cmdline = "console=ttyS0";
    unsigned disk = 0;  // Kind::Disk: index into disks
};

struct DiskDefinition {
    std::string path;
    bool read_only = false;
    std::string serial;
};

struct NicDefinition {
    enum class Mode { User, Tap };
    Mode mode = Mode::User;
    std::string tap;
    std::string mac;
    std::vector<std::string> host_forwards;  // user mode: "tcp:HOSTPORT:GUESTPORT"
};

struct RestartPolicy {
    enum class Kind { Never, OnCrash };
    Kind kind = Kind::Never;
    unsigned max_restarts = 0;  // OnCrash: restarts after one Start, at most
};

std::string restart_policy_text(const RestartPolicy& policy);  // "never", "on-crash:3"

struct VmDefinition {
    std::string uuid;  // canonical lower-case 8-4-4-4-12; empty before DefineVM assigns one
    std::string name;
    unsigned vcpus = 1;
    uint64_t memory_mib = 512;
    BootSource boot;
    std::vector<DiskDefinition> disks;
    std::vector<NicDefinition> nets;
    bool entropy = true;
    bool autostart = false;
    RestartPolicy restart;
    // {"display": ..., "audio": ..., "usb": ...}: kept as given (a JSON object
    // text, "{}" when none), validated by display_definition/audio_definition.
    std::string extra_json = "{}";
};

// "display": the guest's screen, keyboard and pointer, served by atoll-display.
struct DisplayDefinition {
    uint64_t width = 1280;  // each monitor's preferred size until a viewer resizes it
    uint64_t height = 800;
    uint64_t scanouts = 1;  // monitors
};
// The display a (validated) definition asks for, if any.
std::optional<DisplayDefinition> display_definition(const VmDefinition& definition);

// "audio": a sound card (virtio-snd) played through PulseAudio.
struct AudioDefinition {
    std::string server;  // PulseAudio server address; empty: atolld's --pulse-server
};
std::optional<AudioDefinition> audio_definition(const VmDefinition& definition);

inline constexpr size_t kMaxConfigBytes = 256 * 1024;
inline constexpr size_t kMaxNameBytes = 64;
inline constexpr size_t kMaxConfigDepth = 32;  // nesting of arrays and objects

// The JSON form (see dom0/README.md). Unknown keys, wrong types and values out
// of range are InvalidArgument faults that name the key.
Outcome<VmDefinition> parse_vm_definition(std::string_view json_text);
// The canonical JSON form: parse_vm_definition(vm_definition_to_json(d)) == d.
std::string vm_definition_to_json(const VmDefinition& definition);
// What parse_vm_definition checks after reading: names, ranges, counts, path syntax.
// Whether the files exist is the StoragePolicy's business.
Outcome<void> validate_vm_definition(const VmDefinition& definition);

bool valid_vm_name(std::string_view name);

// UUIDs: random (version 4) and the canonical form of one given by a person.
std::string generate_uuid();
std::optional<std::string> canonical_uuid(std::string_view text);

// `text` in double quotes for an error message, cut after about `limit` bytes
// at a UTF-8 character boundary (D-Bus carries only valid UTF-8) with "...".
std::string quote_text(std::string_view text, size_t limit = 64, char quote = '"');
// Whether `text` is valid UTF-8 (what D-Bus requires of every string).
bool valid_utf8(std::string_view text);
// `text` with every byte that is not part of a valid UTF-8 character replaced
// by '?': for what atolld passes on from elsewhere (paths, atoll-vmm's words).
std::string make_valid_utf8(std::string_view text);

// The D-Bus object of a VM: /org/atoll/Atoll1/vm/<uuid with '_' for '-'>.
std::string vm_object_path(const std::string& uuid);

}  // namespace atl::dom0
