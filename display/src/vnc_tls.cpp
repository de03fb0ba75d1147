#include "vnc_tls.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace atl::display {

namespace {

// RFC 6143 7.1.2 and the VeNCrypt extension (security type 19).
constexpr uint8_t kSecurityNone = 1;
constexpr uint8_t kSecurityVncAuth = 2;
constexpr uint8_t kSecurityVeNCrypt = 19;
constexpr uint32_t kVeNCryptX509None = 260;
constexpr uint32_t kVeNCryptX509Vnc = 261;
constexpr char kRfb38[] = "RFB 003.008\n";
constexpr int kHandshakeTimeoutMs = 10000;
constexpr size_t kRelayBufferLimit = 256 * 1024;

void log_session(const std::string& message) {
    fprintf(stderr, "atoll-display: vnc: VeNCrypt client: %s\n", message.c_str());
}

bool write_all(int fd, const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    while (size > 0) {
        const ssize_t written = send(fd, bytes, size, MSG_NOSIGNAL);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        bytes += written;
        size -= static_cast<size_t>(written);
    }
    return true;
}

bool read_exact(int fd, void* data, size_t size) {
    auto* bytes = static_cast<uint8_t*>(data);
    while (size > 0) {
        const ssize_t got = recv(fd, bytes, size, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        bytes += got;
        size -= static_cast<size_t>(got);
    }
    return true;
}

void set_timeouts(int fd, int milliseconds) {
    timeval timeout{milliseconds / 1000, (milliseconds % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

// Plain-text part, on the client's socket: the RFB version, security type
// VeNCrypt, its version and subtype.
bool negotiate_vencrypt(int fd, uint32_t subtype) {
    char version[12];
    if (!write_all(fd, kRfb38, 12) || !read_exact(fd, version, 12)) return false;
    // VeNCrypt needs the 3.7 security negotiation; 3.3 has none.
    if (memcmp(version, "RFB 003.007\n", 12) != 0 && memcmp(version, "RFB 003.008\n", 12) != 0) {
        log_session("protocol version other than 3.7 or 3.8");
        return false;
    }
    const uint8_t types[] = {1, kSecurityVeNCrypt};
    uint8_t chosen = 0;
    if (!write_all(fd, types, sizeof types) || !read_exact(fd, &chosen, 1) || chosen != kSecurityVeNCrypt) return false;
    const uint8_t our_version[] = {0, 2};
    uint8_t their_version[2];
    if (!write_all(fd, our_version, 2) || !read_exact(fd, their_version, 2)) return false;
    if (their_version[0] != 0 || their_version[1] != 2) {
        const uint8_t refused = 0xff;
        write_all(fd, &refused, 1);
        log_session("VeNCrypt version other than 0.2");
        return false;
    }
    const uint8_t accepted = 0;
    const uint8_t subtypes[] = {1, static_cast<uint8_t>(subtype >> 24), static_cast<uint8_t>(subtype >> 16),
                                static_cast<uint8_t>(subtype >> 8), static_cast<uint8_t>(subtype)};
    uint8_t picked[4];
    if (!write_all(fd, &accepted, 1) || !write_all(fd, subtypes, sizeof subtypes) || !read_exact(fd, picked, 4))
        return false;
    const uint32_t picked_subtype = uint32_t{picked[0]} << 24 | uint32_t{picked[1]} << 16 |
                                    uint32_t{picked[2]} << 8 | picked[3];
    const uint8_t ack = picked_subtype == subtype ? 1 : 0;
    if (!write_all(fd, &ack, 1) || !ack) return false;
    return true;
}

// Inner part, on libvncserver's end: RFB 3.8 and the security type that
// matches the VeNCrypt subtype, so that what follows (SecurityResult, or the
// VNC challenge) is what the client expects after the TLS handshake.
bool negotiate_inner(int fd, bool vnc_password) {
    char version[12];
    if (!read_exact(fd, version, 12) || !write_all(fd, kRfb38, 12)) return false;
    uint8_t count = 0;
    uint8_t types[255];
    if (!read_exact(fd, &count, 1) || count == 0 || !read_exact(fd, types, count)) return false;
    const uint8_t wanted = vnc_password ? kSecurityVncAuth : kSecurityNone;
    if (std::find(types, types + count, wanted) == types + count) return false;
    return write_all(fd, &wanted, 1);
}

class Relay {
public:
    Relay(gnutls_session_t session, int tls_fd, int inner_fd, int stop_fd)
        : session_(session), tls_fd_(tls_fd), inner_fd_(inner_fd), stop_fd_(stop_fd) {}

    void run() {
        std::vector<uint8_t> chunk(16 * 1024);
        for (;;) {
            const bool tls_pending = gnutls_record_check_pending(session_) > 0;
            const bool want_tls_read = from_client_.size() < kRelayBufferLimit;
            const bool want_inner_read = to_client_.size() < kRelayBufferLimit;
            const short tls_events = (want_tls_read ? POLLIN : 0) | (send_blocked_ ? POLLOUT : 0);
            const short inner_events = (want_inner_read ? POLLIN : 0) | (!from_client_.empty() ? POLLOUT : 0);
            pollfd fds[3] = {{tls_fd_, tls_events, 0}, {inner_fd_, inner_events, 0}, {stop_fd_, POLLIN, 0}};
            if (poll(fds, 3, tls_pending && want_tls_read ? 0 : -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (fds[2].revents) return;
            if (want_tls_read && (tls_pending || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))) {
                const ssize_t got = gnutls_record_recv(session_, chunk.data(), chunk.size());
                if (got == 0) return;
                if (got > 0) from_client_.insert(from_client_.end(), chunk.begin(), chunk.begin() + got);
                else if (got != GNUTLS_E_AGAIN && got != GNUTLS_E_INTERRUPTED) return;
            }
            if (!from_client_.empty() && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
                const ssize_t written = send(inner_fd_, from_client_.data(), from_client_.size(), MSG_NOSIGNAL);
                if (written < 0 && errno != EAGAIN && errno != EINTR) return;
                if (written > 0) from_client_.erase(from_client_.begin(), from_client_.begin() + written);
            }
            if (want_inner_read && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                const ssize_t got = recv(inner_fd_, chunk.data(), chunk.size(), 0);
                if (got == 0) return;
                if (got < 0 && errno != EAGAIN && errno != EINTR) return;
                if (got > 0) to_client_.insert(to_client_.end(), chunk.begin(), chunk.begin() + got);
            }
            if (!flush_to_client()) return;
        }
    }

private:
    // GnuTLS wants a send interrupted by EAGAIN repeated with the same data.
    bool flush_to_client() {
        while (!to_client_.empty()) {
            const size_t size = send_blocked_ ? blocked_size_ : std::min<size_t>(to_client_.size(), 16 * 1024);
            const ssize_t sent = gnutls_record_send(session_, to_client_.data(), size);
            if (sent == GNUTLS_E_AGAIN || sent == GNUTLS_E_INTERRUPTED) {
                send_blocked_ = true;
                blocked_size_ = size;
                return true;
            }
            if (sent < 0) return false;
            send_blocked_ = false;
            to_client_.erase(to_client_.begin(), to_client_.begin() + sent);
        }
        return true;
    }

    gnutls_session_t session_;
    int tls_fd_, inner_fd_, stop_fd_;
    std::vector<uint8_t> from_client_, to_client_;
    bool send_blocked_ = false;
    size_t blocked_size_ = 0;
};

}  // namespace

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::load(const std::string& cert_file, const std::string& key_file,
                                                             const std::string& client_ca_file) {
    std::shared_ptr<TlsCredentials> loaded(new TlsCredentials());
    gnutls_certificate_credentials_t credentials;
    if (gnutls_certificate_allocate_credentials(&credentials) < 0) return make_error("TLS: out of memory");
    loaded->credentials_ = credentials;
    int result = gnutls_certificate_set_x509_key_file(credentials, cert_file.c_str(), key_file.c_str(),
                                                      GNUTLS_X509_FMT_PEM);
    if (result < 0)
        return make_error("TLS certificate " + cert_file + " / key " + key_file + ": " + gnutls_strerror(result));
    gnutls_certificate_set_known_dh_params(credentials, GNUTLS_SEC_PARAM_MEDIUM);
    if (!client_ca_file.empty()) {
        result = gnutls_certificate_set_x509_trust_file(credentials, client_ca_file.c_str(), GNUTLS_X509_FMT_PEM);
        if (result <= 0)
            return make_error("TLS client CA " + client_ca_file + ": " +
                              (result < 0 ? gnutls_strerror(result) : "no certificate in the file"));
        loaded->verify_clients_ = true;
    }
    return loaded;
}

TlsCredentials::~TlsCredentials() {
    if (credentials_) gnutls_certificate_free_credentials(static_cast<gnutls_certificate_credentials_t>(credentials_));
}

void run_vencrypt_session(int fd, const TlsCredentials& credentials, bool vnc_password, int stop_fd,
                          const std::function<void(int inner_fd)>& adopt) {
    set_timeouts(fd, kHandshakeTimeoutMs);
    if (!negotiate_vencrypt(fd, vnc_password ? kVeNCryptX509Vnc : kVeNCryptX509None)) {
        close(fd);
        return;
    }
    gnutls_session_t session;
    if (gnutls_init(&session, GNUTLS_SERVER) < 0) {
        close(fd);
        return;
    }
    gnutls_set_default_priority(session);
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
                           static_cast<gnutls_certificate_credentials_t>(credentials.gnutls_credentials()));
    gnutls_certificate_server_set_request(session, credentials.verify_clients() ? GNUTLS_CERT_REQUIRE
                                                                               : GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(session, fd);
    gnutls_handshake_set_timeout(session, kHandshakeTimeoutMs);
    int result;
    do {
        result = gnutls_handshake(session);
    } while (result < 0 && !gnutls_error_is_fatal(result));
    bool ok = result >= 0;
    if (!ok) log_session(std::string("TLS handshake: ") + gnutls_strerror(result));
    if (ok && credentials.verify_clients()) {
        unsigned status = 0;
        if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
            log_session("client certificate not trusted");
            ok = false;
        }
    }
    int pair[2] = {-1, -1};
    if (ok && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) ok = false;
    if (ok && pair[0] >= FD_SETSIZE) {
        log_session("descriptor beyond select()'s limit");
        close(pair[0]);
        close(pair[1]);
        ok = false;
    }
    if (ok) {
        set_timeouts(pair[1], kHandshakeTimeoutMs);
        adopt(pair[0]);  // libvncserver owns it from here
        if (negotiate_inner(pair[1], vnc_password)) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(pair[1], F_SETFL, fcntl(pair[1], F_GETFL) | O_NONBLOCK);
            Relay(session, fd, pair[1], stop_fd).run();
            gnutls_bye(session, GNUTLS_SHUT_WR);
        }
        close(pair[1]);
    }
    gnutls_deinit(session);
    close(fd);
}

}  // namespace atl::display
