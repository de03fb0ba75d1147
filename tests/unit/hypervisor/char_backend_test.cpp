#include "devices/char_backend.h"
#include "vmm/event_loop.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

namespace atl::vmm {
namespace {

using namespace std::chrono_literals;

std::span<const uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string temp_path(const std::string& name) {
    const char* base = getenv("TMPDIR");
    return std::string(base && *base ? base : "/tmp") + "/atoll-" + name + "-" + std::to_string(getpid());
}

int connect_to(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Runs the loop until `done` or about two seconds pass.
template <class Predicate>
bool run_until(EventLoop& loop, Predicate done) {
    for (int i = 0; i < 200 && !done(); ++i) loop.run_once(10ms);
    return done();
}

// What the client can read now, waiting (without sleeping) up to two seconds for the first byte.
std::string receive_available(int fd) {
    std::string text;
    char buffer[4096];
    pollfd ready{fd, POLLIN, 0};
    if (poll(&ready, 1, 2000) != 1) return text;
    for (ssize_t got; (got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;) text.append(buffer, got);
    return text;
}

TEST(NullCharBackend, SwallowsEverything) {
    auto backend = make_null_char_backend();
    bool called = false;
    backend->set_input_handler([&](std::span<const uint8_t>) { called = true; });
    backend->write(bytes_of("ignored"));
    EXPECT_FALSE(called);
}

// ---- unix socket -------------------------------------------------------------

class SocketCharBackendTest : public ::testing::Test {
protected:
    void SetUp() override { unlink(path_.c_str()); }
    void TearDown() override { unlink(path_.c_str()); }

    EventLoop loop_;
    std::string path_ = temp_path("console.sock");
};

TEST_F(SocketCharBackendTest, ExchangesBytesWithOneClient) {
    auto made = make_socket_char_backend(loop_, path_);
    ASSERT_TRUE(made.ok()) << made.error().message;
    auto backend = *made;
    std::string input;
    backend->set_input_handler([&](std::span<const uint8_t> bytes) { input.append(bytes.begin(), bytes.end()); });

    backend->write(bytes_of("before anyone listens"));  // dropped, no error

    const int client = connect_to(path_);
    ASSERT_GE(client, 0);
    ASSERT_EQ(send(client, "ls -l\n", 6, 0), 6);
    ASSERT_TRUE(run_until(loop_, [&] { return input == "ls -l\n"; })) << input;

    backend->write(bytes_of("total 0\n"));
    EXPECT_EQ(receive_available(client), "total 0\n");
    close(client);
}

TEST_F(SocketCharBackendTest, ServesTheNextClientAfterTheFirstLeaves) {
    auto made = make_socket_char_backend(loop_, path_);
    ASSERT_TRUE(made.ok());
    auto backend = *made;
    std::string input;
    backend->set_input_handler([&](std::span<const uint8_t> bytes) { input.append(bytes.begin(), bytes.end()); });

    const int first = connect_to(path_);
    ASSERT_GE(first, 0);
    send(first, "1", 1, 0);
    ASSERT_TRUE(run_until(loop_, [&] { return input == "1"; }));

    // The second waits in the backlog: its bytes do not reach the guest yet.
    const int second = connect_to(path_);
    ASSERT_GE(second, 0);
    send(second, "2", 1, 0);
    for (int i = 0; i < 5; ++i) loop_.run_once(0ms);  // bytes are already there if it were accepted
    EXPECT_EQ(input, "1");
    backend->write(bytes_of("to first"));
    EXPECT_EQ(receive_available(first), "to first");

    close(first);
    ASSERT_TRUE(run_until(loop_, [&] { return input == "12"; })) << input;
    backend->write(bytes_of("to second"));
    EXPECT_EQ(receive_available(second), "to second");
    close(second);
}

TEST_F(SocketCharBackendTest, RemovesItsSocketWhenDestroyed) {
    {
        auto made = make_socket_char_backend(loop_, path_);
        ASSERT_TRUE(made.ok());
        struct stat info {};
        ASSERT_EQ(stat(path_.c_str(), &info), 0);
        EXPECT_TRUE(S_ISSOCK(info.st_mode));
    }
    EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

TEST_F(SocketCharBackendTest, ReplacesAStaleSocket) {
    // A socket file whose listener is gone, as a crashed VMM leaves behind.
    const int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    close(stale);

    auto made = make_socket_char_backend(loop_, path_);
    ASSERT_TRUE(made.ok()) << made.error().message;
    const int client = connect_to(path_);
    EXPECT_GE(client, 0);
    close(client);
}

TEST_F(SocketCharBackendTest, RefusesAPathInUse) {
    auto first = make_socket_char_backend(loop_, path_);
    ASSERT_TRUE(first.ok());
    auto second = make_socket_char_backend(loop_, path_);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().message, "console socket " + path_ + ": already in use by another process");
}

TEST_F(SocketCharBackendTest, RefusesBadPaths) {
    const std::string regular = temp_path("not-a-socket");
    close(open(regular.c_str(), O_CREAT | O_WRONLY, 0600));
    auto made = make_socket_char_backend(loop_, regular);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().message, "console socket " + regular + ": exists and is not a socket");
    unlink(regular.c_str());

    made = make_socket_char_backend(loop_, "/nonexistent-dir/console.sock");
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().message, "console socket /nonexistent-dir/console.sock: cannot bind: No such file or directory");

    made = make_socket_char_backend(loop_, "/tmp/" + std::string(200, 'x'));
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.error().message.find("path longer than 107 bytes"), std::string::npos);

    made = make_socket_char_backend(loop_, "");
    EXPECT_FALSE(made.ok());
}

// ---- stdio -----------------------------------------------------------------

// Points fd 0 and 1 at pipes for one test and puts them back afterwards.
// Assertions run after restore(), since GoogleTest prints to fd 1.
class StdioRedirect {
public:
    StdioRedirect() {
        saved_stdin_ = dup(STDIN_FILENO);
        saved_stdout_ = dup(STDOUT_FILENO);
        fflush(stdout);
        if (pipe(stdin_pipe_) != 0 || pipe(stdout_pipe_) != 0) return;
        dup2(stdin_pipe_[0], STDIN_FILENO);
        dup2(stdout_pipe_[1], STDOUT_FILENO);
        close(stdin_pipe_[0]);
        close(stdout_pipe_[1]);
        fcntl(stdout_pipe_[0], F_SETFL, O_NONBLOCK);
    }
    ~StdioRedirect() { restore(); }
    void restore() {
        if (saved_stdin_ < 0) return;
        dup2(saved_stdin_, STDIN_FILENO);
        dup2(saved_stdout_, STDOUT_FILENO);
        close(saved_stdin_);
        close(saved_stdout_);
        saved_stdin_ = saved_stdout_ = -1;
        if (stdin_pipe_[1] >= 0) close(stdin_pipe_[1]);
        close(stdout_pipe_[0]);
    }
    void type(const std::string& text) { [[maybe_unused]] auto n = write(stdin_pipe_[1], text.data(), text.size()); }
    void close_input() {
        close(stdin_pipe_[1]);
        stdin_pipe_[1] = -1;
    }
    std::string output() {
        std::string text;
        char buffer[65536];
        for (ssize_t got; (got = read(stdout_pipe_[0], buffer, sizeof buffer)) > 0;) text.append(buffer, got);
        return text;
    }

private:
    int saved_stdin_ = -1;
    int saved_stdout_ = -1;
    int stdin_pipe_[2] = {-1, -1};
    int stdout_pipe_[2] = {-1, -1};
};

TEST(StdioCharBackend, WritesStdoutAndReadsStdin) {
    EventLoop loop;
    StdioRedirect redirect;
    std::string input;
    bool created = false;
    std::string output;
    bool got_input = false;
    {
        auto made = make_stdio_char_backend(loop);
        created = made.ok();
        if (created) {
            auto backend = *made;
            backend->set_input_handler(
                [&](std::span<const uint8_t> bytes) { input.append(bytes.begin(), bytes.end()); });
            backend->write(bytes_of("guest says hi\n"));
            output = redirect.output();
            redirect.type("host types");
            got_input = run_until(loop, [&] { return input == "host types"; });
            redirect.close_input();
            for (int i = 0; i < 3; ++i) loop.run_once(0ms);  // EOF: stops watching, no spin, no crash
            backend->write(bytes_of("still writes"));
            output += redirect.output();
        }
    }
    redirect.restore();
    ASSERT_TRUE(created);
    EXPECT_EQ(output, "guest says hi\nstill writes");
    EXPECT_TRUE(got_input) << input;
}

TEST(StdioCharBackend, NeverBlocksOnASlowReader) {
    EventLoop loop;
    StdioRedirect redirect;
    std::chrono::steady_clock::duration took{};
    std::string output;
    {
        auto made = make_stdio_char_backend(loop);
        if (made.ok()) {
            const std::string big(1 << 20, 'x');  // far more than a pipe holds
            const auto start = std::chrono::steady_clock::now();
            (*made)->write(bytes_of(big));
            (*made)->write(bytes_of(big));
            took = std::chrono::steady_clock::now() - start;
            output = redirect.output();
        }
    }
    // fd 1 itself must not have been made non-blocking (the shell shares it).
    const int flags = fcntl(STDOUT_FILENO, F_GETFL);
    redirect.restore();
    EXPECT_LT(took, std::chrono::seconds(1));
    EXPECT_GT(output.size(), 0u);
    EXPECT_LT(output.size(), 2u << 20);  // the excess was dropped
    EXPECT_FALSE(flags & O_NONBLOCK);
}

TEST(StdioCharBackend, PutsATerminalInRawModeAndRestoresIt) {
    const int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0) GTEST_SKIP() << "no pseudo-terminals here";
    ASSERT_EQ(grantpt(master), 0);
    ASSERT_EQ(unlockpt(master), 0);
    const int terminal = open(ptsname(master), O_RDWR | O_NOCTTY);
    ASSERT_GE(terminal, 0);
    termios before{};
    tcgetattr(terminal, &before);
    ASSERT_TRUE(before.c_lflag & ICANON);

    const int saved_stdin = dup(STDIN_FILENO);
    dup2(terminal, STDIN_FILENO);
    termios during{};
    termios after_second{};
    {
        EventLoop loop;
        auto made = make_stdio_char_backend(loop);
        ASSERT_TRUE(made.ok());
        tcgetattr(terminal, &during);
        // A second stdio backend neither takes nor gives back the terminal.
        {
            auto second = make_stdio_char_backend(loop);
            ASSERT_TRUE(second.ok());
        }
        tcgetattr(terminal, &after_second);
    }
    termios after{};
    tcgetattr(terminal, &after);
    dup2(saved_stdin, STDIN_FILENO);
    close(saved_stdin);
    close(terminal);
    close(master);

    EXPECT_FALSE(during.c_lflag & ICANON);
    EXPECT_FALSE(during.c_lflag & ECHO);
    EXPECT_TRUE(during.c_lflag & ISIG);  // Ctrl-C still reaches the VMM
    EXPECT_FALSE(after_second.c_lflag & ICANON);
    EXPECT_TRUE(after.c_lflag & ICANON);
    EXPECT_TRUE(after.c_lflag & ECHO);
}

}  // namespace
}  // namespace atl::vmm
