// What atolld knows of atoll-display: each VM's VNC address, from the state
// files atoll-display keeps (<state dir>/<vm name>.json, display/README.md),
// followed with inotify so that D-Bus clients see changes as signals.
#pragma once

#include <atoll/dom0/daemon.h>

#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace atl::dom0 {

// The VNC endpoint in `<dir>/<vm_name>.json`, if the file is there, names
// that VM, comes from a display server that is still running, and has one.
std::optional<VncEndpoint> read_vnc_state(const std::string& dir, const std::string& vm_name);

class DisplayStateWatcher {
public:
    // `changed(vm_name)` runs on the watcher's thread for each state file that
    // appears, changes or goes; with "" when every VM should be looked at again
    // (the directory appeared, or events were lost).
    using Changed = std::function<void(const std::string& vm_name)>;
    DisplayStateWatcher(std::string dir, Changed changed);
    ~DisplayStateWatcher();
    DisplayStateWatcher(const DisplayStateWatcher&) = delete;
    DisplayStateWatcher& operator=(const DisplayStateWatcher&) = delete;

private:
    void run();

    std::string dir_;
    Changed changed_;
    int inotify_fd_ = -1;
    int stop_fd_ = -1;
    std::thread thread_;
};

}  // namespace atl::dom0
