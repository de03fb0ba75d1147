// VeNCrypt for the VNC servers.
//
// libvncserver 0.9.14 (Debian 12) has no server-side VeNCrypt: its GnuTLS
// code serves only WebSockets over TLS. So atoll-display answers the
// security handshake itself (RFC 6143 7.1, security type 19 "VeNCrypt",
// version 0.2, subtype X509None or X509Vnc), runs TLS with GnuTLS, and then
// relays the decrypted stream to libvncserver over a socketpair, on which it
// has already negotiated RFB 3.8 and the matching inner security type (None,
// or VNC authentication when a password is set). From there the two streams
// are one RFB session: the client sees the SecurityResult (and, with a
// password, the VNC challenge) that libvncserver sends.
#pragma once

#include <atoll/result.h>

#include <functional>
#include <memory>
#include <string>

namespace atl::display {

class TlsCredentials {
public:
    // PEM files. With `client_ca_file`, clients must present a certificate
    // that it signed.
    static Result<std::shared_ptr<TlsCredentials>> load(const std::string& cert_file, const std::string& key_file,
                                                        const std::string& client_ca_file);
    ~TlsCredentials();
    TlsCredentials(const TlsCredentials&) = delete;
    TlsCredentials& operator=(const TlsCredentials&) = delete;

    void* gnutls_credentials() const { return credentials_; }  // gnutls_certificate_credentials_t
    bool verify_clients() const { return verify_clients_; }

private:
    TlsCredentials() = default;
    void* credentials_ = nullptr;
    bool verify_clients_ = false;
};

// Serves one accepted TCP connection until either side closes or `stop_fd`
// becomes readable. `adopt` receives the inner socket libvncserver serves.
// Owns `fd`.
void run_vencrypt_session(int fd, const TlsCredentials& credentials, bool vnc_password, int stop_fd,
                          const std::function<void(int inner_fd)>& adopt);

}  // namespace atl::display
