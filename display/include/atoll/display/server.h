// atoll-display: serves every VM's display link (display/docs/display-protocol.md)
// and shows each VM through VNC and the local-viewer D-Bus API.
#pragma once

#include <atoll/result.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace atl::display {

struct ServerOptions {
    std::string socket_path;  // the link socket atoll-vmm connects to
    std::string state_dir;    // <vm>.json with each VM's VNC address; empty: none written

    bool vnc = true;
    std::string vnc_listen_address = "127.0.0.1";
    uint16_t vnc_port_base = 5900;
    uint16_t vnc_port_count = 100;             // VMs take free ports from base .. base + count - 1
    std::map<std::string, uint16_t> vnc_ports;  // fixed ports by VM name
    std::string vnc_password;                   // VNC authentication (its first 8 bytes count); empty: none
    std::string tls_cert_file, tls_key_file;    // both set: VNC only through VeNCrypt (X.509)
    std::string tls_client_ca_file;             // set: VeNCrypt clients need a certificate it signed

    enum class Dbus { None, Session, System };
    Dbus dbus = Dbus::None;

    bool verbose = false;
};

// "/run/atoll" as root, otherwise "$XDG_RUNTIME_DIR/atoll" (empty when unset).
std::string default_runtime_dir();

class Server {
public:
    // Binds the link socket, connects to D-Bus; fails with a message that
    // says what to fix.
    static Result<std::unique_ptr<Server>> start(const ServerOptions& options);
    ~Server();  // drops every link and removes the socket and state files

    void run();   // serves until stop()
    void stop();  // any thread

    struct Impl;

private:
    explicit Server(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace atl::display
