// What one VM is made of: the settings atoll-vmm takes from its command line
// or from a JSON file (the form atolld hands over).
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atl::vmm {

struct DiskConfig {
    std::string path;
    bool read_only = false;
    std::string serial;  // what the guest reads with VIRTIO_BLK_T_GET_ID
};

struct NetConfig {
    enum class Mode { User, Tap };
    Mode mode = Mode::User;
    std::string tap_name;
    std::string mac;                         // empty: derived from the VM name
    std::vector<std::string> host_forwards;  // user mode: "tcp:HOSTPORT:GUESTPORT"
};

struct ConsoleConfig {
    enum class Mode { Stdio, Socket, None };
    Mode mode = Mode::Stdio;
    std::string socket_path;
};

// The virtio-gpu and virtio-input devices, shown through atoll-display
// (display/docs/display-protocol.md). No socket: no display devices at all.
struct DisplayConfig {
    std::string socket;     // atoll-display's unix socket
    unsigned scanouts = 1;  // 1-4 monitors
    unsigned width = 1280;  // each scanout's preferred size until a viewer resizes it
    unsigned height = 800;

    bool enabled() const { return !socket.empty(); }
};

// virtio-snd, played and recorded through the host's PulseAudio (one client
// per VM). None: no sound device at all.
struct AudioConfig {
    enum class Backend { None, Pulse };
    Backend backend = Backend::None;
    std::string server;  // PulseAudio server address; empty: libpulse's default

    bool enabled() const { return backend != Backend::None; }
};

struct VmConfig {
    std::string name = "atoll";
    std::string kernel;
    std::string initrd;
    std::string cmdline = "console=ttyS0";
    uint64_t memory_mib = 512;
    unsigned vcpus = 1;
    std::vector<DiskConfig> disks;
    std::vector<NetConfig> nets;
    ConsoleConfig serial;                                       // the 16550 UART (ttyS0)
    ConsoleConfig virtio_console{ConsoleConfig::Mode::None, {}};  // hvc0
    bool entropy = true;
    DisplayConfig display;
    AudioConfig audio;
};

// Parses the JSON form. Unknown keys and wrong types are errors that name the key.
Result<VmConfig> parse_vm_config(std::string_view json_text);
Result<VmConfig> load_vm_config(const std::string& path);
std::string vm_config_to_json(const VmConfig& config);

// Checks what can be checked without starting anything: sizes, counts, names.
// Files are checked when the VM is built.
Result<void> validate_vm_config(const VmConfig& config);

}  // namespace atl::vmm
