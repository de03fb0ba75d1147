// What the display integration tests start: the real atoll-display (and a
// private dbus-daemon), and a real VNC client (libvncclient).
#pragma once

#include <rfb/rfbclient.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace atl::display::testing {

using namespace std::chrono_literals;

class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A child process with its stderr in a log file; SIGTERM (then SIGKILL) on destruction.
class Process {
public:
    static std::unique_ptr<Process> start(const std::vector<std::string>& argv, const std::string& log_path,
                                          const std::map<std::string, std::string>& environment = {});
    ~Process();
    bool running();
    // Sends SIGTERM and waits; the exit status (or -1 on timeout).
    int stop(std::chrono::milliseconds timeout = 10s);
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// A TCP port nothing listens on right now (for a VNC port base).
uint16_t free_tcp_port();
// Whether something accepts connections on 127.0.0.1:port.
bool tcp_port_open(uint16_t port);
std::string read_file(const std::string& path);

// A libvncclient connection, driven from the test's thread.
class VncClient {
public:
    struct Options {
        std::string password;          // answered when the server asks
        std::string tls_ca_file;       // VeNCrypt X.509: trust this CA
        bool remote_cursor = true;     // ask for cursor shapes
        std::string encodings = "zrle copyrect hextile raw";  // lossless only
        int compress_level = 3;        // libvncclient's default; sent with Tight, ZRLE, Zlib
    };
    static std::unique_ptr<VncClient> connect(uint16_t port, const Options& options);
    static std::unique_ptr<VncClient> connect(uint16_t port) { return connect(port, Options{}); }
    ~VncClient();

    // Handles server messages until `done` holds (checked after each) or the timeout.
    bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s);
    // Pumps until every pixel equals `expected(x, y)` (XRGB), at the given size.
    bool wait_for_pixels(uint32_t width, uint32_t height, const std::function<uint32_t(uint32_t, uint32_t)>& expected,
                         std::chrono::milliseconds timeout = 10s);

    int width() const { return client_->width; }
    int height() const { return client_->height; }
    uint32_t pixel(int x, int y) const;  // XRGB
    rfbClient* raw() { return client_; }

    struct CursorShape {
        int hot_x = 0, hot_y = 0, width = 0, height = 0;
        std::vector<uint32_t> pixels;  // XRGB
        std::vector<uint8_t> mask;     // 1 per pixel
    };
    std::optional<CursorShape> cursor;
    int updates = 0;

private:
    uint32_t to_xrgb(uint32_t raw) const;
    rfbClient* client_ = nullptr;
    Options options_;
};

}  // namespace atl::display::testing
