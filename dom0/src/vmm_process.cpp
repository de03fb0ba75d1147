#include "vmm_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace atl::dom0 {

Outcome<SpawnedProcess> spawn_detached(const std::string& program, const std::vector<std::string>& arguments,
                                       const std::string& log_path) {
    const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
    if (log_fd < 0) return fault(ErrorKind::Failed, "log file " + log_path + ": " + std::strerror(errno));

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);

    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);

    pid_t pid = 0;
    const int rc = posix_spawn(&pid, program.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    close(log_fd);
    if (rc != 0) return fault(ErrorKind::Failed, "cannot run " + program + ": " + std::strerror(rc));
    const int pidfd = open_pidfd(pid);
    if (pidfd < 0) {
        // Cannot happen for our own unreaped child short of running out of descriptors.
        const int error = errno;
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return fault(ErrorKind::Failed, std::string("pidfd_open: ") + std::strerror(error));
    }
    return SpawnedProcess{pid, pidfd};
}

int open_pidfd(pid_t pid) {
    const long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return -1;
    fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // pidfd_open sets it; be explicit
    return static_cast<int>(fd);
}

bool pidfd_exited(int pidfd) {
    pollfd waiting{pidfd, POLLIN, 0};
    return poll(&waiting, 1, 0) > 0;
}

bool pidfd_signal(int pidfd, int signal) { return syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) == 0; }

std::optional<ExitStatus> reap(int pidfd, bool wait) {
    siginfo_t info{};
    for (;;) {
        const int rc = waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | (wait ? 0 : WNOHANG));
        if (rc == 0) break;
        if (errno == EINTR) continue;
        return std::nullopt;  // ECHILD: not our child
    }
    if (info.si_pid == 0) return std::nullopt;  // WNOHANG, still running
    ExitStatus status;
    status.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
    status.code = info.si_status;
    return status;
}

std::optional<pid_t> find_vmm_by_control_socket(const std::string& control_socket) {
    DIR* proc = opendir("/proc");
    if (!proc) return std::nullopt;
    std::optional<pid_t> found;
    while (dirent* entry = readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        std::ifstream file(std::string("/proc/") + entry->d_name + "/cmdline", std::ios::binary);
        std::stringstream content;
        content << file.rdbuf();
        const std::string cmdline = content.str();
        // Arguments are NUL-separated: look for "--control-socket\0PATH\0".
        const std::string needle = std::string("--control-socket") + '\0' + control_socket + '\0';
        if (cmdline.find(needle) != std::string::npos) {
            found = static_cast<pid_t>(pid);
            break;
        }
    }
    closedir(proc);
    return found;
}

std::string vmm_error_from_log(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return {};
    file.seekg(0, std::ios::end);
    const std::streamoff size = file.tellg();
    const std::streamoff start = size > 65536 ? size - 65536 : 0;
    file.seekg(start);
    std::string tail(static_cast<size_t>(size - start), '\0');
    file.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    const size_t header = tail.rfind("---- atolld: starting");
    if (header != std::string::npos) tail.erase(0, tail.find('\n', header) == std::string::npos ? tail.size() : tail.find('\n', header) + 1);
    std::string last;
    std::istringstream lines(tail);
    for (std::string line; std::getline(lines, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.rfind("atoll-vmm: ", 0) == 0) return line.substr(11);
        if (!line.empty()) last = line;
    }
    return last;
}

std::string signal_text(int signal) {
    const char* name = sigabbrev_np(signal);
    return (name ? std::string("SIG") + name : std::string("signal")) + " (" + std::to_string(signal) + ")";
}

}  // namespace atl::dom0
