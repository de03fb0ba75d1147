// One VM's VNC server (libvncserver), showing its scanout 0.
//
// Pixels are not copied: libvncserver's framebuffer points into the VMM's
// shared surface (XRGB8888 is a format RFB servers speak natively: 32 bpp,
// depth 24, red at bit 16), and damage becomes rfbMarkRectAsModified.
//
// Threads: libvncserver runs two threads per client (input, output) and an
// idle listener; connections are accepted here (plain, or through the
// VeNCrypt front end) and handed to it. Everything that changes the screen
// (a new surface, damage, the cursor) runs on this server's worker thread,
// holding every client's send lock, so no encoder reads a surface being
// replaced and a slow viewer never blocks the link thread.
#pragma once

#include "vm_display.h"

#include <atoll/result.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct _rfbScreenInfo;
struct _rfbClientRec;
struct rfbCursor;

namespace atl::display {

class TlsCredentials;

struct VncOptions {
    std::string listen_address = "127.0.0.1";
    // Tried in order; one already in use is skipped.
    std::vector<uint16_t> ports;
    std::string password;                  // empty: no VNC authentication
    std::shared_ptr<TlsCredentials> tls;   // set: VeNCrypt (X.509) only
    std::string desktop_name;
};

class VncServer final : public DisplaySink {
public:
    static Result<std::unique_ptr<VncServer>> start(const VncOptions& options, std::shared_ptr<InputSink> input);
    ~VncServer() override;

    VncAddress address() const { return address_; }

    // DisplaySink: scanout 0 is shown, the others are ignored.
    void surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) override;
    void damaged(uint32_t scanout, const std::vector<link::Rect>& rects) override;
    void cursor_changed(uint32_t scanout, const CursorState& cursor, bool shape_changed) override;

    static constexpr int kMaxClients = 16;
    // The framebuffer shown while the scanout has no surface.
    static constexpr int kPlaceholderWidth = 640, kPlaceholderHeight = 480;
    // Hands a connected socket (TCP, or the VeNCrypt front end's inner end,
    // positioned at the start of RFB) to libvncserver. Any thread.
    void adopt_client(int fd);

private:
    struct Shared;
    struct ClientState;
    struct TlsSession;
    VncServer(std::shared_ptr<InputSink> input, std::string desktop_name);

    // Worker thread.
    void post(std::function<void()> task);
    void run_worker();
    void show(const std::shared_ptr<SurfaceMapping>& surface);
    void replace_cursor(rfbCursor* cursor);
    void accept_loop();
    void close_stalled_handshakes();
    static constexpr int kHandshakeCheckMs = 5000;
    static constexpr std::chrono::seconds kHandshakeTimeout{60};  // a person may be typing a password

    // libvncserver's callbacks (on client threads) live in the .cpp.
    friend struct VncCallbacks;

    // What client threads reach, kept alive by each client's state.
    const std::shared_ptr<Shared> shared_;
    const std::string desktop_name_;
    std::shared_ptr<TlsCredentials> tls_;
    std::string password_;
    std::vector<char*> password_list_;  // libvncserver's NULL-terminated list
    _rfbScreenInfo* screen_ = nullptr;
    VncAddress address_;
    int listen_fd_ = -1;
    int stop_fd_ = -1;  // eventfd: accept loop and VeNCrypt sessions stop
    std::thread acceptor_;

    // Worker-owned: what the framebuffer points into.
    std::shared_ptr<SurfaceMapping> shown_;
    std::vector<char> placeholder_;
    rfbCursor* cursor_ = nullptr;  // read by encoders under their send lock
    bool cursor_shown_ = false;    // link thread

    std::mutex tasks_mutex_;
    std::condition_variable tasks_ready_;
    std::deque<std::function<void()>> tasks_;
    bool full_damage_pending_ = false;
    bool stopping_ = false;
    std::thread worker_;

    std::vector<std::unique_ptr<TlsSession>> tls_sessions_;  // accept thread, then the destructor
};

// Routes libvncserver's log lines to stderr with a prefix (its chatter only
// when `verbose`) and sets up what libvncserver would otherwise initialize
// lazily and racily. Call once, before any server starts.
void initialize_vnc(bool verbose);

}  // namespace atl::display
