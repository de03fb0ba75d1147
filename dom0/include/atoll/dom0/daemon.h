// atolld's core, without D-Bus: the VM definitions (Store), one supervised
// atoll-vmm per running VM, and the lifecycle operations. Every operation is
// safe from any thread; the slow ones (start, shutdown, stop) block their
// caller, never the others: operations on different VMs run side by side,
// and a second operation on a VM that is busy gets InvalidState.
#pragma once

#include <atoll/dom0/error.h>
#include <atoll/dom0/vm_definition.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::dom0 {

struct DaemonOptions {
    std::string database_path;
    // Sockets, VMM configurations and logs of running VMs: <runtime_dir>/vms/.
    std::string runtime_dir;
    std::vector<std::string> storage_dirs;  // where kernels and disk images may live
    std::string vmm_path;                   // atoll-vmm
    // atoll-display's link socket, handed to each VM that has a display, and the
    // directory where atoll-display keeps <vm name>.json with each VM's VNC address.
    // Empty: <runtime_dir>/display.sock and <runtime_dir>/display, where
    // atoll-display puts them by default.
    std::string display_socket;
    std::string display_state_dir;
    // The PulseAudio server VMs with "audio" play to when their definition names
    // none; empty: libpulse's default for atoll-vmm's user.
    std::string audio_server;
    std::chrono::milliseconds start_timeout{15000};  // atoll-vmm up and serving its control socket
    std::chrono::milliseconds stop_timeout{5000};    // ForceStop: the VMM gone
    std::chrono::milliseconds restart_delay{1000};   // before an automatic restart after a crash
    // Start autostart VMs once per boot of the host (a marker in runtime_dir
    // remembers that it was done, as runtime_dir is cleared at boot).
    bool autostart = true;
};

// Where a VM's screen is served over VNC (by atoll-display).
struct VncEndpoint {
    std::string host;
    uint16_t port = 0;
    bool tls = false;
    bool password = false;
    bool operator==(const VncEndpoint&) const = default;
};
// "127.0.0.1:5900", "[::1]:5900".
std::string vnc_address_text(const VncEndpoint& endpoint);

// A running VM's sound, as atoll-vmm last reported it (the counters as in
// hypervisor/docs/control-protocol.md, `status`).
struct AudioState {
    bool connected = false;  // the PulseAudio server is reachable
    uint64_t underruns = 0;       // PulseAudio ran out of the VM's playback
    uint64_t overruns = 0;        // recorded audio dropped: the guest did not take it in time
    uint64_t dropped_frames = 0;  // playback frames PulseAudio could not take in time
    uint64_t capture_gaps = 0;    // recorded audio came too late: silence in a capture buffer
    unsigned volume_percent = 100;  // of its playback stream (0-150)
    bool muted = false;
    bool operator==(const AudioState&) const = default;
};

struct VmInfo {
    VmDefinition definition;
    VmState state = VmState::ShutOff;
    std::string reason;
    int64_t pid = 0;
    uint32_t boot_count = 0;
    uint64_t started_unix_us = 0;
    uint32_t restart_count = 0;
    std::string console_socket;  // while active
    std::optional<VncEndpoint> vnc;  // while the display server shows it
    std::optional<AudioState> audio;  // while it runs, if it has sound
    bool busy = false;           // an operation is in progress
};

// Told of every change, in order, from whichever thread made it (with the
// daemon's lock held: do not call back into the Daemon from here).
class DaemonObserver {
public:
    virtual ~DaemonObserver() = default;
    virtual void vm_defined(const VmInfo& vm) = 0;
    virtual void vm_undefined(const VmInfo& vm) = 0;
    // `state_changed`: State or StateReason changed (else runtime facts or autostart).
    virtual void vm_changed(const VmInfo& vm, bool state_changed) = 0;
};

// A VM's run, without its definition: cheap to read (property reads).
struct VmStatus {
    VmState state = VmState::ShutOff;
    std::string reason;
    int64_t pid = 0;
    uint32_t boot_count = 0;
    uint64_t started_unix_us = 0;
    std::string console_socket;
    std::optional<VncEndpoint> vnc;
    std::optional<AudioState> audio;
    bool autostart = false;
};

struct HostFacts {
    std::string version;
    std::string host_name;
    uint32_t cpu_count = 0;
    uint64_t memory_mib = 0;
    bool kvm_available = false;
};

class Daemon {
public:
    // Opens the database, re-adopts every atoll-vmm still running from an
    // earlier atolld and reconciles the database with what it finds.
    static Outcome<std::unique_ptr<Daemon>> create(const DaemonOptions& options);
    // Stops following the VMMs; they keep running. Waits for operations in flight.
    ~Daemon();

    void set_observer(DaemonObserver* observer);
    // Makes operations in flight give up their waits (atolld is exiting) and
    // new ones fail. Running VMs are not touched.
    void stop_operations();
    // Starts the autostart VMs (in the background) unless done already this boot.
    void start_autostart_vms();

    // Parses, validates and stores a definition; the files must pass the storage policy.
    Outcome<VmInfo> define(std::string_view config_json);
    // Replaces a shut-off VM's definition (its UUID stays; the name may change
    // to one no other VM has). A "uuid" in the JSON must be the VM's own.
    Outcome<VmInfo> redefine(const std::string& uuid, std::string_view config_json);
    Outcome<void> undefine(const std::string& uuid);

    std::vector<VmInfo> list() const;  // sorted by name
    std::optional<VmInfo> find(const std::string& uuid) const;
    std::optional<VmInfo> find_by_name(const std::string& name) const;
    std::optional<VmStatus> status(const std::string& uuid) const;

    Outcome<void> start(const std::string& uuid);
    // timeout 0: press the button and return. Otherwise wait; when the guest
    // does not power off in time, ForceStop (force) or fail with Timeout.
    Outcome<void> shutdown(const std::string& uuid, std::chrono::milliseconds timeout, bool force);
    Outcome<void> force_stop(const std::string& uuid);
    Outcome<void> reboot(const std::string& uuid);
    Outcome<void> pause(const std::string& uuid);
    Outcome<void> resume(const std::string& uuid);
    Outcome<void> set_autostart(const std::string& uuid, bool autostart);
    // Volume (0-150 %) and mute of a running VM's sound, playback and capture alike.
    Outcome<void> set_audio_volume(const std::string& uuid, unsigned percent);
    Outcome<void> set_audio_muted(const std::string& uuid, bool muted);
    // A connected socket to the VM's serial console (the caller owns it).
    Outcome<int> open_console(const std::string& uuid);

    HostFacts host_facts() const;
    const DaemonOptions& options() const;

    // For tests: the database's own consistency checks.
    Outcome<void> check_database();

    class Impl;

private:
    explicit Daemon(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// CPU time (user + system) of a process so far, from /proc; 0 if it is gone.
uint64_t process_cpu_time_ns(int64_t pid);

// Where atoll-vmm is looked for when no path is given: in a build tree
// (../hypervisor/atoll-vmm from the running program), beside the running
// program (installed), else /usr/lib/atoll/atoll-vmm.
std::string default_vmm_path();

}  // namespace atl::dom0
