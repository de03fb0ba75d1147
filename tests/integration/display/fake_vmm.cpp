#include "fake_vmm.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace atl::display::testing {

using nlohmann::json;

namespace {

std::string framed(std::string_view body) {
    std::string bytes(4, '\0');
    const auto size = static_cast<uint32_t>(body.size());
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>(size >> (8 * i));
    bytes.append(body);
    return bytes;
}

std::string base64(const std::vector<uint8_t>& bytes) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string text;
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t left = bytes.size() - i;
        const uint32_t group = uint32_t{bytes[i]} << 16 | (left > 1 ? uint32_t{bytes[i + 1]} << 8 : 0) |
                               (left > 2 ? uint32_t{bytes[i + 2]} : 0);
        text += kAlphabet[group >> 18 & 63];
        text += kAlphabet[group >> 12 & 63];
        text += left > 1 ? kAlphabet[group >> 6 & 63] : '=';
        text += left > 2 ? kAlphabet[group & 63] : '=';
    }
    return text;
}

}  // namespace

uint32_t pattern_pixel(uint32_t x, uint32_t y, uint32_t seed) {
    const uint32_t r = (x * 3 + seed * 31) & 0xff;
    const uint32_t g = (y * 5 + seed * 17) & 0xff;
    const uint32_t b = ((x ^ y) + seed * 7) & 0xff;
    return r << 16 | g << 8 | b;
}

std::unique_ptr<SharedSurface> SharedSurface::create(uint32_t width, uint32_t height, uint32_t stride,
                                                     uint64_t offset, int seals, uint64_t file_bytes) {
    auto surface = std::unique_ptr<SharedSurface>(new SharedSurface());
    surface->width = width;
    surface->height = height;
    surface->stride = stride;
    surface->offset = offset;
    surface->fd_ = memfd_create("fake-vmm-surface", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (surface->fd_ < 0) return nullptr;
    surface->bytes_ = file_bytes ? file_bytes : offset + uint64_t{stride} * height;
    if (ftruncate(surface->fd_, static_cast<off_t>(surface->bytes_)) != 0) return nullptr;
    void* map = mmap(nullptr, surface->bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, surface->fd_, 0);
    if (map == MAP_FAILED) return nullptr;
    surface->map_ = static_cast<uint8_t*>(map);
    if (seals && fcntl(surface->fd_, F_ADD_SEALS, seals) != 0) return nullptr;
    return surface;
}

SharedSurface::~SharedSurface() {
    if (map_) munmap(map_, bytes_);
    if (fd_ >= 0) close(fd_);
}

void SharedSurface::fill(uint32_t seed) { fill_rect(0, 0, width, height, seed); }

void SharedSurface::fill_rect(uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t seed) {
    for (uint32_t y = y0; y < y0 + h && y < height; ++y)
        for (uint32_t x = x0; x < x0 + w && x < width; ++x) {
            const uint32_t value = pattern_pixel(x, y, seed);
            memcpy(map_ + offset + uint64_t{y} * stride + uint64_t{x} * 4, &value, 4);
        }
}

void SharedSurface::fill_with(const std::function<uint32_t(uint32_t, uint32_t)>& pixel) {
    for (uint32_t y = 0; y < height; ++y) {
        auto* row = map_ + offset + uint64_t{y} * stride;
        for (uint32_t x = 0; x < width; ++x) {
            const uint32_t value = pixel(x, y);
            memcpy(row + uint64_t{x} * 4, &value, 4);
        }
    }
}

uint32_t SharedSurface::pixel(uint32_t x, uint32_t y) const {
    uint32_t value;
    memcpy(&value, map_ + offset + uint64_t{y} * stride + uint64_t{x} * 4, 4);
    return value & 0xffffff;
}

std::unique_ptr<FakeVmm> FakeVmm::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
            auto vmm = std::unique_ptr<FakeVmm>(new FakeVmm());
            vmm->fd_ = fd;
            return vmm;
        }
        close(fd);
        if (std::chrono::steady_clock::now() > deadline) return nullptr;
        std::this_thread::sleep_for(20ms);
    }
}

FakeVmm::~FakeVmm() {
    if (fd_ >= 0) close(fd_);
}

bool FakeVmm::send_raw(std::string_view bytes, const std::vector<int>& fds) {
    size_t sent_total = 0;
    bool first = true;
    while (sent_total < bytes.size() || (first && bytes.empty())) {
        iovec vector{const_cast<char*>(bytes.data() + sent_total), bytes.size() - sent_total};
        msghdr message{};
        message.msg_iov = &vector;
        message.msg_iovlen = 1;
        std::vector<char> control;
        if (first && !fds.empty()) {
            control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
            message.msg_control = control.data();
            message.msg_controllen = control.size();
            cmsghdr* header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
        }
        const ssize_t sent = sendmsg(fd_, &message, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        sent_total += static_cast<size_t>(sent);
        first = false;
        if (bytes.empty()) break;
    }
    return true;
}

bool FakeVmm::send(const json& message, const std::vector<int>& fds) { return send_raw(framed(message.dump()), fds); }

bool FakeVmm::hello(const std::string& vm_name, uint32_t scanouts) {
    if (!send({{"type", "hello"}, {"protocol", 1}, {"vm_name", vm_name}, {"vm_uuid", ""}, {"scanouts", scanouts}}))
        return false;
    auto welcome = wait_for("welcome");
    return welcome && (*welcome)["protocol"] == 1;
}

bool FakeVmm::send_surface(const SharedSurface& surface, uint32_t scanout) {
    return send({{"type", "surface"},
                 {"scanout", scanout},
                 {"width", surface.width},
                 {"height", surface.height},
                 {"stride", surface.stride},
                 {"format", "XRGB8888"},
                 {"offset", surface.offset},
                 {"fds", 1}},
                {surface.fd()});
}

bool FakeVmm::send_damage(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t scanout) {
    return send({{"type", "damage"}, {"scanout", scanout}, {"rects", json::array({json::array({x, y, w, h})})}});
}

bool FakeVmm::send_cursor(int32_t x, int32_t y, bool visible, uint32_t width, uint32_t height, uint32_t hot_x,
                          uint32_t hot_y, const std::vector<uint32_t>& argb, uint32_t scanout) {
    std::vector<uint8_t> bytes;
    for (uint32_t pixel : argb)
        for (int shift = 0; shift < 32; shift += 8) bytes.push_back(static_cast<uint8_t>(pixel >> shift));
    return send({{"type", "cursor"},
                 {"scanout", scanout},
                 {"x", x},
                 {"y", y},
                 {"visible", visible},
                 {"hot_x", hot_x},
                 {"hot_y", hot_y},
                 {"width", width},
                 {"height", height},
                 {"pixels", base64(bytes)}});
}

std::optional<json> FakeVmm::receive(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (input_.size() >= 4) {
            const auto* header = reinterpret_cast<const uint8_t*>(input_.data());
            const uint32_t size = uint32_t{header[0]} | uint32_t{header[1]} << 8 | uint32_t{header[2]} << 16 |
                                  uint32_t{header[3]} << 24;
            if (input_.size() >= 4 + size) {
                json message = json::parse(input_.substr(4, size), nullptr, false);
                input_.erase(0, 4 + size);
                return message;
            }
        }
        if (eof_) return std::nullopt;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd ready{fd_, POLLIN, 0};
        if (poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
        char buffer[4096];
        const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
        if (got <= 0) {
            eof_ = true;
            continue;
        }
        input_.append(buffer, static_cast<size_t>(got));
    }
}

std::optional<json> FakeVmm::wait_for(const std::string& type, std::chrono::milliseconds timeout,
                                      const std::function<bool(const json&)>& accept) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        auto message = receive(left);
        if (!message) return std::nullopt;
        if ((*message)["type"] == type && (!accept || accept(*message))) return message;
    }
}

bool FakeVmm::closed_by_server(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd ready{fd_, POLLIN, 0};
        if (poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
        char buffer[4096];
        const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
        if (got <= 0) eof_ = true;
        else input_.append(buffer, static_cast<size_t>(got));
    }
    return true;
}

}  // namespace atl::display::testing
