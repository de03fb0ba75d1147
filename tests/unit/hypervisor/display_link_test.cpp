#include "devices/display_link.h"
#include "gpu_test_guest.h"

#include <linux/input-event-codes.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>

namespace atl::vmm {
namespace {

using nlohmann::json;
using virtio::GpuDevice;
using virtio::InputDevice;
using virtio::InputEvent;
using virtio::testing::GpuTestGuest;
using virtio::testing::TestDriver;

// A stand-in for atoll-display: listens where the link connects, reads framed
// messages with their file descriptors, writes framed messages.
class FakeServer {
public:
    struct Message {
        json body;
        std::vector<int> fds;
    };

    explicit FakeServer(const std::string& path) : path_(path) { listen_now(); }
    ~FakeServer() {
        close_client();
        if (listen_fd_ >= 0) close(listen_fd_);
        unlink(path_.c_str());
    }

    void listen_now() {
        listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
        unlink(path_.c_str());
        EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        EXPECT_EQ(listen(listen_fd_, 4), 0);
    }
    bool accept_client(int timeout_ms = 2000) {
        pollfd entry{listen_fd_, POLLIN, 0};
        if (poll(&entry, 1, timeout_ms) != 1) return false;
        client_ = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        return client_ >= 0;
    }
    void close_client() {
        if (client_ >= 0) close(client_);
        client_ = -1;
    }
    int client() const { return client_; }

    // Reads one message; an empty body on EOF or timeout.
    Message read(int timeout_ms = 2000) {
        Message message;
        uint8_t length_bytes[4];
        if (!read_exactly(length_bytes, 4, timeout_ms, &message.fds)) return message;
        uint32_t length;
        std::memcpy(&length, length_bytes, 4);
        std::string text(length, '\0');
        if (!read_exactly(text.data(), length, timeout_ms, &message.fds)) return message;
        message.body = json::parse(text);
        return message;
    }
    // Reads messages until one of `type` arrives (others are kept in `skipped`).
    Message read_until(const std::string& type) {
        for (int i = 0; i < 50; ++i) {
            auto message = read();
            if (message.body.is_null()) break;
            if (message.body["type"] == type) return message;
            for (int fd : message.fds) close(fd);
            skipped.push_back(message.body);
        }
        return {};
    }
    bool at_eof(int timeout_ms = 2000) {
        pollfd entry{client_, POLLIN, 0};
        if (poll(&entry, 1, timeout_ms) != 1) return false;
        char byte;
        return recv(client_, &byte, 1, MSG_DONTWAIT) == 0;
    }
    void send_raw(const std::string& bytes) {
        ASSERT_EQ(::send(client_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    }
    void send(const json& body) {
        const std::string text = body.dump();
        const auto length = static_cast<uint32_t>(text.size());
        std::string frame(4, '\0');
        std::memcpy(frame.data(), &length, 4);
        send_raw(frame + text);
    }

    std::vector<json> skipped;
    std::function<void()> idle;  // called while waiting (runs the link's loop)

private:
    bool read_exactly(void* destination, size_t length, int timeout_ms, std::vector<int>* fds) {
        auto* out = static_cast<char*>(destination);
        while (length > 0) {
            // Waits in slices, letting the link's loop run meanwhile when asked to.
            bool readable = false;
            for (int waited = 0; waited < timeout_ms && !readable; waited += 10) {
                pollfd entry{client_, POLLIN, 0};
                readable = poll(&entry, 1, idle ? 0 : 10) == 1;
                if (!readable && idle) idle();
            }
            if (!readable) return false;
            iovec vector{out, length};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
            msghdr header{};
            header.msg_iov = &vector;
            header.msg_iovlen = 1;
            header.msg_control = control;
            header.msg_controllen = sizeof control;
            const ssize_t got = recvmsg(client_, &header, MSG_CMSG_CLOEXEC);
            if (got <= 0) return false;
            for (cmsghdr* c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c)) {
                if (c->cmsg_type != SCM_RIGHTS) continue;
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
                    int fd;
                    std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    fds->push_back(fd);
                }
            }
            out += got;
            length -= static_cast<size_t>(got);
        }
        return true;
    }

    std::string path_;
    int listen_fd_ = -1;
    int client_ = -1;
};

// An activated input device with its own queues and buffers posted.
struct InputUnderTest {
    explicit InputUnderTest(InputDevice::Kind kind) : device(kind) {
        auto context = driver.activation_context(false, &interrupt);
        if (!device.activate(std::move(context))) ADD_FAILURE() << "activation";
        for (int i = 0; i < 32; ++i) {
            buffers.push_back(driver.fill(8, 0));
            driver.queue(0).add_chain({{buffers.back(), 8, true}});
        }
    }
    // Events delivered so far.
    std::vector<InputEvent> events() {
        std::vector<InputEvent> result;
        for (uint16_t i = 0; i < driver.queue(0).used_index(); ++i) {
            InputEvent event;
            driver.memory()->read_object(GuestAddress{buffers[i]}, event);
            result.push_back(event);
        }
        return result;
    }

    TestDriver driver{64, 64 << 10, 2};
    virtio::testing::FakeInterrupt interrupt;
    InputDevice device;
    std::vector<uint64_t> buffers;
};

bool same(const InputEvent& a, uint16_t type, uint16_t code, int32_t value) {
    return a.type == type && a.code == code && a.value == value;
}

class DisplayLinkTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/atoll-display-link-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        directory_ = pattern;
        path_ = directory_ + "/display.sock";
        guest_.activate();
    }
    void TearDown() override {
        link_.reset();
        connection_.reset();
        std::filesystem::remove_all(directory_);
    }

    void make_link() {
        DisplayConnection::Options options;
        options.socket_path = path_;
        options.vm_name = "web";
        options.reconnect_interval = std::chrono::milliseconds(20);
        connection_ = std::make_shared<DisplayConnection>(options);
        link_ = std::make_unique<DisplayLink>(
            loop_, connection_, DisplayLink::Devices{&guest_.device, &keyboard_.device, &tablet_.device, &mouse_.device});
    }
    // Starts the link with a server present and completes hello/welcome.
    void connect(FakeServer& server) {
        make_link();
        link_->start();
        ASSERT_TRUE(server.accept_client());
        const auto hello = server.read();
        ASSERT_EQ(hello.body["type"], "hello");
        server.send({{"type", "welcome"}, {"protocol", 1}});
        run_until([&] { return link_->welcomed(); });
        ASSERT_TRUE(link_->welcomed());
    }
    template <class Condition>
    void run_until(Condition done, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline) loop_.run_once(std::chrono::milliseconds(10));
    }
    // The guest sets up a scanout as fbdev does.
    GpuTestGuest::Framebuffer show_framebuffer(uint32_t width, uint32_t height, uint32_t seed = 1) {
        return show_framebuffer_on(guest_, width, height, seed);
    }
    static GpuTestGuest::Framebuffer show_framebuffer_on(GpuTestGuest& guest, uint32_t width, uint32_t height,
                                                         uint32_t seed = 1) {
        auto framebuffer = guest.make_framebuffer(width, height, seed);
        EXPECT_EQ(guest.create_2d(1, GpuDevice::kFormatB8G8R8X8, width, height), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest.attach(1, framebuffer.entries), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest.transfer(1, 0, 0, width, height, 0), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest.set_scanout(0, 1, 0, 0, width, height), GpuDevice::kRespOkNoData);
        EXPECT_EQ(guest.flush(1, 0, 0, width, height), GpuDevice::kRespOkNoData);
        return framebuffer;
    }

    std::string directory_;
    std::string path_;
    EventLoop loop_;
    GpuTestGuest guest_;
    InputUnderTest keyboard_{InputDevice::Kind::Keyboard};
    InputUnderTest tablet_{InputDevice::Kind::Tablet};
    InputUnderTest mouse_{InputDevice::Kind::Mouse};
    std::shared_ptr<DisplayConnection> connection_;
    std::unique_ptr<DisplayLink> link_;
};

TEST_F(DisplayLinkTest, SaysHelloFirst) {
    FakeServer server(path_);
    make_link();
    link_->start();
    ASSERT_TRUE(server.accept_client());
    const auto hello = server.read();
    EXPECT_EQ(hello.body["type"], "hello");
    EXPECT_EQ(hello.body["protocol"], 1);
    EXPECT_EQ(hello.body["vm_name"], "web");
    EXPECT_EQ(hello.body["vm_uuid"], "");
    EXPECT_EQ(hello.body["scanouts"], 1);
    EXPECT_TRUE(hello.fds.empty());
}

TEST_F(DisplayLinkTest, GuestPixelsReachTheServerThroughTheSurfaceFd) {
    FakeServer server(path_);
    connect(server);
    const uint32_t width = 96, height = 64;
    show_framebuffer(width, height);

    auto surface = server.read_until("surface");
    ASSERT_EQ(surface.body["type"], "surface");
    EXPECT_EQ(surface.body["scanout"], 0);
    EXPECT_EQ(surface.body["width"], width);
    EXPECT_EQ(surface.body["height"], height);
    EXPECT_EQ(surface.body["format"], "XRGB8888");
    EXPECT_EQ(surface.body["fds"], 1);
    ASSERT_EQ(surface.fds.size(), 1u);
    const uint64_t stride = surface.body["stride"];
    const uint64_t offset = surface.body["offset"];
    struct stat info {};
    ASSERT_EQ(fstat(surface.fds[0], &info), 0);
    ASSERT_GE(static_cast<uint64_t>(info.st_size), offset + stride * height);
    auto* pixels = static_cast<const uint8_t*>(mmap(nullptr, info.st_size, PROT_READ, MAP_SHARED, surface.fds[0], 0));
    ASSERT_NE(pixels, MAP_FAILED);
    for (uint32_t y = 0; y < height; ++y) {
        for (uint32_t x = 0; x < width; ++x) {
            uint32_t value;
            std::memcpy(&value, pixels + offset + y * stride + x * 4, 4);
            ASSERT_EQ(value, GpuTestGuest::pattern(x, y, 1)) << x << "," << y;
        }
    }
    auto damage = server.read_until("damage");
    EXPECT_EQ(damage.body["scanout"], 0);
    EXPECT_EQ(damage.body["rects"], json::parse("[[0,0,96,64]]"));
    munmap(const_cast<uint8_t*>(pixels), info.st_size);
    close(surface.fds[0]);

    // Turning the scanout off.
    ASSERT_EQ(guest_.set_scanout(0, 0, 0, 0, 0, 0), GpuDevice::kRespOkNoData);
    EXPECT_EQ(server.read_until("disable").body["scanout"], 0);
}

TEST_F(DisplayLinkTest, ACursorArrivesWithItsShape) {
    FakeServer server(path_);
    connect(server);
    auto framebuffer = guest_.make_framebuffer(64, 64, 3);
    ASSERT_EQ(guest_.create_2d(5, GpuDevice::kFormatB8G8R8A8, 64, 64), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.attach(5, framebuffer.entries), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.transfer(5, 0, 0, 64, 64, 0), GpuDevice::kRespOkNoData);
    guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, 10, 20, 5, 1, 2);
    const auto shaped = server.read_until("cursor");
    EXPECT_EQ(shaped.body["x"], 10);
    EXPECT_EQ(shaped.body["visible"], true);
    EXPECT_EQ(shaped.body["width"], 64);
    EXPECT_EQ(shaped.body["hot_y"], 2);
    EXPECT_EQ(shaped.body["pixels"].get<std::string>().size(), 64u * 64 * 4 / 3 * 4 + 4);
    guest_.cursor_command(GpuDevice::kCmdMoveCursor, 0, -3, 5);
    const auto moved = server.read_until("cursor");
    EXPECT_EQ(moved.body["x"], -3);
    EXPECT_FALSE(moved.body.contains("pixels"));
    // Whatever the guest says, the position stays in the protocol's range.
    guest_.cursor_command(GpuDevice::kCmdMoveCursor, 0, INT32_MIN, 1 << 30);
    const auto far = server.read_until("cursor");
    EXPECT_EQ(far.body["x"], -16384);
    EXPECT_EQ(far.body["y"], 32768);
}

TEST_F(DisplayLinkTest, InputReachesTheDevices) {
    FakeServer server(path_);
    connect(server);
    server.send({{"type", "key"}, {"code", KEY_A}, {"pressed", true}});
    server.send({{"type", "key"}, {"code", KEY_A}, {"pressed", true}});  // the viewer's autorepeat
    server.send({{"type", "key"}, {"code", KEY_A}, {"pressed", false}});
    server.send({{"type", "pointer"}, {"x", 100}, {"y", 32767}, {"buttons", 1}});
    server.send({{"type", "pointer"}, {"x", 101}, {"y", 32767}, {"buttons", 0}});
    server.send({{"type", "wheel"}, {"dy", -2}});
    server.send({{"type", "motion"}, {"dx", 5}, {"dy", -7}, {"buttons", 4}});
    run_until([&] { return mouse_.driver.queue(0).used_index() >= 4; });

    const auto keys = keyboard_.events();
    ASSERT_EQ(keys.size(), 6u);
    EXPECT_TRUE(same(keys[0], EV_KEY, KEY_A, 1));
    EXPECT_TRUE(same(keys[1], EV_SYN, SYN_REPORT, 0));
    EXPECT_TRUE(same(keys[2], EV_KEY, KEY_A, 2));
    EXPECT_TRUE(same(keys[4], EV_KEY, KEY_A, 0));

    const auto tablet = tablet_.events();
    ASSERT_EQ(tablet.size(), 4u + 4u + 2u);
    EXPECT_TRUE(same(tablet[0], EV_ABS, ABS_X, 100));
    EXPECT_TRUE(same(tablet[1], EV_ABS, ABS_Y, 32767));
    EXPECT_TRUE(same(tablet[2], EV_KEY, BTN_LEFT, 1));
    EXPECT_TRUE(same(tablet[3], EV_SYN, SYN_REPORT, 0));
    EXPECT_TRUE(same(tablet[6], EV_KEY, BTN_LEFT, 0));
    EXPECT_TRUE(same(tablet[8], EV_REL, REL_WHEEL, -2));

    const auto mouse = mouse_.events();
    ASSERT_EQ(mouse.size(), 4u);
    EXPECT_TRUE(same(mouse[0], EV_REL, REL_X, 5));
    EXPECT_TRUE(same(mouse[1], EV_REL, REL_Y, -7));
    EXPECT_TRUE(same(mouse[2], EV_KEY, BTN_MIDDLE, 1));
    EXPECT_TRUE(same(mouse[3], EV_SYN, SYN_REPORT, 0));
}

TEST_F(DisplayLinkTest, ResizeChangesTheDisplayInfoAndIsAnswered) {
    FakeServer server(path_);
    connect(server);
    server.send({{"type", "resize"}, {"scanout", 0}, {"width", 1024}, {"height", 768}});
    run_until([&] { return guest_.device.events_read() != 0; });
    EXPECT_EQ(guest_.device.events_read(), GpuDevice::kEventDisplay);
    EXPECT_EQ(guest_.interrupt.config_changes, 1);
    const auto modes = server.read_until("modes");
    EXPECT_EQ(modes.body["scanout"], 0);
    EXPECT_EQ(modes.body["preferred_width"], 1024);
    EXPECT_EQ(modes.body["preferred_height"], 768);
    const auto info = guest_.command(GpuDevice::kCmdGetDisplayInfo, {}, 408);
    uint32_t mode[4];
    std::memcpy(mode, info.payload.data(), sizeof mode);
    EXPECT_EQ(mode[2], 1024u);
    EXPECT_EQ(mode[3], 768u);
}

struct Malformed {
    const char* name;
    std::string frame;  // raw bytes after welcome ("" = see before_welcome)
    bool before_welcome = false;
};

std::string framed(const std::string& text) {
    const auto length = static_cast<uint32_t>(text.size());
    std::string frame(4, '\0');
    std::memcpy(frame.data(), &length, 4);
    return frame + text;
}

class DisplayLinkDrops : public DisplayLinkTest, public ::testing::WithParamInterface<Malformed> {};

TEST_P(DisplayLinkDrops, AMalformedMessageAndReconnects) {
    FakeServer server(path_);
    const auto& bad = GetParam();
    if (bad.before_welcome) {
        make_link();
        link_->start();
        ASSERT_TRUE(server.accept_client());
        ASSERT_EQ(server.read().body["type"], "hello");
    } else {
        connect(server);
    }
    server.send_raw(bad.frame);
    run_until([&] { return !link_->connected(); });
    EXPECT_FALSE(link_->connected()) << bad.name;
    EXPECT_EQ(link_->statistics().drops, 1u);
    EXPECT_TRUE(server.at_eof()) << "the server sees the link close";
    EXPECT_TRUE(keyboard_.events().empty()) << "nothing reached the guest";
    EXPECT_EQ(guest_.device.events_read(), 0u);
    // The VM keeps trying: a well-behaved server gets a new hello.
    server.close_client();
    run_until([&] { return link_->connected(); });
    ASSERT_TRUE(link_->connected());
    ASSERT_TRUE(server.accept_client());
    EXPECT_EQ(server.read().body["type"], "hello");
}

INSTANTIATE_TEST_SUITE_P(
    Messages, DisplayLinkDrops,
    ::testing::Values(
        Malformed{"zero_length", std::string(4, '\0')},
        Malformed{"too_long", std::string("\x01\x00\x01\x00", 4) + std::string(64, 'x')},
        Malformed{"not_json", framed("{nope")},
        Malformed{"not_object", framed("[1,2]")},
        Malformed{"no_type", framed(R"({"code":30})")},
        Malformed{"unknown_type", framed(R"({"type":"teleport"})")},
        Malformed{"key_code_negative", framed(R"({"type":"key","code":-1,"pressed":true})")},
        Malformed{"key_code_beyond_16_bits", framed(R"({"type":"key","code":65536,"pressed":true})")},
        Malformed{"key_code_float", framed(R"({"type":"key","code":30.5,"pressed":true})")},
        Malformed{"key_code_string", framed(R"({"type":"key","code":"a","pressed":true})")},
        Malformed{"key_without_pressed", framed(R"({"type":"key","code":30})")},
        Malformed{"key_pressed_not_bool", framed(R"({"type":"key","code":30,"pressed":1})")},
        Malformed{"pointer_out_of_range", framed(R"({"type":"pointer","x":32768,"y":0,"buttons":0})")},
        Malformed{"pointer_negative", framed(R"({"type":"pointer","x":-1,"y":0,"buttons":0})")},
        Malformed{"pointer_bad_buttons", framed(R"({"type":"pointer","x":1,"y":0,"buttons":8})")},
        Malformed{"pointer_float", framed(R"({"type":"pointer","x":1.5,"y":0,"buttons":0})")},
        Malformed{"motion_missing_field", framed(R"({"type":"motion","dx":1,"buttons":0})")},
        Malformed{"resize_bad_scanout", framed(R"({"type":"resize","scanout":1,"width":800,"height":600})")},
        Malformed{"resize_too_small", framed(R"({"type":"resize","scanout":0,"width":10,"height":600})")},
        Malformed{"fds_announced", framed(R"({"type":"wheel","dy":1,"fds":1})")},
        Malformed{"key_before_welcome", framed(R"({"type":"key","code":30,"pressed":true})"), true},
        Malformed{"wrong_protocol", framed(R"({"type":"welcome","protocol":2})"), true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(DisplayLinkTest, FileDescriptorsFromTheServerDropTheLink) {
    FakeServer server(path_);
    connect(server);
    const std::string frame = framed(R"({"type":"wheel","dy":1})");
    iovec vector{const_cast<char*>(frame.data()), frame.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr header{};
    header.msg_iov = &vector;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    const int passed = 0;
    std::memcpy(CMSG_DATA(cmsg), &passed, sizeof passed);
    ASSERT_GT(sendmsg(server.client(), &header, 0), 0);
    run_until([&] { return !link_->connected(); });
    EXPECT_FALSE(link_->connected());
    EXPECT_TRUE(tablet_.events().empty());
}

TEST_F(DisplayLinkTest, WaitsForAnAbsentServerAndTellsItTheCurrentState) {
    make_link();
    link_->start();  // nobody listens yet
    EXPECT_FALSE(link_->connected());
    show_framebuffer(32, 32);  // the guest does not wait for the display
    run_until([] { return false; }, std::chrono::milliseconds(50));
    EXPECT_FALSE(link_->connected());

    FakeServer server(path_);
    run_until([&] { return link_->connected(); });
    ASSERT_TRUE(link_->connected());
    ASSERT_TRUE(server.accept_client());
    EXPECT_EQ(server.read().body["type"], "hello");
    const auto surface = server.read();  // what the scanout already shows
    EXPECT_EQ(surface.body["type"], "surface");
    EXPECT_EQ(surface.body["width"], 32);
    ASSERT_EQ(surface.fds.size(), 1u);
    close(surface.fds[0]);
}

TEST_F(DisplayLinkTest, ReconnectsAfterTheServerGoesAwayAndReleasesHeldInput) {
    FakeServer server(path_);
    connect(server);
    show_framebuffer(16, 16);
    server.send({{"type", "key"}, {"code", KEY_LEFTSHIFT}, {"pressed", true}});
    server.send({{"type", "pointer"}, {"x", 5}, {"y", 5}, {"buttons", 2}});
    run_until([&] { return tablet_.driver.queue(0).used_index() >= 4; });
    server.close_client();
    run_until([&] { return !link_->connected(); });
    EXPECT_FALSE(link_->connected());
    EXPECT_EQ(link_->last_drop_reason(), "the server closed the connection");
    // Held keys and buttons are released, so nothing sticks in the guest.
    const auto keys = keyboard_.events();
    ASSERT_EQ(keys.size(), 4u);
    EXPECT_TRUE(same(keys[2], EV_KEY, KEY_LEFTSHIFT, 0));
    const auto tablet = tablet_.events();
    ASSERT_EQ(tablet.size(), 6u);
    EXPECT_TRUE(same(tablet[4], EV_KEY, BTN_RIGHT, 0));

    run_until([&] { return link_->connected(); });
    ASSERT_TRUE(server.accept_client());
    EXPECT_EQ(server.read().body["type"], "hello");
    const auto surface = server.read();
    EXPECT_EQ(surface.body["type"], "surface");
    for (int fd : surface.fds) close(fd);
    EXPECT_EQ(link_->statistics().connections, 2u);
}

TEST_F(DisplayLinkTest, ASlowServerGetsTheLatestStateNotABacklog) {
    FakeServer server(path_);
    connect(server);
    auto framebuffer = guest_.make_framebuffer(64, 64, 3);
    ASSERT_EQ(guest_.create_2d(5, GpuDevice::kFormatB8G8R8A8, 64, 64), GpuDevice::kRespOkNoData);
    ASSERT_EQ(guest_.attach(5, framebuffer.entries), GpuDevice::kRespOkNoData);
    show_framebuffer(64, 64);
    ASSERT_EQ(guest_.create_2d(2, GpuDevice::kFormatB8G8R8X8, 64, 64), GpuDevice::kRespOkNoData);
    // The server reads nothing while the guest flips, redraws and moves the cursor a lot.
    for (int i = 0; i < 400; ++i) {
        guest_.cursor_command(GpuDevice::kCmdUpdateCursor, 0, i, i, 5);
        ASSERT_EQ(guest_.set_scanout(0, i % 2 ? 2 : 1, 0, 0, 64, 64), GpuDevice::kRespOkNoData);
        ASSERT_EQ(guest_.flush(i % 2 ? 2 : 1, i % 64, 0, 1, 1), GpuDevice::kRespOkNoData);
    }
    EXPECT_TRUE(link_->connected());
    // The server catches up: far fewer messages than updates, the last state last.
    server.idle = [&] { loop_.run_once(std::chrono::milliseconds(10)); };  // the link writes what waited
    std::vector<json> cursors;
    int messages = 0, fds = 0;
    for (;;) {
        auto message = server.read(300);
        if (message.body.is_null()) break;
        ++messages;
        fds += static_cast<int>(message.fds.size());
        for (int fd : message.fds) close(fd);
        if (message.body["type"] == "cursor") cursors.push_back(message.body);
    }
    EXPECT_LT(messages, 400);
    EXPECT_LT(fds, 200);
    ASSERT_FALSE(cursors.empty());
    EXPECT_EQ(cursors.back()["x"], 399);
}

// Issue 4: a key the VM's keyboard cannot represent is the viewer's business,
// not a broken server; the link stays and later keys arrive.
TEST_F(DisplayLinkTest, KeysTheKeyboardLacksAreIgnoredAndTheLinkStays) {
    FakeServer server(path_);
    connect(server);
    // A mouse button, a code past KEY_MAX, KEY_RESERVED, the largest 16-bit code,
    // and a joystick button (BTN_TRIGGER_HAPPY): none is a keyboard key.
    for (int code : {BTN_LEFT, 4096, 0, 65535, BTN_TRIGGER_HAPPY}) {
        server.send({{"type", "key"}, {"code", code}, {"pressed", true}});
        server.send({{"type", "key"}, {"code", code}, {"pressed", false}});
    }
    server.send({{"type", "key"}, {"code", KEY_B}, {"pressed", true}});
    server.send({{"type", "key"}, {"code", KEY_B}, {"pressed", false}});
    run_until([&] { return keyboard_.driver.queue(0).used_index() >= 4; });
    EXPECT_TRUE(link_->connected());
    EXPECT_EQ(link_->statistics().drops, 0u);
    EXPECT_EQ(link_->statistics().ignored_keys, 10u);
    const auto keys = keyboard_.events();
    ASSERT_EQ(keys.size(), 4u) << "only KEY_B's press and release reach the guest";
    EXPECT_TRUE(same(keys[0], EV_KEY, KEY_B, 1));
    EXPECT_TRUE(same(keys[2], EV_KEY, KEY_B, 0));
    EXPECT_FALSE(server.at_eof(100)) << "the server's end stays open";
    // The link still serves both directions.
    show_framebuffer(8, 8);
    const auto surface = server.read_until("surface");
    ASSERT_EQ(surface.fds.size(), 1u);
    close(surface.fds[0]);
}

// A real violation right after ignored keys still drops the link.
TEST_F(DisplayLinkTest, AViolationAfterIgnoredKeysStillDropsTheLink) {
    FakeServer server(path_);
    connect(server);
    server.send({{"type", "key"}, {"code", BTN_LEFT}, {"pressed", true}});
    server.send({{"type", "key"}, {"code", KEY_A}, {"pressed", "yes"}});
    run_until([&] { return !link_->connected(); });
    EXPECT_FALSE(link_->connected());
    EXPECT_EQ(link_->statistics().ignored_keys, 1u);
    EXPECT_EQ(link_->last_drop_reason(), "malformed message from the server: bad \"key\"");
    EXPECT_TRUE(server.at_eof());
}

// Issue 4: the connection outlives a boot. The machine of the next boot has
// new devices; the server keeps the VM (no new hello), sees the old boot's
// scanout go dark, then the new boot's surface; input reaches the new boot's
// keyboard, and the viewer's last size is what the new boot's GPU offers.
TEST_F(DisplayLinkTest, TheConnectionOutlivesABoot) {
    FakeServer server(path_);
    connect(server);
    server.idle = [&] { loop_.run_once(std::chrono::milliseconds(5)); };  // the link reads while the server waits
    show_framebuffer(32, 16);
    auto first = server.read_until("surface");
    for (int fd : first.fds) close(fd);
    server.send({{"type", "resize"}, {"scanout", 0}, {"width", 1024}, {"height", 768}});
    EXPECT_EQ(server.read_until("modes").body["preferred_width"], 1024);
    server.send({{"type", "key"}, {"code", KEY_LEFTSHIFT}, {"pressed", true}});
    run_until([&] { return keyboard_.driver.queue(0).used_index() >= 2; });

    // The guest reboots: its machine (devices and link) goes.
    link_.reset();
    EXPECT_TRUE(connection_->connected());
    const auto dark = server.read_until("disable");
    EXPECT_EQ(dark.body["scanout"], 0);
    EXPECT_FALSE(server.at_eof(50));

    // The next boot.
    GpuTestGuest guest;
    guest.activate();
    InputUnderTest keyboard{InputDevice::Kind::Keyboard};
    link_ = std::make_unique<DisplayLink>(loop_, connection_, DisplayLink::Devices{&guest.device, &keyboard.device});
    link_->start();
    const auto info = guest.command(GpuDevice::kCmdGetDisplayInfo, {}, 408);
    uint32_t mode[4];
    std::memcpy(mode, info.payload.data(), sizeof mode);
    EXPECT_EQ(mode[2], 1024u) << "the viewer's size carries over";
    EXPECT_EQ(mode[3], 768u);
    show_framebuffer_on(guest, 48, 24, 7);
    server.skipped.clear();
    auto second = server.read_until("surface");
    ASSERT_EQ(second.fds.size(), 1u);
    EXPECT_EQ(second.body["width"], 48);
    close(second.fds[0]);
    for (const auto& skipped : server.skipped) EXPECT_NE(skipped["type"], "hello") << "the server keeps the VM";

    // Shift was held in the old boot: its release is not replayed into the new one.
    server.send({{"type", "key"}, {"code", KEY_LEFTSHIFT}, {"pressed", false}});
    server.send({{"type", "key"}, {"code", KEY_C}, {"pressed", true}});
    run_until([&] { return keyboard.driver.queue(0).used_index() >= 2; });
    const auto keys = keyboard.events();
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_TRUE(same(keys[0], EV_KEY, KEY_C, 1));
    EXPECT_EQ(connection_->statistics().connections, 1u);
    EXPECT_EQ(connection_->statistics().drops, 0u);
    EXPECT_EQ(connection_->statistics().boots, 2u);
    link_.reset();  // before the devices of this boot go
}

// A boot that starts while the server is away connects on its own, and a
// boot that ends while disconnected leaves nothing behind.
TEST_F(DisplayLinkTest, ABootAfterTheServerWentAwayConnectsAgain) {
    make_link();
    link_->start();
    EXPECT_FALSE(link_->connected());
    link_.reset();
    FakeServer server(path_);
    link_ = std::make_unique<DisplayLink>(loop_, connection_, DisplayLink::Devices{&guest_.device});
    link_->start();
    ASSERT_TRUE(connection_->connected());
    ASSERT_TRUE(server.accept_client());
    EXPECT_EQ(server.read().body["type"], "hello");
}

}  // namespace
}  // namespace atl::vmm
