// A stand-in for atoll-vmm's side of the display link
// (display/docs/display-protocol.md), for tests: connects, says hello, shares
// surfaces as sealed memfds of known pixels, sends damage and cursors, and
// reads what the server sends back (welcome, key, pointer, wheel, resize).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atl::display::testing {

using namespace std::chrono_literals;

// The test pattern: a pixel's XRGB8888 value depends on its position and a seed.
uint32_t pattern_pixel(uint32_t x, uint32_t y, uint32_t seed);

// A memfd holding one surface, mapped read-write here.
class SharedSurface {
public:
    // `seals`: what F_ADD_SEALS gets (0: none). The file is offset + stride * height bytes
    // unless `file_bytes` says otherwise.
    static std::unique_ptr<SharedSurface> create(uint32_t width, uint32_t height, uint32_t stride, uint64_t offset,
                                                 int seals, uint64_t file_bytes = 0);
    ~SharedSurface();
    void fill(uint32_t seed);                                   // the whole surface
    void fill_rect(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t seed);
    // Every pixel from `pixel(x, y)` (XRGB8888).
    void fill_with(const std::function<uint32_t(uint32_t, uint32_t)>& pixel);
    uint32_t pixel(uint32_t x, uint32_t y) const;
    int fd() const { return fd_; }
    uint32_t width, height, stride;
    uint64_t offset;

private:
    int fd_ = -1;
    uint8_t* map_ = nullptr;
    size_t bytes_ = 0;
};

class FakeVmm {
public:
    // Connects (retrying while the server starts) or returns null.
    static std::unique_ptr<FakeVmm> connect(const std::string& socket_path, std::chrono::milliseconds timeout = 5s);
    ~FakeVmm();

    bool send_raw(std::string_view bytes, const std::vector<int>& fds = {});
    bool send(const nlohmann::json& message, const std::vector<int>& fds = {});
    // hello, then waits for welcome.
    bool hello(const std::string& vm_name, uint32_t scanouts = 1);
    bool send_surface(const SharedSurface& surface, uint32_t scanout = 0);
    bool send_damage(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t scanout = 0);
    // `argb`: width*height pixels.
    bool send_cursor(int32_t x, int32_t y, bool visible, uint32_t width, uint32_t height, uint32_t hot_x,
                     uint32_t hot_y, const std::vector<uint32_t>& argb, uint32_t scanout = 0);

    // The next message from the server, or nothing on timeout or close.
    std::optional<nlohmann::json> receive(std::chrono::milliseconds timeout = 5s);
    // Skips messages until one of `type` matching `accept`.
    std::optional<nlohmann::json> wait_for(const std::string& type, std::chrono::milliseconds timeout = 5s,
                                           const std::function<bool(const nlohmann::json&)>& accept = {});
    // True once the server has closed the link (within `timeout`).
    bool closed_by_server(std::chrono::milliseconds timeout = 5s);

private:
    int fd_ = -1;
    std::string input_;
    bool eof_ = false;
};

}  // namespace atl::display::testing
