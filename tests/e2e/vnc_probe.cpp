// atoll-vnc-probe: what a person at a VNC viewer checks, for the `display`
// end-to-end scenario. A real VNC client (libvncclient) that
//   1. connects (retrying until the VM's VNC port is open),
//   2. waits until the whole screen shows the test pattern the guest drew,
//   3. types keys (keysyms, as a viewer sends them),
//   4. asks for another desktop size (ExtendedDesktopSize) and waits until the
//      screen has it, still showing the pattern's top-left part;
//   5. with --reboot WxH: on the same connection, waits for the screen to go
//      black (the guest reboots) and then to show the pattern at WxH (the new
//      boot), and types the keys again.
// One line per step on stdout (PROBE-...); exit 0 when every step passed.
//
//   atoll-vnc-probe pattern WIDTH HEIGHT FILE      writes the pattern as raw XRGB8888
//   atoll-vnc-probe check --port P --size WxH --keys TEXT --resize WxH [--reboot WxH] [--timeout S]
#include "vnc_viewer.h"

#include <rfb/rfbclient.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using atl::vnc_viewer::Clock;
using atl::vnc_viewer::parse_size;
using atl::vnc_viewer::quiet;

// Framebuffer updates received (for the report when a step fails).
long g_updates = 0;
int g_last_update[4] = {};
void count_update(rfbClient*, int x, int y, int w, int h) {
    ++g_updates;
    g_last_update[0] = x;
    g_last_update[1] = y;
    g_last_update[2] = w;
    g_last_update[3] = h;
}

// The pattern: distinct enough that an offset, a swapped channel or a stale
// frame shows, and exactly representable in every lossless VNC encoding.
void pattern_rgb(uint32_t x, uint32_t y, uint8_t& r, uint8_t& g, uint8_t& b) {
    r = static_cast<uint8_t>(x * 7 + y);
    g = static_cast<uint8_t>(y * 3);
    b = static_cast<uint8_t>(x ^ y);
}

int write_pattern(uint32_t width, uint32_t height, const char* path) {
    std::vector<uint8_t> bytes(size_t{width} * height * 4);
    for (uint32_t y = 0; y < height; ++y) {
        for (uint32_t x = 0; x < width; ++x) {
            uint8_t* pixel = &bytes[(size_t{y} * width + x) * 4];
            pattern_rgb(x, y, pixel[2], pixel[1], pixel[0]);  // XRGB8888 little-endian: B, G, R, X
            pixel[3] = 0;
        }
    }
    FILE* file = fopen(path, "wb");
    if (!file || fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size() || fclose(file) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

// Pixels of the client's framebuffer that differ from the pattern.
long mismatches(rfbClient* client, int width, int height) {
    if (client->width < width || client->height < height) return -1;
    const rfbPixelFormat& format = client->format;
    long wrong = 0;
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            uint32_t value;
            std::memcpy(&value, client->frameBuffer + (size_t{static_cast<size_t>(y)} * client->width + x) * 4, 4);
            uint8_t r, g, b;
            pattern_rgb(static_cast<uint32_t>(x), static_cast<uint32_t>(y), r, g, b);
            if (((value >> format.redShift) & format.redMax) != r || ((value >> format.greenShift) & format.greenMax) != g ||
                ((value >> format.blueShift) & format.blueMax) != b)
                ++wrong;
        }
    }
    return wrong;
}

rfbClient* connect(int port, Clock::time_point deadline) {
    return atl::vnc_viewer::connect(port, deadline, [](rfbClient* client) {
        // Lossless encodings only: pixels are compared exactly.
        client->appData.encodingsString = "zrle hextile raw";
        client->appData.enableJPEG = FALSE;
        client->GotFrameBufferUpdate = count_update;
    });
}

constexpr std::chrono::microseconds kPoll{200000};

template <class Done>
bool serve_until(rfbClient* client, Clock::time_point deadline, Done done) {
    return atl::vnc_viewer::serve_until(client, deadline, kPoll, done);
}

void serve_for(rfbClient* client, Clock::time_point until) { atl::vnc_viewer::serve_for(client, until, kPoll); }

int check(int argc, char** argv) {
    int port = 0, width = 0, height = 0, resize_width = 0, resize_height = 0, timeout_s = 240;
    int reboot_width = 0, reboot_height = 0;
    std::string keys;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        if (option == "--port") port = atoi(argv[i + 1]);
        else if (option == "--size") parse_size(argv[i + 1], width, height);
        else if (option == "--keys") keys = argv[i + 1];
        else if (option == "--resize") parse_size(argv[i + 1], resize_width, resize_height);
        else if (option == "--reboot") parse_size(argv[i + 1], reboot_width, reboot_height);
        else if (option == "--timeout") timeout_s = atoi(argv[i + 1]);
    }
    if (port <= 0 || width <= 0) {
        fprintf(stderr, "usage: atoll-vnc-probe check --port P --size WxH [--keys TEXT] [--resize WxH] [--timeout S]\n");
        return 2;
    }
    rfbClientLog = quiet;  // the PROBE lines are the report
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);

    rfbClient* client = connect(port, deadline);
    if (!client) {
        printf("PROBE-CONNECT-FAILED port=%d\n", port);
        return 1;
    }
    printf("PROBE-CONNECTED %dx%d name=%s\n", client->width, client->height, client->desktopName ? client->desktopName : "");
    fflush(stdout);

    long wrong = -1, best = -1;  // best: the closest the screen came (it goes black when the guest powers off)
    const bool pattern = serve_until(client, deadline, [&] {
        if (client->width != width || client->height != height) return false;
        wrong = mismatches(client, width, height);
        if (best < 0 || wrong < best) best = wrong;
        return wrong == 0;
    });
    if (!pattern) {
        printf("PROBE-PATTERN-TIMEOUT screen=%dx%d mismatches=%ld (best %ld) updates=%ld last=%d,%d,%dx%d\n",
               client->width, client->height, wrong, best, g_updates, g_last_update[0], g_last_update[1],
               g_last_update[2], g_last_update[3]);
        long nonzero = 0;
        for (long i = 0; i < static_cast<long>(client->width) * client->height; ++i)
            nonzero += reinterpret_cast<const uint32_t*>(client->frameBuffer)[i] & 0xffffff ? 1 : 0;
        printf("PROBE-NONBLACK %ld of %d\n", nonzero, client->width * client->height);
        // A few pixels, to tell a black screen from a shifted or recoloured pattern.
        for (auto [x, y] : {std::pair{0, 0}, {1, 0}, {0, 1}, {100, 50}, {400, 300}, {700, 10}, {width - 1, height - 1}}) {
            if (x >= client->width || y >= client->height) continue;
            uint32_t value;
            std::memcpy(&value, client->frameBuffer + (size_t{static_cast<size_t>(y)} * client->width + x) * 4, 4);
            uint8_t r, g, b;
            pattern_rgb(static_cast<uint32_t>(x), static_cast<uint32_t>(y), r, g, b);
            printf("PROBE-PIXEL %d,%d got r=%u g=%u b=%u wanted r=%u g=%u b=%u\n", x, y,
                   (value >> client->format.redShift) & 255, (value >> client->format.greenShift) & 255,
                   (value >> client->format.blueShift) & 255, r, g, b);
        }
        rfbClientCleanup(client);
        return 1;
    }
    printf("PROBE-PATTERN-OK %dx%d\n", width, height);
    fflush(stdout);

    int failures = 0;
    auto type_keys = [&](const char* label) {
        bool sent = true;
        for (char c : keys) {
            for (const bool down : {true, false}) {
                sent = sent && SendKeyEvent(client, static_cast<uint32_t>(static_cast<unsigned char>(c)), down ? TRUE : FALSE);
                serve_for(client, Clock::now() + std::chrono::milliseconds(50));
            }
        }
        printf(sent ? "PROBE-%s-SENT %s\n" : "PROBE-%s-FAILED %s\n", label, keys.c_str());
        fflush(stdout);
        failures += sent ? 0 : 1;
        // Give the keys time to travel before the screen changes.
        serve_for(client, Clock::now() + std::chrono::seconds(3));
    };
    if (!keys.empty()) type_keys("KEYS");
    if (resize_width > 0) {
        if (!SendExtDesktopSize(client, static_cast<uint16_t>(resize_width), static_cast<uint16_t>(resize_height))) {
            printf("PROBE-RESIZE-FAILED could not send the request\n");
            ++failures;
        } else {
            const bool resized = serve_until(client, deadline, [&] {
                return client->width == resize_width && client->height == resize_height &&
                       mismatches(client, resize_width, resize_height) == 0;
            });
            if (resized) {
                printf("PROBE-RESIZE-OK %dx%d\n", resize_width, resize_height);
            } else {
                printf("PROBE-RESIZE-TIMEOUT screen=%dx%d\n", client->width, client->height);
                ++failures;
            }
        }
        fflush(stdout);
    }
    if (reboot_width > 0) {
        // The guest reboots: its scanout goes dark (the old boot's surface is
        // gone) while this connection stays, then the new boot draws.
        auto black = [&] {
            for (long i = 0; i < static_cast<long>(client->width) * client->height; ++i)
                if (reinterpret_cast<const uint32_t*>(client->frameBuffer)[i] & 0xffffff) return false;
            return true;
        };
        const bool blank = serve_until(client, deadline, black);
        printf(blank ? "PROBE-BLANK %dx%d\n" : "PROBE-BLANK-TIMEOUT screen=%dx%d\n", client->width, client->height);
        fflush(stdout);
        failures += blank ? 0 : 1;
        const bool shown = blank && serve_until(client, deadline, [&] {
            return client->width == reboot_width && client->height == reboot_height &&
                   mismatches(client, reboot_width, reboot_height) == 0;
        });
        if (shown) {
            printf("PROBE-REBOOT-OK %dx%d\n", reboot_width, reboot_height);
        } else {
            printf("PROBE-REBOOT-TIMEOUT screen=%dx%d updates=%ld\n", client->width, client->height, g_updates);
            ++failures;
        }
        fflush(stdout);
        if (shown && !keys.empty()) type_keys("KEYS2");
    }
    rfbClientCleanup(client);
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "pattern")
        return write_pattern(static_cast<uint32_t>(atoi(argv[2])), static_cast<uint32_t>(atoi(argv[3])), argv[4]);
    if (argc >= 2 && std::string(argv[1]) == "check") return check(argc, argv);
    fprintf(stderr, "usage: atoll-vnc-probe pattern WIDTH HEIGHT FILE | check --port P --size WxH ...\n");
    return 2;
}
