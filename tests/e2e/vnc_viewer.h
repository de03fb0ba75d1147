// What the tools that watch a VM's screen through libvncclient share: the
// end-to-end probe (tests/e2e/vnc_probe.cpp) and the display benchmark's
// viewer (bench/display/vncbench.cpp, built by bench/display/run). Both connect
// while the VM is still starting and then handle the server's messages until
// something shows on the screen.
#pragma once

#include <rfb/rfbclient.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace atl::vnc_viewer {

using Clock = std::chrono::steady_clock;

// For rfbClientLog: libvncclient's progress lines are not the tools' report.
inline void quiet(const char*, ...) {}

// "WxH" with both positive.
inline bool parse_size(const char* text, int& width, int& height) {
    return text && sscanf(text, "%dx%d", &width, &height) == 2 && width > 0 && height > 0;
}

// Connects to 127.0.0.1:port, trying again every 500 ms until the VM's VNC
// port opens or the deadline passes (then null). `configure(client)` sets the
// encodings and callbacks of each attempt's client before it connects.
template <class Configure>
rfbClient* connect(int port, Clock::time_point deadline, Configure configure) {
    while (Clock::now() < deadline) {
        rfbClient* client = rfbGetClient(8, 3, 4);
        client->serverHost = strdup("127.0.0.1");
        client->serverPort = port;
        client->canHandleNewFBSize = TRUE;
        configure(client);
        if (rfbInitClient(client, nullptr, nullptr)) return client;  // frees the client when it fails
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return nullptr;
}

// Waits at most `poll` for a server message and handles it; false when the
// connection failed.
inline bool handle_messages(rfbClient* client, std::chrono::microseconds poll) {
    const int ready = WaitForMessage(client, static_cast<unsigned int>(poll.count()));
    if (ready < 0) return false;
    return ready == 0 || HandleRFBServerMessage(client);
}

// Handles the server's messages until `done()` holds (asked before each wait)
// or the deadline passes; false on a connection error or when never done.
template <class Done>
bool serve_until(rfbClient* client, Clock::time_point deadline, std::chrono::microseconds poll, Done done) {
    while (Clock::now() < deadline) {
        if (done()) return true;
        if (!handle_messages(client, poll)) return false;
    }
    return done();
}

// Handles the server's messages until `until`; false on a connection error.
inline bool serve_for(rfbClient* client, Clock::time_point until, std::chrono::microseconds poll) {
    while (Clock::now() < until)
        if (!handle_messages(client, poll)) return false;
    return true;
}

}  // namespace atl::vnc_viewer
