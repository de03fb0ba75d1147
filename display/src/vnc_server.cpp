#include "vnc_server.h"

#include "vnc_tls.h"

#include <atoll/display/keysym.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <rfb/rfb.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <set>

// rfbregion.h has no extern "C" of its own.
extern "C" {
#include <rfb/rfbregion.h>
}

// libvncserver 0.9.14 guards every screen's client list with one global mutex
// and re-initializes it (pthread_mutex_init) in rfbGetScreen, through this
// function: creating a second VM's screen would reset the lock while another
// VM's client threads hold it. This definition takes the place of the
// library's (rfbGetScreen calls it through the PLT) and leaves the mutex
// alone: a zero-initialized static mutex is already a valid one in glibc.
extern "C" void rfbClientListInit(rfbScreenInfoPtr screen) { screen->clientHead = nullptr; }

// Tight without JPEG (libvncserver 0.9.14, TurboVNC's encoder) serves a
// client's compression level 2 as level 1 and cuts a rectangle into pieces of
// at most 65536 pixels counted from the rectangle's own top row: 800x81 on an
// 800-wide screen. A piece with more than 256 colours goes out as 24-bit
// pixels through zlib level 1 (about a byte per 16 flat pixels of each row),
// one with at most 256 as 8-bit palette indices, far smaller. An 81-row piece
// of a screen of 16x16 tiles (screens are drawn on a 16-row grid: tiles, text
// rows, window edges) straddles six rows of tiles: 300 colours on 800x600.
// So this definition takes the place of the library's (rfbSendFramebufferUpdate
// calls it through the PLT) and hands it strips of at most 16 rows on that
// grid: fewer colours per piece, and index rows that repeat from strip to
// strip, which zlib level 1 finds. On bench/display's frames: 32 KiB per
// frame with the library's pieces, 20 KiB with 80-row strips on the grid,
// 15 KiB with 16-row strips (QEMU 7.2's Tight, 6144-pixel pieces: 15 KiB),
// at the same frame rate. Only when the library announces no rectangle count
// for this rectangle (LastRect taken and at least 4096 pixels, as in its
// rfbNumCodedRectsTight), so the cut changes no count, and only without JPEG.
extern "C" rfbBool rfbSendRectEncodingTight(rfbClientPtr client, int x, int y, int w, int h) {
    using Encoder = rfbBool (*)(rfbClientPtr, int, int, int, int);
    static const auto library = reinterpret_cast<Encoder>(dlsym(RTLD_NEXT, "rfbSendRectEncodingTight"));
    if (!library) return FALSE;
    constexpr int kGrid = 16, kMinUncountedPixels = 4096;
    if (!client->enableLastRectEncoding || client->turboQualityLevel != -1 || w * h < kMinUncountedPixels ||
        h <= kGrid)
        return library(client, x, y, w, h);
    for (int top = y; top < y + h;) {
        const int bottom = std::min(y + h, (top / kGrid + 1) * kGrid);
        if (!library(client, x, top, w, bottom - top)) return FALSE;
        top = bottom;
    }
    return TRUE;
}

// Exported by libvncserver 0.9.14 but missing from its headers: iterates
// clients that are closing too (their output thread may still be encoding).
extern "C" rfbClientIteratorPtr rfbGetClientIteratorWithClosed(rfbScreenInfoPtr screen);

namespace atl::display {

namespace {

bool vnc_verbose = false;

void vnc_log(const char* format, ...) {
    if (!vnc_verbose) return;
    char line[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(line, sizeof line, format, arguments);
    va_end(arguments);
    fprintf(stderr, "atoll-display: vnc: %s", line);
}

void vnc_error(const char* format, ...) {
    char line[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(line, sizeof line, format, arguments);
    va_end(arguments);
    // The VeNCrypt relay hands libvncserver a socketpair, which has no Nagle to turn off.
    if (strstr(line, "TCP_NODELAY")) return;
    fprintf(stderr, "atoll-display: vnc: %s", line);
}

// Binds a listening TCP socket on the first address `host` resolves to.
// Sets `in_use` when the port is taken.
Result<int> listen_tcp(const std::string& host, uint16_t port, bool& in_use, std::string& bound_host) {
    in_use = false;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int failed = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); failed != 0)
        return make_error("VNC listen address \"" + host + "\": " + gai_strerror(failed));
    const addrinfo address = *found;
    const int fd = socket(address.ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(found);
        return make_error(std::string("VNC socket: ") + strerror(errno));
    }
    const int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // "::" serves IPv4 too.
    if (address.ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    const bool bound = bind(fd, address.ai_addr, address.ai_addrlen) == 0;
    const int bind_errno = errno;
    char numeric[NI_MAXHOST] = "";
    getnameinfo(address.ai_addr, address.ai_addrlen, numeric, sizeof numeric, nullptr, 0, NI_NUMERICHOST);
    freeaddrinfo(found);
    if (!bound || listen(fd, 8) != 0) {
        const int why = bound ? errno : bind_errno;
        close(fd);
        in_use = why == EADDRINUSE;
        return make_error("VNC " + std::string(numeric) + " port " + service + ": " + strerror(why));
    }
    bound_host = numeric;
    return fd;
}

// A guest cursor as libvncserver's rich cursor: pixels in the server's
// format (B, G, R, X bytes, as XRGB8888), a mask from alpha, and a
// two-colour bitmap for clients that only take X-style cursors.
rfbCursor* make_cursor(const CursorImage& image) {
    const int width = static_cast<int>(image.width), height = static_cast<int>(image.height);
    const int row_bytes = (width + 7) / 8;
    auto* cursor = static_cast<rfbCursor*>(calloc(1, sizeof(rfbCursor)));
    auto* rich = static_cast<unsigned char*>(calloc(static_cast<size_t>(width) * height, 4));
    auto* mask = static_cast<unsigned char*>(calloc(static_cast<size_t>(row_bytes) * height, 1));
    auto* source = static_cast<unsigned char*>(calloc(static_cast<size_t>(row_bytes) * height, 1));
    if (!cursor || !rich || !mask || !source) {
        free(cursor);
        free(rich);
        free(mask);
        free(source);
        return nullptr;
    }
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            const uint32_t argb = image.argb[static_cast<size_t>(y) * width + x];
            unsigned char* pixel = rich + (static_cast<size_t>(y) * width + x) * 4;
            pixel[0] = static_cast<unsigned char>(argb);        // B
            pixel[1] = static_cast<unsigned char>(argb >> 8);   // G
            pixel[2] = static_cast<unsigned char>(argb >> 16);  // R
            const unsigned char bit = static_cast<unsigned char>(0x80 >> (x % 8));
            if ((argb >> 24) >= 0x80) mask[y * row_bytes + x / 8] |= bit;
            const unsigned luminance = ((argb >> 16 & 0xff) * 3 + (argb >> 8 & 0xff) * 6 + (argb & 0xff)) / 10;
            if (luminance >= 0x80) source[y * row_bytes + x / 8] |= bit;
        }
    }
    cursor->width = static_cast<unsigned short>(width);
    cursor->height = static_cast<unsigned short>(height);
    cursor->xhot = static_cast<unsigned short>(image.hot_x);
    cursor->yhot = static_cast<unsigned short>(image.hot_y);
    cursor->richSource = rich;
    cursor->mask = mask;
    cursor->source = source;
    cursor->foreRed = cursor->foreGreen = cursor->foreBlue = 0xffff;
    return cursor;
}

void free_cursor(rfbCursor* cursor) {
    if (!cursor) return;
    free(cursor->richSource);
    free(cursor->mask);
    free(cursor->source);
    free(cursor);
}

// Clients with a reference held and their send lock taken: while held, no
// encoder runs and no client can be freed.
class ClientsLocked {
public:
    explicit ClientsLocked(rfbScreenInfoPtr screen) {
        rfbClientIteratorPtr iterator = rfbGetClientIteratorWithClosed(screen);
        while (rfbClientPtr client = rfbClientIteratorNext(iterator)) {
            rfbIncrClientRef(client);
            clients_.push_back(client);
        }
        rfbReleaseClientIterator(iterator);
        for (rfbClientPtr client : clients_) LOCK(client->sendMutex);
    }
    ~ClientsLocked() {
        for (rfbClientPtr client : clients_) {
            UNLOCK(client->sendMutex);
            rfbDecrClientRef(client);
        }
    }
    const std::vector<rfbClientPtr>& clients() const { return clients_; }

private:
    std::vector<rfbClientPtr> clients_;
};

}  // namespace

void initialize_vnc(bool verbose) {
    vnc_verbose = verbose;
    rfbLog = vnc_log;
    rfbErr = vnc_error;
    // libvncserver creates its extension-list mutex on first use, unlocked:
    // two VMs' first clients arriving at once would both create it. First
    // use happens here, before any VNC thread exists.
    rfbGetExtensionIterator();
    rfbReleaseExtensionIterator();
}

struct VncServer::Shared {
    std::shared_ptr<InputSink> input;
    std::string name;
    std::atomic<int> width{kPlaceholderWidth}, height{kPlaceholderHeight};
    std::mutex mutex;
    std::condition_variable clients_gone;
    int live_clients = 0;
};

struct VncServer::TlsSession {
    std::thread thread;
    std::atomic<bool> done{false};
};

struct VncServer::ClientState {
    std::shared_ptr<Shared> shared;
    std::chrono::steady_clock::time_point connected_at = std::chrono::steady_clock::now();
    int last_mask = 0;
    uint32_t last_x = UINT32_MAX, last_y = UINT32_MAX, last_buttons = 0;
    std::set<uint16_t> pressed;
};

struct VncCallbacks {
    static VncServer& server_of(rfbClientPtr client) { return *static_cast<VncServer*>(client->screen->screenData); }
    // clientData is published by new_client() on the accepting thread while
    // the client is already on the screen's list, where the accept thread's
    // handshake check may read it: atomic on both sides.
    static VncServer::ClientState* state_of(rfbClientPtr client) {
        return static_cast<VncServer::ClientState*>(__atomic_load_n(&client->clientData, __ATOMIC_ACQUIRE));
    }
    static void set_state(rfbClientPtr client, VncServer::ClientState* state) {
        __atomic_store_n(&client->clientData, static_cast<void*>(state), __ATOMIC_RELEASE);
    }

    // On the thread that accepted the connection, before the client's threads start.
    static enum rfbNewClientAction new_client(rfbClientPtr client) {
        const auto& shared = server_of(client).shared_;
        {
            std::lock_guard lock(shared->mutex);
            if (shared->live_clients >= VncServer::kMaxClients) {
                vnc_error("%s: refusing a VNC client: %d already connected\n", shared->name.c_str(),
                          VncServer::kMaxClients);
                return RFB_CLIENT_REFUSE;
            }
            ++shared->live_clients;
        }
        auto* state = new VncServer::ClientState;
        state->shared = shared;
        set_state(client, state);
        client->clientGoneHook = client_gone;
        return RFB_CLIENT_ACCEPT;
    }

    // On the client's input thread as it ends: the guest must not keep keys
    // or buttons this viewer held down.
    static void client_gone(rfbClientPtr client) {
        auto* state = state_of(client);
        if (!state) return;
        const std::shared_ptr<VncServer::Shared> shared = std::move(state->shared);
        for (uint16_t code : state->pressed) shared->input->key(code, false);
        if (state->last_buttons != 0) shared->input->pointer(state->last_x, state->last_y, 0);
        set_state(client, nullptr);
        delete state;
        // libvncserver never joins a client thread that ends on its own.
        if (pthread_equal(pthread_self(), client->client_thread)) pthread_detach(pthread_self());
        std::lock_guard lock(shared->mutex);
        --shared->live_clients;
        shared->clients_gone.notify_all();
    }

    static void key_event(rfbBool down, rfbKeySym keysym, rfbClientPtr client) {
        auto* state = state_of(client);
        if (!state || client->viewOnly) return;
        const uint16_t code = linux_key_from_keysym(keysym);
        if (code == 0) return;
        if (down) state->pressed.insert(code);
        else state->pressed.erase(code);
        state->shared->input->key(code, down != 0);
    }

    // RFC 6143 7.5.5: mask bit 0 left, 1 middle, 2 right, 3 and 4 wheel up
    // and down (one step per press).
    static void pointer_event(int mask, int x, int y, rfbClientPtr client) {
        auto* state = state_of(client);
        if (state && !client->viewOnly) {
            VncServer::Shared& shared = *state->shared;
            const int width = shared.width.load(), height = shared.height.load();
            const auto scale = [](int value, int size) -> uint32_t {
                if (size <= 1) return 0;
                value = std::clamp(value, 0, size - 1);
                return static_cast<uint32_t>(static_cast<uint64_t>(value) * link::kPointerMax / (size - 1));
            };
            const uint32_t abs_x = scale(x, width), abs_y = scale(y, height);
            const uint32_t buttons = ((mask & 1) ? link::kButtonLeft : 0) | ((mask & 4) ? link::kButtonRight : 0) |
                                     ((mask & 2) ? link::kButtonMiddle : 0);
            const int pressed_now = mask & ~state->last_mask;
            if (abs_x != state->last_x || abs_y != state->last_y || buttons != state->last_buttons)
                shared.input->pointer(abs_x, abs_y, buttons);
            if (pressed_now & 8) shared.input->wheel(1);
            if (pressed_now & 16) shared.input->wheel(-1);
            state->last_mask = mask;
            state->last_x = abs_x;
            state->last_y = abs_y;
            state->last_buttons = buttons;
        }
        // Keeps the screen's pointer position for other clients' PointerPos.
        rfbDefaultPtrAddEvent(mask, x, y, client);
    }

    // Under the client's send lock, which replace_cursor() holds while swapping.
    static rfbCursorPtr cursor_for(rfbClientPtr client) { return server_of(client).cursor_; }
    static rfbCursorPtr no_cursor(rfbClientPtr) { return nullptr; }

    // ExtendedDesktopSize (RFB community extension): asked of the guest; the
    // new size reaches the client when the guest's new surface does.
    static int set_desktop_size(int width, int height, int, rfbExtDesktopScreen*, rfbClientPtr client) {
        auto* state = state_of(client);
        if (!state || client->viewOnly) return rfbExtDesktopSize_ResizeProhibited;
        if (width < static_cast<int>(link::kMinResizeSide) || width > static_cast<int>(link::kMaxResizeSide) ||
            height < static_cast<int>(link::kMinResizeSide) || height > static_cast<int>(link::kMaxResizeSide))
            return rfbExtDesktopSize_InvalidScreenLayout;
        state->shared->input->resize(0, static_cast<uint32_t>(width), static_cast<uint32_t>(height));
        return rfbExtDesktopSize_Success;
    }
};

VncServer::VncServer(std::shared_ptr<InputSink> input, std::string desktop_name)
    : shared_(std::make_shared<Shared>()), desktop_name_(std::move(desktop_name)) {
    shared_->input = std::move(input);
    shared_->name = desktop_name_;
}

Result<std::unique_ptr<VncServer>> VncServer::start(const VncOptions& options, std::shared_ptr<InputSink> input) {
    std::unique_ptr<VncServer> server(new VncServer(std::move(input), options.desktop_name));

    std::string last_error = "VNC: no port to listen on";
    for (uint16_t port : options.ports) {
        bool in_use = false;
        std::string host;
        auto fd = listen_tcp(options.listen_address, port, in_use, host);
        if (fd) {
            server->listen_fd_ = *fd;
            server->address_.host = host;
            server->address_.port = port;
            break;
        }
        last_error = fd.error().message;
        if (!in_use) return fd.error();
    }
    if (server->listen_fd_ < 0) return make_error(last_error);
    server->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    server->tls_ = options.tls;
    server->address_.tls = options.tls != nullptr;
    server->address_.password = !options.password.empty();

    int argc = 0;
    rfbScreenInfoPtr screen = rfbGetScreen(&argc, nullptr, kPlaceholderWidth, kPlaceholderHeight, 8, 3, 4);
    if (!screen) return make_error("VNC: libvncserver could not create a screen");
    server->screen_ = screen;
    server->placeholder_.assign(size_t{kPlaceholderWidth} * kPlaceholderHeight * 4, 0);
    screen->frameBuffer = server->placeholder_.data();
    // XRGB8888 in memory: B, G, R, X.
    screen->serverFormat.redShift = 16;
    screen->serverFormat.greenShift = 8;
    screen->serverFormat.blueShift = 0;
    screen->screenData = server.get();
    screen->desktopName = server->desktop_name_.c_str();
    // Connections are accepted by accept_loop(), not by libvncserver.
    screen->port = 0;
    screen->ipv6port = 0;
    screen->autoPort = FALSE;
    screen->alwaysShared = TRUE;  // several viewers at once, none evicts another
    screen->maxClientWait = 10000;
    // No cursor is ever drawn into the (read-only) framebuffer: libvncserver
    // draws screen->cursor for clients without cursor-shape support, so it
    // stays null; clients with support get the shape from getCursorPtr.
    screen->cursor = nullptr;
    screen->getCursorPtr = VncCallbacks::cursor_for;
    screen->newClientHook = VncCallbacks::new_client;
    screen->kbdAddEvent = VncCallbacks::key_event;
    screen->ptrAddEvent = VncCallbacks::pointer_event;
    screen->setDesktopSizeHook = VncCallbacks::set_desktop_size;
    if (!options.password.empty()) {
        server->password_ = options.password;
        server->password_list_ = {server->password_.data(), nullptr};
        screen->authPasswdData = server->password_list_.data();
        screen->passwordCheck = rfbCheckPasswordByList;
        screen->authPasswdFirstViewOnly = 1;  // the one password gives full access
    }
    rfbInitServer(screen);
    // Threaded mode: a thread pair per client; the listener has no socket.
    rfbRunEventLoop(screen, -1, TRUE);

    server->worker_ = std::thread([raw = server.get()] { raw->run_worker(); });
    server->acceptor_ = std::thread([raw = server.get()] { raw->accept_loop(); });
    return server;
}

VncServer::~VncServer() {
    // 1. No new clients: stop accepting and end the VeNCrypt relays (their
    //    inner sockets close, so libvncserver sees those clients leave).
    const uint64_t one = 1;
    if (stop_fd_ >= 0) [[maybe_unused]] ssize_t written = write(stop_fd_, &one, sizeof one);
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& session : tls_sessions_) session->thread.join();
    if (!screen_) {  // start() failed half-way
        if (listen_fd_ >= 0) close(listen_fd_);
        if (stop_fd_ >= 0) close(stop_fd_);
        return;
    }
    // 2. Hang up on every client; shutdown() also wakes a thread blocked on a
    //    slow viewer's socket.
    {
        rfbClientIteratorPtr iterator = rfbGetClientIteratorWithClosed(screen_);
        while (rfbClientPtr client = rfbClientIteratorNext(iterator)) {
            if (client->sock != RFB_INVALID_SOCKET) shutdown(client->sock, SHUT_RDWR);
            rfbCloseClient(client);
        }
        rfbReleaseClientIterator(iterator);
    }
    // 3. The worker may wait for a send lock; it gets it now.
    {
        std::lock_guard lock(tasks_mutex_);
        stopping_ = true;
    }
    tasks_ready_.notify_all();
    if (worker_.joinable()) worker_.join();
    // 4. Client threads end (they were detached; count them out).
    bool clients_left;
    {
        std::unique_lock lock(shared_->mutex);
        shared_->clients_gone.wait_for(lock, std::chrono::seconds(30), [this] { return shared_->live_clients == 0; });
        clients_left = shared_->live_clients != 0;
    }
    if (clients_left) {
        vnc_error("%s: VNC clients did not end; their screen is left behind\n", desktop_name_.c_str());
        screen_->getCursorPtr = VncCallbacks::no_cursor;
        cursor_ = nullptr;  // leaked with the screen
    }
    // 5. Stops libvncserver's listener thread. A client thread that just
    //    counted itself out may still touch the screen for a moment while it
    //    frees its record, so the screen itself is freed a little later.
    rfbShutdownServer(screen_, FALSE);
    rfbScreenInfoPtr screen = screen_;
    rfbCursor* cursor = cursor_;
    auto surface = std::move(shown_);
    auto placeholder = std::make_shared<std::vector<char>>(std::move(placeholder_));
    auto password = std::make_shared<std::pair<std::string, std::vector<char*>>>(std::move(password_),
                                                                                  std::move(password_list_));
    std::thread([screen, cursor, surface, placeholder, password, clients_left] {
        // A client stuck past the wait above keeps the screen forever.
        if (clients_left) return;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        rfbScreenCleanup(screen);
        free_cursor(cursor);
    }).detach();
    if (listen_fd_ >= 0) close(listen_fd_);
    if (stop_fd_ >= 0) close(stop_fd_);
}

void VncServer::accept_loop() {
    for (;;) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        const int ready = poll(fds, 2, kHandshakeCheckMs);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents) return;
        close_stalled_handshakes();
        if (!(fds[0].revents & POLLIN)) continue;
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        // libvncserver's threads select() on client sockets.
        if (fd >= FD_SETSIZE) {
            vnc_error("%s: refusing a VNC client: descriptor %d beyond select()'s limit\n", desktop_name_.c_str(), fd);
            close(fd);
            continue;
        }
        if (tls_) {
            std::erase_if(tls_sessions_, [](const std::unique_ptr<TlsSession>& session) {
                if (!session->done) return false;
                session->thread.join();
                return true;
            });
            // Each handshake has a thread (and at most 10 s per step).
            if (tls_sessions_.size() >= kMaxClients) {
                close(fd);
                continue;
            }
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto session = std::make_unique<TlsSession>();
            TlsSession* raw = session.get();
            session->thread = std::thread([this, fd, raw] {
                run_vencrypt_session(fd, *tls_, !password_.empty(), stop_fd_,
                                     [this](int inner) { adopt_client(inner); });
                raw->done = true;
            });
            tls_sessions_.push_back(std::move(session));
        } else {
            adopt_client(fd);
        }
    }
}

// A client that has not finished the RFB handshake (version, security,
// initialisation) in time is closed, so idle connections cannot take the
// VM's client slots.
void VncServer::close_stalled_handshakes() {
    const auto now = std::chrono::steady_clock::now();
    rfbClientIteratorPtr iterator = rfbGetClientIterator(screen_);
    // The iterator's reference keeps each client, and its state, alive.
    while (rfbClientPtr client = rfbClientIteratorNext(iterator)) {
        auto* state = VncCallbacks::state_of(client);
        // client->state is libvncserver's, written by the client's thread.
        const int phase = __atomic_load_n(&client->state, __ATOMIC_RELAXED);
        if (state && phase != _rfbClientRec::RFB_NORMAL && now - state->connected_at > kHandshakeTimeout) {
            vnc_error("%s: closing a VNC client that did not finish its handshake\n", desktop_name_.c_str());
            if (client->sock != RFB_INVALID_SOCKET) shutdown(client->sock, SHUT_RDWR);
            rfbCloseClient(client);
        }
    }
    rfbReleaseClientIterator(iterator);
}

void VncServer::adopt_client(int fd) {
    rfbClientPtr client = rfbNewClient(screen_, fd);
    if (client && !client->onHold) rfbStartOnHoldClient(client);
}

void VncServer::post(std::function<void()> task) {
    {
        std::lock_guard lock(tasks_mutex_);
        if (stopping_) return;
        tasks_.push_back(std::move(task));
    }
    tasks_ready_.notify_one();
}

void VncServer::run_worker() {
    for (;;) {
        std::deque<std::function<void()>> batch;
        bool full_damage = false;
        {
            std::unique_lock lock(tasks_mutex_);
            tasks_ready_.wait(lock, [this] { return stopping_ || !tasks_.empty() || full_damage_pending_; });
            if (stopping_) return;
            batch.swap(tasks_);
            full_damage = full_damage_pending_;
            full_damage_pending_ = false;
        }
        for (auto& task : batch) task();
        if (full_damage) rfbMarkRectAsModified(screen_, 0, 0, screen_->width, screen_->height);
    }
}

void VncServer::surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) {
    if (scanout != 0) return;
    post([this, surface] { show(surface); });
}

void VncServer::damaged(uint32_t scanout, const std::vector<link::Rect>& rects) {
    if (scanout != 0) return;
    {
        std::lock_guard lock(tasks_mutex_);
        if (stopping_) return;
        // A worker stuck behind a slow viewer: repaint everything once
        // rather than queue without bound.
        if (tasks_.size() >= 1024) {
            full_damage_pending_ = true;
        } else {
            tasks_.push_back([this, rects] {
                for (const auto& rect : rects)
                    rfbMarkRectAsModified(screen_, static_cast<int>(rect.x), static_cast<int>(rect.y),
                                          static_cast<int>(rect.x + rect.width),
                                          static_cast<int>(rect.y + rect.height));
            });
        }
    }
    tasks_ready_.notify_one();
}

void VncServer::cursor_changed(uint32_t scanout, const CursorState& cursor, bool shape_changed) {
    if (scanout != 0) return;
    std::shared_ptr<const CursorImage> image = cursor.visible ? cursor.image : nullptr;
    // Position-only updates change nothing a VNC client draws.
    if (!shape_changed && (image != nullptr) == cursor_shown_) return;
    cursor_shown_ = image != nullptr;
    post([this, image] { replace_cursor(image ? make_cursor(*image) : nullptr); });
}

void VncServer::show(const std::shared_ptr<SurfaceMapping>& surface) {
    char* pixels;
    int width, height, stride;
    std::vector<char> black;
    if (surface) {
        // libvncserver never writes it: no cursor is drawn into the framebuffer.
        pixels = const_cast<char*>(reinterpret_cast<const char*>(surface->pixels()));
        width = static_cast<int>(surface->width());
        height = static_cast<int>(surface->height());
        stride = static_cast<int>(surface->stride());
    } else {
        // Disabled: black, at the size last shown. (A new buffer: the
        // current one may be the placeholder that encoders are reading.)
        width = screen_->width;
        height = screen_->height;
        stride = width * 4;
        black.assign(static_cast<size_t>(stride) * height, 0);
        pixels = black.data();
    }
    {
        ClientsLocked locked(screen_);
        const bool resized = width != screen_->width || height != screen_->height;
        screen_->frameBuffer = pixels;
        screen_->width = width;
        screen_->height = height;
        screen_->paddedWidthInBytes = stride;
        LOCK(screen_->cursorMutex);
        screen_->cursorX = std::min(screen_->cursorX, width - 1);
        screen_->cursorY = std::min(screen_->cursorY, height - 1);
        UNLOCK(screen_->cursorMutex);
        for (rfbClientPtr client : locked.clients()) {
            // A client that cannot follow a size change (no DesktopSize
            // pseudo-encoding, RFC 6143 7.8.2) or that scales the screen on
            // the server side is disconnected rather than shown wrong pixels.
            if (resized && (!client->useNewFBSize || client->scaledScreen != screen_)) {
                rfbCloseClient(client);
                continue;
            }
            LOCK(client->updateMutex);
            sraRgnDestroy(client->modifiedRegion);
            client->modifiedRegion = sraRgnCreateRect(0, 0, width, height);
            sraRgnMakeEmpty(client->copyRegion);
            client->copyDX = client->copyDY = 0;
            if (resized) client->newFBSizePending = TRUE;
            TSIGNAL(client->updateCond);
            UNLOCK(client->updateMutex);
        }
        shared_->width = width;
        shared_->height = height;
    }
    // The previous surface (or placeholder) is freed here, after no encoder can read it.
    if (!surface) placeholder_.swap(black);
    shown_ = surface;
}

void VncServer::replace_cursor(rfbCursor* cursor) {
    rfbCursor* previous;
    {
        ClientsLocked locked(screen_);
        previous = cursor_;
        cursor_ = cursor;
        for (rfbClientPtr client : locked.clients()) {
            LOCK(client->updateMutex);
            client->cursorWasChanged = TRUE;
            TSIGNAL(client->updateCond);
            UNLOCK(client->updateMutex);
        }
    }
    free_cursor(previous);
}

}  // namespace atl::display
