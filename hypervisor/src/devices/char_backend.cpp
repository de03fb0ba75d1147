#include "devices/char_backend.h"

#include "vmm/event_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace atl::vmm {

namespace {

constexpr size_t kReadChunkBytes = 4096;
// Per readiness event, so one chatty client cannot starve the rest of the loop.
constexpr size_t kMaxReadPerEventBytes = 64 << 10;

// Holds the input handler; backends call it on the loop thread while devices
// may replace it from elsewhere during setup and teardown.
class InputHandlerSlot {
public:
    void set(CharBackend::InputHandler handler) {
        std::lock_guard lock(mutex_);
        handler_ = std::move(handler);
    }
    void deliver(std::span<const uint8_t> bytes) {
        CharBackend::InputHandler handler;
        {
            std::lock_guard lock(mutex_);
            handler = handler_;
        }
        if (handler && !bytes.empty()) handler(bytes);
    }

private:
    std::mutex mutex_;
    CharBackend::InputHandler handler_;
};

// ---------------------------------------------------------------------------
// The terminal on stdin. Raw mode is process-wide state, so it lives here, once,
// and is undone at exit even when the backend is never destroyed.

std::mutex terminal_mutex;
bool terminal_modified = false;
termios saved_terminal{};

void restore_terminal() {
    std::lock_guard lock(terminal_mutex);
    if (!terminal_modified) return;
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
    terminal_modified = false;
}

// Raw input (no line editing, no echo: the guest echoes) but the host keeps ISIG,
// so Ctrl-C still stops a VMM run by hand, and OPOST, so output is unchanged.
// True when this call changed the terminal (and so owns restoring it).
bool make_terminal_raw() {
    std::lock_guard lock(terminal_mutex);
    if (terminal_modified || tcgetattr(STDIN_FILENO, &saved_terminal) != 0) return false;
    termios raw = saved_terminal;
    raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    raw.c_cflag &= ~(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) return false;
    terminal_modified = true;
    static bool registered = false;
    if (!registered) {
        registered = true;
        atexit(restore_terminal);
    }
    return true;
}

class StdioCharBackend : public CharBackend {
public:
    explicit StdioCharBackend(EventLoop& loop) : loop_(loop) {}

    ~StdioCharBackend() override {
        if (watching_stdin_) loop_.unwatch(STDIN_FILENO);
        if (output_fd_ >= 0 && output_fd_ != STDOUT_FILENO) close(output_fd_);
        if (owns_terminal_) restore_terminal();
    }

    void start() {
        open_output();
        struct stat info {};
        if (fstat(STDIN_FILENO, &info) != 0) return;  // no stdin: output only
        if (isatty(STDIN_FILENO)) owns_terminal_ = make_terminal_raw();
        // epoll refuses regular files (and /dev/null); such a stdin gives no input.
        watching_stdin_ = loop_.watch(STDIN_FILENO, EPOLLIN, [this](uint32_t) { on_stdin(); }).ok();
    }

    void write(std::span<const uint8_t> bytes) override {
        if (output_fd_ < 0) return;
        while (!bytes.empty()) {
            ssize_t done;
            if (output_is_socket_) {
                done = send(output_fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            } else if (output_needs_poll_) {
                // A blocking descriptor: POLLOUT promises room for PIPE_BUF bytes.
                pollfd ready{output_fd_, POLLOUT, 0};
                if (poll(&ready, 1, 0) != 1 || !(ready.revents & POLLOUT)) return;
                done = ::write(output_fd_, bytes.data(), std::min<size_t>(bytes.size(), PIPE_BUF));
            } else {
                done = ::write(output_fd_, bytes.data(), bytes.size());
            }
            if (done < 0 && errno == EINTR) continue;
            if (done <= 0) return;  // EAGAIN (slow reader) or gone: drop the rest
            bytes = bytes.subspan(static_cast<size_t>(done));
        }
    }

    void set_input_handler(InputHandler handler) override { input_.set(std::move(handler)); }

private:
    // Output must never block. O_NONBLOCK on fd 1 itself would change the open
    // file description the shell shares with us, so a terminal or pipe is
    // reopened through /proc to get a description of our own.
    void open_output() {
        struct stat info {};
        if (fstat(STDOUT_FILENO, &info) != 0) return;
        if (S_ISREG(info.st_mode) || S_ISBLK(info.st_mode)) {
            output_fd_ = STDOUT_FILENO;  // files do not stall
        } else if (S_ISSOCK(info.st_mode)) {
            output_fd_ = STDOUT_FILENO;
            output_is_socket_ = true;  // MSG_DONTWAIT per call
        } else {
            output_fd_ = ::open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (output_fd_ < 0) {  // no /proc, or a pipe nobody reads yet
                output_fd_ = STDOUT_FILENO;
                output_needs_poll_ = true;
            }
        }
    }

    void on_stdin() {
        // One read per event: epoll said it is readable, so it does not block,
        // and stdin's open file description is left as the shell made it.
        uint8_t buffer[kReadChunkBytes];
        const ssize_t got = read(STDIN_FILENO, buffer, sizeof buffer);
        if (got > 0) {
            input_.deliver(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            // End of input (a closed pipe, a vanished terminal): output carries on.
            loop_.unwatch(STDIN_FILENO);
            watching_stdin_ = false;
        }
    }

    EventLoop& loop_;
    InputHandlerSlot input_;
    int output_fd_ = -1;
    bool output_is_socket_ = false;
    bool output_needs_poll_ = false;
    bool watching_stdin_ = false;
    bool owns_terminal_ = false;
};

// ---------------------------------------------------------------------------

class SocketCharBackend : public CharBackend {
public:
    SocketCharBackend(EventLoop& loop, std::string path, int listen_fd)
        : loop_(loop), path_(std::move(path)), listen_fd_(listen_fd) {}

    ~SocketCharBackend() override {
        drop_client();
        if (listening_) loop_.unwatch(listen_fd_);
        close(listen_fd_);
        unlink(path_.c_str());
    }

    Result<void> start() {
        auto watched = loop_.watch(listen_fd_, EPOLLIN, [this](uint32_t) { accept_client(); });
        if (!watched) return make_error("console socket " + path_ + ": " + watched.error().message);
        listening_ = true;
        return {};
    }

    void write(std::span<const uint8_t> bytes) override {
        std::lock_guard lock(client_mutex_);
        while (client_fd_ >= 0 && !bytes.empty()) {
            const ssize_t done = send(client_fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (done < 0 && errno == EINTR) continue;
            // EAGAIN: the client reads slowly, drop. Other errors: the loop sees
            // the hang-up on the read side and closes the connection there.
            if (done <= 0) return;
            bytes = bytes.subspan(static_cast<size_t>(done));
        }
    }

    void set_input_handler(InputHandler handler) override { input_.set(std::move(handler)); }

private:
    void accept_client() {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (!loop_.watch(fd, EPOLLIN | EPOLLRDHUP, [this](uint32_t) { on_client(); })) {
            close(fd);
            return;
        }
        {
            std::lock_guard lock(client_mutex_);
            client_fd_ = fd;
        }
        // One client at a time: later ones wait in the backlog until this one leaves.
        loop_.unwatch(listen_fd_);
        listening_ = false;
    }

    void on_client() {
        // recv reports everything: data first, then 0 for a close or an error for
        // a reset, so the epoll flags need no separate handling.
        uint8_t buffer[kReadChunkBytes];
        for (size_t total = 0; total < kMaxReadPerEventBytes;) {
            const ssize_t got = recv(client_fd_, buffer, sizeof buffer, MSG_DONTWAIT);
            if (got > 0) {
                input_.deliver(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
                total += static_cast<size_t>(got);
            } else if (got < 0 && errno == EINTR) {
                continue;
            } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;  // drained
            } else {
                drop_client();
                if (!listening_)
                    listening_ = loop_.watch(listen_fd_, EPOLLIN, [this](uint32_t) { accept_client(); }).ok();
                return;
            }
        }
        // Budget spent with data left: level-triggered epoll calls again.
    }

    void drop_client() {
        std::lock_guard lock(client_mutex_);
        if (client_fd_ < 0) return;
        loop_.unwatch(client_fd_);
        close(client_fd_);
        client_fd_ = -1;
    }

    EventLoop& loop_;
    std::string path_;
    int listen_fd_;
    bool listening_ = false;
    InputHandlerSlot input_;
    std::mutex client_mutex_;  // write() may come from another thread than the loop
    int client_fd_ = -1;
};

class NullCharBackend : public CharBackend {
public:
    void write(std::span<const uint8_t>) override {}
    void set_input_handler(InputHandler) override {}
};

class BootView : public CharBackend {
public:
    BootView(std::shared_ptr<CharBackend> console, EventLoop& loop)
        : console_(std::move(console)), gate_(std::make_shared<Gate>()) {
        gate_->loop = &loop;
    }

    ~BootView() override {
        console_->set_input_handler(nullptr);
        // The console's thread may be inside the old handler right now; once the
        // gate is shut it can no longer reach this boot's loop.
        std::lock_guard lock(gate_->mutex);
        gate_->loop = nullptr;
    }

    void write(std::span<const uint8_t> bytes) override { console_->write(bytes); }

    void set_input_handler(InputHandler handler) override {
        if (!handler) {
            console_->set_input_handler(nullptr);
            return;
        }
        auto shared_handler = std::make_shared<InputHandler>(std::move(handler));
        console_->set_input_handler([gate = gate_, shared_handler](std::span<const uint8_t> bytes) {
            std::lock_guard lock(gate->mutex);
            if (!gate->loop) return;
            gate->loop->post([shared_handler, copy = std::vector<uint8_t>(bytes.begin(), bytes.end())] {
                (*shared_handler)(copy);
            });
        });
    }

private:
    struct Gate {
        std::mutex mutex;
        EventLoop* loop = nullptr;
    };
    std::shared_ptr<CharBackend> console_;
    std::shared_ptr<Gate> gate_;
};

std::string socket_error(const std::string& path, const std::string& what, int error) {
    return "console socket " + path + ": " + what + ": " + strerror(error);
}

}  // namespace

Result<std::shared_ptr<CharBackend>> make_stdio_char_backend(EventLoop& loop) {
    auto backend = std::make_shared<StdioCharBackend>(loop);
    backend->start();
    return std::shared_ptr<CharBackend>(std::move(backend));
}

Result<std::shared_ptr<CharBackend>> make_socket_char_backend(EventLoop& loop, const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty()) return make_error("console socket path is empty");
    if (path.size() >= sizeof address.sun_path)
        return make_error("console socket " + path + ": path longer than " +
                          std::to_string(sizeof address.sun_path - 1) + " bytes");
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);

    struct stat info {};
    if (lstat(path.c_str(), &info) == 0) {
        if (!S_ISSOCK(info.st_mode)) return make_error("console socket " + path + ": exists and is not a socket");
        // A socket file outlives the process that made it. If nobody answers it is
        // stale and can go; if someone does, the path is taken.
        const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) return make_error(socket_error(path, "socket", errno));
        const bool answered = connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
        close(probe);
        if (answered) return make_error("console socket " + path + ": already in use by another process");
        if (unlink(path.c_str()) != 0 && errno != ENOENT)
            return make_error(socket_error(path, "cannot remove the stale socket", errno));
    }

    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(socket_error(path, "socket", errno));
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        close(fd);
        return make_error(socket_error(path, "cannot bind", error));
    }
    if (listen(fd, 4) != 0) {
        const int error = errno;
        close(fd);
        unlink(path.c_str());
        return make_error(socket_error(path, "cannot listen", error));
    }
    // From here the backend owns the fd and removes the path when destroyed.
    auto backend = std::make_shared<SocketCharBackend>(loop, path, fd);
    if (auto started = backend->start(); !started) return started.error();
    return std::shared_ptr<CharBackend>(std::move(backend));
}

std::shared_ptr<CharBackend> make_null_char_backend() { return std::make_shared<NullCharBackend>(); }

std::shared_ptr<CharBackend> make_boot_view(std::shared_ptr<CharBackend> console, EventLoop& loop) {
    if (!console) console = make_null_char_backend();
    return std::make_shared<BootView>(std::move(console), loop);
}

}  // namespace atl::vmm
