// vncbench: the display benchmark's viewer (bench/display). A real VNC client
// (libvncclient) against a VM whose guest runs fbbench.c:
//   1. connects (retrying until the VM's VNC port opens) and waits for the
//      guest's throughput frames (marker B = 0x5a) at the expected size;
//   2. after a warm-up, for SECONDS: counts framebuffer updates, distinct guest
//      frames seen (the marker's counter) and the bytes the socket received
//      (TCP_INFO's tcpi_bytes_received, RFC 4898's HCThruOctetsReceived: every
//      RFB byte, headers and encodings included);
//   3. presses a key (the guest switches to latency mode), then N times: press
//      a key and time it until an update shows the marker's next counter: the
//      time from a viewer's key to the guest's changed pixels on its screen;
//   4. presses Escape (the guest powers off).
// One line per result on stdout:
//   VNCBENCH-THROUGHPUT seconds=S updates=U frames=F bytes=B fps=X wire_bytes_per_s=Y guest_frames=G
//   VNCBENCH-LATENCY-SAMPLE ms=M  (N of them)   VNCBENCH-LATENCY median_ms=M samples=N
//
//   vncbench --port P --size WxH [--warmup S] [--seconds S] [--latency N] [--timeout S]
// Environment: VNCBENCH_TRACE=1 prints a line per update (area, bytes, marker);
// VNCBENCH_VERBOSE=1 lets libvncclient log.
#include "vnc_viewer.h"

#include <rfb/keysym.h>
#include <rfb/rfbclient.h>

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
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
constexpr int kThroughputMarker = 0x5a, kLatencyMarker = 0xa5;
constexpr int kMarkerX = 8, kMarkerY = 8;  // inside fbbench's 64x16 marker block

struct Marker {
    int kind = -1;  // kThroughputMarker, kLatencyMarker, or anything else
    int counter = 0;
};

struct State {
    long updates = 0;
    long frames = 0;  // distinct throughput counters seen
    int last_counter = -1;
    int first_counter = -1;
    Marker marker;
};
State g_state;

Marker read_marker(rfbClient* client) {
    Marker marker;
    if (client->width <= kMarkerX || client->height <= kMarkerY) return marker;
    uint32_t value;
    std::memcpy(&value, client->frameBuffer + (size_t{kMarkerY} * client->width + kMarkerX) * 4, 4);
    const auto& format = client->format;
    const int r = static_cast<int>((value >> format.redShift) & format.redMax);
    const int g = static_cast<int>((value >> format.greenShift) & format.greenMax);
    const int b = static_cast<int>((value >> format.blueShift) & format.blueMax);
    marker.kind = b;
    marker.counter = g << 8 | r;
    return marker;
}

// With VNCBENCH_TRACE set: one line per update (its area, bytes, the marker).
bool g_trace = false;
uint64_t g_update_area = 0;
uint64_t bytes_received(rfbClient* client);

void got_rect(rfbClient*, int, int, int w, int h) { g_update_area += static_cast<uint64_t>(w) * h; }

// libvncclient calls this once per FramebufferUpdate message, after its rectangles.
void finished_update(rfbClient* client) {
    ++g_state.updates;
    g_state.marker = read_marker(client);
    if (g_trace) {
        static uint64_t last_bytes = 0;
        const uint64_t bytes = bytes_received(client);
        printf("VNCBENCH-UPDATE area=%llu bytes=%llu marker=%#x,%d\n", static_cast<unsigned long long>(g_update_area),
               static_cast<unsigned long long>(bytes - last_bytes), g_state.marker.kind, g_state.marker.counter);
        last_bytes = bytes;
    }
    g_update_area = 0;
    if (g_state.marker.kind == kThroughputMarker && g_state.marker.counter != g_state.last_counter) {
        ++g_state.frames;
        if (g_state.first_counter < 0) g_state.first_counter = g_state.marker.counter;
        g_state.last_counter = g_state.marker.counter;
    }
}

uint64_t bytes_received(rfbClient* client) {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (getsockopt(client->sock, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return 0;
    return info.tcpi_bytes_received;
}

rfbClient* connect(int port, Clock::time_point deadline) {
    return atl::vnc_viewer::connect(port, deadline, [](rfbClient* client) {
        // The same request to both servers, as TigerVNC's viewer asks by
        // default (Tight first, compression level 2) but lossless: no JPEG,
        // so that the marker is read exactly.
        client->appData.encodingsString = "tight zrle zlib hextile copyrect raw";
        client->appData.enableJPEG = FALSE;
        client->appData.compressLevel = 2;
        client->FinishedFrameBufferUpdate = finished_update;
        client->GotFrameBufferUpdate = got_rect;
    });
}

// A message wakes the wait at once: the poll only bounds how late a deadline is seen.
constexpr std::chrono::microseconds kPoll{50000};

template <class Done>
bool serve_until(rfbClient* client, Clock::time_point deadline, Done done) {
    return atl::vnc_viewer::serve_until(client, deadline, kPoll, done);
}

bool serve_for(rfbClient* client, Clock::time_point until) { return atl::vnc_viewer::serve_for(client, until, kPoll); }

bool press(rfbClient* client, uint32_t keysym) {
    return SendKeyEvent(client, keysym, TRUE) && SendKeyEvent(client, keysym, FALSE);
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0, width = 0, height = 0, latency_samples = 20;
    double warmup_s = 3, seconds = 10, timeout_s = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        if (option == "--port") port = atoi(argv[i + 1]);
        else if (option == "--size") parse_size(argv[i + 1], width, height);
        else if (option == "--warmup") warmup_s = atof(argv[i + 1]);
        else if (option == "--seconds") seconds = atof(argv[i + 1]);
        else if (option == "--latency") latency_samples = atoi(argv[i + 1]);
        else if (option == "--timeout") timeout_s = atof(argv[i + 1]);
    }
    if (port <= 0 || width <= 0) {
        fprintf(stderr, "usage: vncbench --port P --size WxH [--warmup S] [--seconds S] [--latency N] [--timeout S]\n");
        return 2;
    }
    if (!getenv("VNCBENCH_VERBOSE")) rfbClientLog = quiet;  // errors stay on stderr
    g_trace = getenv("VNCBENCH_TRACE") != nullptr;
    auto after = [](double s) { return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6)); };
    const auto deadline = after(timeout_s);

    // The guest's frames at the expected size. A viewer that connected while
    // the guest's firmware or console showed another size may be dropped at
    // the mode change (QEMU 7.2 sent libvncclient 0.9.14 a rectangle of the
    // new size before the size itself): it connects again, as a person would.
    rfbClient* client = nullptr;
    for (;;) {
        client = connect(port, deadline);
        if (!client) {
            printf("VNCBENCH-CONNECT-FAILED port=%d\n", port);
            return 1;
        }
        printf("VNCBENCH-CONNECTED %dx%d name=%s\n", client->width, client->height,
               client->desktopName ? client->desktopName : "");
        fflush(stdout);
        if (serve_until(client, deadline, [&] {
                return client->width == width && client->height == height && g_state.marker.kind == kThroughputMarker;
            }))
            break;
        printf("VNCBENCH-NO-FRAMES screen=%dx%d marker=%d updates=%ld\n", client->width, client->height,
               g_state.marker.kind, g_state.updates);
        fflush(stdout);
        rfbClientCleanup(client);
        if (Clock::now() >= deadline) return 1;
        g_state = {};
    }
    printf("VNCBENCH-FRAMES-SEEN counter=%d\n", g_state.marker.counter);
    fflush(stdout);
    if (!serve_for(client, after(warmup_s))) {
        printf("VNCBENCH-DISCONNECTED during the warm-up\n");
        return 1;
    }

    // Throughput.
    const State before = g_state;
    const uint64_t bytes_before = bytes_received(client);
    const auto start = Clock::now();
    const bool alive = serve_for(client, after(seconds));
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const uint64_t bytes = bytes_received(client) - bytes_before;
    const long frames = g_state.frames - before.frames;
    const long updates = g_state.updates - before.updates;
    const int guest_frames = g_state.last_counter - before.last_counter;
    printf("VNCBENCH-THROUGHPUT seconds=%.2f updates=%ld frames=%ld bytes=%llu fps=%.2f wire_bytes_per_s=%.0f "
           "bytes_per_frame=%.0f guest_frames=%d\n",
           elapsed, updates, frames, static_cast<unsigned long long>(bytes), frames / elapsed, bytes / elapsed,
           frames > 0 ? static_cast<double>(bytes) / frames : 0.0, guest_frames);
    fflush(stdout);
    if (!alive || frames == 0) return 1;

    // Latency: the first key switches the guest over; it answers with counter 0.
    if (!press(client, XK_a) ||
        !serve_until(client, after(60), [] { return g_state.marker.kind == kLatencyMarker && g_state.marker.counter == 0; })) {
        printf("VNCBENCH-LATENCY-FAILED the guest did not enter its latency phase (marker %d)\n", g_state.marker.kind);
        return 1;
    }
    serve_for(client, after(1));  // the last throughput frames drain
    std::vector<double> samples;
    for (int i = 1; i <= latency_samples; ++i) {
        const auto sent = Clock::now();
        if (!press(client, XK_a)) break;
        const bool seen = serve_until(client, after(20), [&] {
            return g_state.marker.kind == kLatencyMarker && g_state.marker.counter == i;
        });
        if (!seen) {
            printf("VNCBENCH-LATENCY-TIMEOUT sample=%d marker=%d,%d\n", i, g_state.marker.kind, g_state.marker.counter);
            break;
        }
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        samples.push_back(ms);
        printf("VNCBENCH-LATENCY-SAMPLE ms=%.2f\n", ms);
        // Apart, so that each sample starts from an idle screen.
        serve_for(client, after(0.2));
    }
    press(client, XK_Escape);
    serve_for(client, after(0.5));
    if (samples.empty()) return 1;
    std::sort(samples.begin(), samples.end());
    const size_t n = samples.size();
    const double median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
    printf("VNCBENCH-LATENCY median_ms=%.2f min_ms=%.2f max_ms=%.2f samples=%zu\n", median, samples.front(),
           samples.back(), n);
    rfbClientCleanup(client);
    return static_cast<int>(n) == latency_samples ? 0 : 1;
}
