#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace atl::display::testing {

TempDir::TempDir() {
    char pattern[] = "/tmp/atoll-display-it-XXXXXX";
    if (mkdtemp(pattern)) path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
}

std::unique_ptr<Process> Process::start(const std::vector<std::string>& argv, const std::string& log_path,
                                        const std::map<std::string, std::string>& environment) {
    const pid_t pid = fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
        const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) {
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
        }
        // The test may have blocked signals in its threads; the child starts clean.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
        std::vector<char*> arguments;
        for (const auto& argument : argv) arguments.push_back(const_cast<char*>(argument.c_str()));
        arguments.push_back(nullptr);
        execv(arguments[0], arguments.data());
        _exit(127);
    }
    auto process = std::unique_ptr<Process>(new Process());
    process->pid_ = pid;
    return process;
}

Process::~Process() {
    if (stop() == -1 && !reaped_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
    }
}

bool Process::running() {
    if (reaped_) return false;
    if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return !reaped_;
}

int Process::stop(std::chrono::milliseconds timeout) {
    if (!reaped_) {
        kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (running()) {
            if (std::chrono::steady_clock::now() > deadline) return -1;
            std::this_thread::sleep_for(10ms);
        }
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

uint16_t free_tcp_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

bool tcp_port_open(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool open = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    return open;
}

std::string read_file(const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

namespace {

int options_tag;  // rfbClientSetClientData tag: the VncClient::Options
int owner_tag;    // the VncClient

void quiet_log(const char*, ...) {}

void verbose_log(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "vnc client: ");
    vfprintf(stderr, format, arguments);
    va_end(arguments);
}

char* give_password(rfbClient* client) {
    auto* options = static_cast<VncClient::Options*>(rfbClientGetClientData(client, &options_tag));
    return strdup(options->password.c_str());
}

rfbCredential* give_credential(rfbClient* client, int type) {
    auto* options = static_cast<VncClient::Options*>(rfbClientGetClientData(client, &options_tag));
    if (type != rfbCredentialTypeX509 || options->tls_ca_file.empty()) return nullptr;
    auto* credential = static_cast<rfbCredential*>(calloc(1, sizeof(rfbCredential)));
    credential->x509Credential.x509CACertFile = strdup(options->tls_ca_file.c_str());
    return credential;
}

void got_update(rfbClient* client, int, int, int, int) {
    static_cast<VncClient*>(rfbClientGetClientData(client, &owner_tag))->updates++;
}

}  // namespace

void got_cursor_shape(rfbClient* client, int xhot, int yhot, int width, int height, int bytes_per_pixel);

std::unique_ptr<VncClient> VncClient::connect(uint16_t port, const Options& options) {
    rfbClientLog = getenv("ATOLL_TEST_VNC_LOG") ? verbose_log : quiet_log;
    rfbClientErr = rfbClientLog;
    auto client = std::unique_ptr<VncClient>(new VncClient());
    client->options_ = options;
    rfbClient* raw = rfbGetClient(8, 3, 4);
    free(raw->serverHost);
    raw->serverHost = strdup("127.0.0.1");
    raw->serverPort = port;
    raw->appData.encodingsString = client->options_.encodings.c_str();
    raw->appData.enableJPEG = FALSE;
    raw->appData.compressLevel = options.compress_level;
    raw->appData.useRemoteCursor = options.remote_cursor ? TRUE : FALSE;
    raw->canHandleNewFBSize = TRUE;
    raw->GetPassword = give_password;
    raw->GetCredential = give_credential;
    raw->GotFrameBufferUpdate = got_update;
    raw->GotCursorShape = got_cursor_shape;
    rfbClientSetClientData(raw, &options_tag, &client->options_);
    rfbClientSetClientData(raw, &owner_tag, client.get());
    // rfbInitClient frees the client itself when it fails.
    if (!rfbInitClient(raw, nullptr, nullptr)) return nullptr;
    client->client_ = raw;
    return client;
}

void got_cursor_shape(rfbClient* client, int xhot, int yhot, int width, int height, int bytes_per_pixel) {
    auto* owner = static_cast<VncClient*>(rfbClientGetClientData(client, &owner_tag));
    VncClient::CursorShape shape;
    shape.hot_x = xhot;
    shape.hot_y = yhot;
    shape.width = width;
    shape.height = height;
    for (int i = 0; i < width * height; ++i) {
        uint32_t value = 0;
        memcpy(&value, client->rcSource + i * bytes_per_pixel, static_cast<size_t>(bytes_per_pixel));
        const auto& format = client->format;
        const uint32_t r = (value >> format.redShift) & format.redMax;
        const uint32_t g = (value >> format.greenShift) & format.greenMax;
        const uint32_t b = (value >> format.blueShift) & format.blueMax;
        shape.pixels.push_back(r << 16 | g << 8 | b);
        shape.mask.push_back(client->rcMask[i]);
    }
    owner->cursor = shape;
}

VncClient::~VncClient() {
    if (!client_) return;
    free(client_->frameBuffer);  // rfbClientCleanup leaves it
    rfbClientCleanup(client_);
}

bool VncClient::pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        const int ready = WaitForMessage(client_, 50000);
        if (ready < 0) return false;
        if (ready > 0 && !HandleRFBServerMessage(client_)) return false;
    }
    return true;
}

uint32_t VncClient::to_xrgb(uint32_t value) const {
    const auto& format = client_->format;
    const uint32_t r = (value >> format.redShift) & format.redMax;
    const uint32_t g = (value >> format.greenShift) & format.greenMax;
    const uint32_t b = (value >> format.blueShift) & format.blueMax;
    return r << 16 | g << 8 | b;
}

uint32_t VncClient::pixel(int x, int y) const {
    uint32_t value;
    memcpy(&value, client_->frameBuffer + (static_cast<size_t>(y) * client_->width + x) * 4, 4);
    return to_xrgb(value);
}

bool VncClient::wait_for_pixels(uint32_t width, uint32_t height,
                                const std::function<uint32_t(uint32_t, uint32_t)>& expected,
                                std::chrono::milliseconds timeout) {
    auto matches = [&] {
        if (client_->width != static_cast<int>(width) || client_->height != static_cast<int>(height)) return false;
        for (uint32_t y = 0; y < height; ++y)
            for (uint32_t x = 0; x < width; ++x)
                if (pixel(static_cast<int>(x), static_cast<int>(y)) != expected(x, y)) return false;
        return true;
    };
    // Updates arrive as the client asks for them: keep asking.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!matches()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        const int before = updates;
        if (!pump_until([&] { return updates != before; }, 200ms)) {
            if (std::chrono::steady_clock::now() > deadline) return false;
        }
    }
    return true;
}

}  // namespace atl::display::testing
