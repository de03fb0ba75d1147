// Starting atoll-vmm processes and following them by pidfd.
#pragma once

#include <atoll/dom0/error.h>

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace atl::dom0 {

struct SpawnedProcess {
    pid_t pid = 0;
    int pidfd = -1;
};

// Starts `program` with `arguments` in a session of its own (so it outlives
// atolld and its terminal), stdin from /dev/null, stdout and stderr appended
// to `log_path`, no descriptor of ours inherited, signals at their defaults.
Outcome<SpawnedProcess> spawn_detached(const std::string& program, const std::vector<std::string>& arguments,
                                       const std::string& log_path);

// pidfd_open(2); -1 with errno when the process is gone.
int open_pidfd(pid_t pid);
// Whether the process behind `pidfd` has exited (without reaping it).
bool pidfd_exited(int pidfd);
// Sends a signal through the pidfd (no pid reuse race).
bool pidfd_signal(int pidfd, int signal);

// How a child ended, from waitid(P_PIDFD); nullopt when it is not our child
// (adopted after a restart of atolld) or not yet reaped.
struct ExitStatus {
    bool signaled = false;
    int code = 0;  // exit code or signal number
};
std::optional<ExitStatus> reap(int pidfd, bool wait);

// The pid of a running atoll-vmm whose command line names `control_socket`
// (found through /proc), for processes that started but have not made their
// socket yet when atolld looks.
std::optional<pid_t> find_vmm_by_control_socket(const std::string& control_socket);

// What atoll-vmm said when it failed: in the log of its last start (after
// atolld's "---- atolld: starting" line), the first line that starts with
// "atoll-vmm: " (without that prefix), else the last line.
std::string vmm_error_from_log(const std::string& path);

std::string signal_text(int signal);  // "SIGKILL (9)"

}  // namespace atl::dom0
