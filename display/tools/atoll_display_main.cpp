// atoll-display: the display server. Parses options and runs the server of
// the atoll_display library until SIGINT or SIGTERM.
#include <atoll/display/server.h>

#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

namespace {

atl::Result<std::string> read_password_file(const std::string& path) {
    std::ifstream file(path);
    if (!file) return atl::make_error("--vnc-password-file " + path + ": cannot be read");
    std::string password;
    std::getline(file, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty()) return atl::make_error("--vnc-password-file " + path + ": the first line is empty");
    if (password.size() > 8)
        std::cerr << "atoll-display: VNC authentication uses only the first 8 bytes of the password\n";
    return password;
}

bool session_bus_available() {
    if (const char* address = getenv("DBUS_SESSION_BUS_ADDRESS"); address && *address) return true;
    const char* runtime = getenv("XDG_RUNTIME_DIR");
    struct stat status {};
    return runtime && stat((std::string(runtime) + "/bus").c_str(), &status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    using atl::display::ServerOptions;
    ServerOptions options;
    const std::string runtime = atl::display::default_runtime_dir();
    options.socket_path = runtime.empty() ? "" : runtime + "/display.sock";
    options.state_dir = runtime.empty() ? "" : runtime + "/display";

    CLI::App app{"atoll-display: serves VM displays (the atoll-vmm display link) over VNC and D-Bus"};
    app.add_option("--listen", options.socket_path, "Link socket atoll-vmm connects to")
        ->default_str(options.socket_path.empty() ? "$XDG_RUNTIME_DIR/atoll/display.sock" : options.socket_path);
    app.add_option("--state-dir", options.state_dir, "Where <vm>.json with each VM's VNC address is kept (\"\": none)")
        ->default_str(options.state_dir);
    bool no_vnc = false;
    app.add_flag("--no-vnc", no_vnc, "Serve no VNC");
    app.add_option("--listen-address", options.vnc_listen_address, "Address the VNC servers listen on")
        ->default_str(options.vnc_listen_address);
    app.add_option("--vnc-port-base", options.vnc_port_base, "First VNC port handed to VMs")->default_str("5900");
    app.add_option("--vnc-port-count", options.vnc_port_count, "How many ports from the base VMs may take")
        ->default_str("100");
    std::vector<std::string> fixed_ports;
    app.add_option("--vnc-port", fixed_ports, "NAME=PORT: a fixed VNC port for one VM (repeatable)");
    std::string password_file;
    app.add_option("--vnc-password-file", password_file, "VNC password: the first line of this file");
    app.add_option("--vnc-tls-cert", options.tls_cert_file, "PEM certificate: VNC only through VeNCrypt (TLS)");
    app.add_option("--vnc-tls-key", options.tls_key_file, "PEM private key of --vnc-tls-cert");
    app.add_option("--vnc-tls-client-ca", options.tls_client_ca_file,
                   "PEM CA: VeNCrypt clients must present a certificate it signed");
    std::string dbus = "auto";
    app.add_option("--dbus", dbus, "Local-viewer API bus: system, session, none or auto (system as root, "
                                   "else the session bus when there is one)")
        ->check(CLI::IsMember({"auto", "system", "session", "none"}))
        ->default_str("auto");
    app.add_flag("--verbose", options.verbose, "Log libvncserver's messages too");
    CLI11_PARSE(app, argc, argv);

    options.vnc = !no_vnc;
    if (options.socket_path.empty()) {
        std::cerr << "atoll-display: XDG_RUNTIME_DIR is not set: give the link socket with --listen PATH\n";
        return 2;
    }
    for (const auto& entry : fixed_ports) {
        const size_t equals = entry.rfind('=');
        int port = 0;
        try {
            port = equals == std::string::npos ? 0 : std::stoi(entry.substr(equals + 1));
        } catch (const std::exception&) {
        }
        if (equals == 0 || port <= 0 || port > 65535) {
            std::cerr << "atoll-display: --vnc-port \"" << entry << "\": use NAME=PORT\n";
            return 2;
        }
        options.vnc_ports[entry.substr(0, equals)] = static_cast<uint16_t>(port);
    }
    if (!password_file.empty()) {
        auto password = read_password_file(password_file);
        if (!password) {
            std::cerr << "atoll-display: " << password.error().message << '\n';
            return 2;
        }
        options.vnc_password = *password;
    }
    const bool dbus_auto = dbus == "auto";
    if (dbus == "system" || (dbus_auto && geteuid() == 0)) options.dbus = ServerOptions::Dbus::System;
    else if (dbus == "session" || (dbus_auto && session_bus_available())) options.dbus = ServerOptions::Dbus::Session;

    // libvncserver waits on client sockets with select(): descriptors must
    // stay below FD_SETSIZE, so the server never opens more than that.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur > FD_SETSIZE) {
        files.rlim_cur = FD_SETSIZE;
        setrlimit(RLIMIT_NOFILE, &files);
    }

    // Signals go to one thread that stops the server; every other thread
    // (libvncserver's, sdbus-c++'s) inherits the blocked mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto server = atl::display::Server::start(options);
    if (!server && dbus_auto && options.dbus != ServerOptions::Dbus::None) {
        std::cerr << "atoll-display: " << server.error().message << "; continuing without the D-Bus API\n";
        options.dbus = ServerOptions::Dbus::None;
        server = atl::display::Server::start(options);
    }
    if (!server) {
        std::cerr << "atoll-display: " << server.error().message << '\n';
        return 1;
    }
    std::thread([&signals, raw = server->get()] {
        int received = 0;
        sigwait(&signals, &received);
        raw->stop();
    }).detach();
    std::cerr << "atoll-display: serving display links on " << options.socket_path << '\n';
    (*server)->run();
    server->reset();
    return 0;
}
