// Real parts for dom0's integration tests: a private dbus-daemon, atolld as a
// process, atollctl runs, tiny guests atoll-vmm boots on this host. Paths of
// the programs come from the build (compile definitions).
#pragma once

#include "../../unit/dom0/temp_dir.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace atl::dom0::testing {

inline const std::string kAtolld = ATOLLD_PATH;
inline const std::string kAtollctl = ATOLLCTL_PATH;
inline const std::string kVmm = ATOLL_VMM_PATH;
inline const std::string kTinyGuestDir = TINY_GUEST_DIR;
inline const std::string kDom0SourceDir = DOM0_SOURCE_DIR;

inline std::string tiny_guest(const std::string& behaviour) {
    return kTinyGuestDir + "/tiny-" + behaviour + ".bzImage";
}

// Skips the test when something it needs is missing (no KVM, no guest).
inline bool have_vmm_and_guests() {
    return access(kVmm.c_str(), X_OK) == 0 && access(tiny_guest("poweroff-on-button").c_str(), R_OK) == 0 &&
           access("/dev/kvm", R_OK | W_OK) == 0;
}
#define ATOLL_REQUIRE_VMM()                                                                              \
    do {                                                                                                 \
        if (!::atl::dom0::testing::have_vmm_and_guests())                                                \
            GTEST_SKIP() << "needs atoll-vmm, the tiny guests (tests/guests) and a usable /dev/kvm";    \
    } while (0)

// Polls `condition` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
}

inline bool process_alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

inline std::string read_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

// SIGKILLs every process whose command line mentions `text` (the VMMs a test
// started under its temporary directory), so that none outlives the test.
inline void kill_processes_mentioning(const std::string& text) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const std::string cmdline = read_file(entry.path().string() + "/cmdline");
        if (cmdline.find(text) != std::string::npos && std::stol(name) != getpid()) ::kill(std::stoi(name), SIGKILL);
    }
}

// A child process with its output in files.
class Process {
public:
    Process() = default;
    Process(const std::vector<std::string>& argv, const std::string& output_path, int stdout_fd = -1) {
        start(argv, output_path, stdout_fd);
    }
    ~Process() { kill_and_wait(); }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    void start(const std::vector<std::string>& argv, const std::string& output_path, int stdout_fd = -1) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
        else posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_addopen(&actions, 2, output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        std::vector<char*> args;
        for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        const int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) pid_ = 0;
        status_ = -1;
    }

    pid_t pid() const { return pid_; }
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        const pid_t done = waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            status_ = status;
            pid_ = 0;
            return false;
        }
        return true;
    }
    void signal(int number) {
        if (pid_ > 0) ::kill(pid_, number);
    }
    // Waits for the end; returns the wait status (-1 on timeout).
    int wait(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
        if (pid_ <= 0) return status_;
        eventually([&] { return !running(); }, timeout);
        return pid_ > 0 ? -1 : status_;
    }
    void kill_and_wait() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
        pid_ = 0;
    }

private:
    pid_t pid_ = 0;
    int status_ = -1;
};

struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs a command to its end and returns its exit code and output.
inline CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text = {}) {
    TempDir io;
    const std::string in = io.write("in", stdin_text), out = io / "out", err = io / "err";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    CommandResult result;
    if (posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ) == 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    posix_spawn_file_actions_destroy(&actions);
    result.out = read_file(out);
    result.err = read_file(err);
    return result;
}

// A dbus-daemon of our own, listening on a socket in `dir`.
class PrivateBus {
public:
    explicit PrivateBus(const std::string& dir, const std::string& extra_config = {}) {
        const std::string socket = dir + "/bus";
        config_ = dir + "/bus.conf";
        std::ofstream(config_) << R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=)" << socket << R"(</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
)" << extra_config << R"(
</busconfig>
)";
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0) return;
        daemon_.start({"/usr/bin/dbus-daemon", "--config-file=" + config_, "--nofork", "--print-address=1"},
                      dir + "/dbus-daemon.log", pipe_fds[1]);
        close(pipe_fds[1]);
        // The daemon prints its address once it listens.
        std::string line;
        char c;
        pollfd waiting{pipe_fds[0], POLLIN, 0};
        while (poll(&waiting, 1, 10000) > 0 && read(pipe_fds[0], &c, 1) == 1 && c != '\n') line += c;
        close(pipe_fds[0]);
        address_ = line;
    }

    const std::string& address() const { return address_; }
    bool ok() const { return !address_.empty(); }

private:
    std::string config_;
    Process daemon_;
    std::string address_;
};

// atolld serving a private bus, with its own database, runtime and storage directories.
class Atolld {
public:
    struct Paths {
        std::string database, runtime, storage, log;
    };

    static Paths paths_in(const TempDir& dir) {
        return {dir / "state/atoll.db", dir / "run", dir / "images", dir / "atolld.log"};
    }

    Atolld(const std::string& bus_address, Paths paths, std::vector<std::string> extra = {})
        : bus_address_(bus_address), paths_(std::move(paths)), extra_(std::move(extra)) {
        std::filesystem::create_directories(paths_.storage);
    }

    std::string vmm = kVmm;  // what atolld runs as atoll-vmm

    // Starts atolld and waits until it owns org.atoll.Atoll1.
    bool start() {
        std::vector<std::string> argv{kAtolld,         "--bus-address", bus_address_,   "--database",
                                      paths_.database, "--runtime-dir", paths_.runtime, "--storage-dir",
                                      paths_.storage,  "--vmm",         vmm};
        argv.insert(argv.end(), extra_.begin(), extra_.end());
        process_.start(argv, paths_.log);
        // Up when the name's owner is this process (not another atolld).
        const std::string owned_by_us = "u " + std::to_string(process_.pid()) + "\n";
        return eventually([&] {
            if (!process_.running()) return true;
            return run_command({"/usr/bin/busctl", "--address=" + bus_address_, "call", "org.freedesktop.DBus",
                                "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s",
                                "org.atoll.Atoll1"})
                       .out == owned_by_us;
        }) && process_.running();
    }

    void kill9() { process_.kill_and_wait(); }
    int stop() {
        process_.signal(SIGTERM);
        return process_.wait();
    }
    bool running() { return process_.running(); }
    pid_t pid() const { return process_.pid(); }
    const Paths& paths() const { return paths_; }
    std::string log() const { return read_file(paths_.log); }

    // atollctl against this atolld.
    CommandResult ctl(std::vector<std::string> args, const std::string& stdin_text = {}) const {
        args.insert(args.begin(), {kAtollctl, "--bus-address", bus_address_});
        return run_command(args, stdin_text);
    }

private:
    std::string bus_address_;
    Paths paths_;
    std::vector<std::string> extra_;
    Process process_;
};

// A VM definition in the JSON form DefineVM takes, booting a tiny guest copied
// into `storage`.
inline std::string tiny_vm_config(const std::string& storage, const std::string& name,
                                  const std::string& behaviour = "poweroff-on-button", const std::string& extra = {}) {
    const std::string kernel = storage + "/tiny-" + behaviour + ".bzImage";
    if (access(kernel.c_str(), R_OK) != 0) {
        std::error_code error;
        std::filesystem::copy_file(tiny_guest(behaviour), kernel, error);
    }
    return R"({"name": ")" + name + R"(", "vcpus": 1, "memory_mib": 32, "boot": {"kernel": ")" + kernel +
           R"("}, "nets": [], "entropy": false)" + extra + "}";
}

}  // namespace atl::dom0::testing
