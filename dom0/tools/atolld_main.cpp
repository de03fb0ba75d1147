// atolld: the VM manager of dom0. Parses its command line and serves the
// D-Bus API until SIGTERM; everything else lives in the atoll_dom0 library.
#include <atoll/dom0/daemon.h>
#include <atoll/dom0/dbus_service.h>

#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace {

atl::dom0::DbusService* g_service = nullptr;

void on_signal(int) {
    if (g_service) g_service->stop();
}

std::string environment(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"atolld: the Atoll VM manager (D-Bus service org.atoll.Atoll1)"};
    bool session = false, no_autostart = false;
    std::string address, database, runtime_dir, vmm_path, display_socket, display_state_dir, pulse_server;
    std::vector<std::string> storage_dirs;
    unsigned start_timeout_seconds = 15;
    app.add_flag("--session", session, "serve the session bus (development, tests)");
    app.add_option("--bus-address", address, "serve the bus at this D-Bus address (a private bus)");
    app.add_option("--database", database, "the SQLite database (default /var/lib/atoll/atoll.db; "
                                           "session: $XDG_DATA_HOME/atoll/atoll.db)");
    app.add_option("--runtime-dir", runtime_dir, "sockets and logs of running VMs (default /run/atoll; "
                                                 "session: $XDG_RUNTIME_DIR/atoll)");
    app.add_option("--storage-dir", storage_dirs, "where kernels and disk images may live (repeatable; default "
                                                  "/var/lib/atoll/images; session: $XDG_DATA_HOME/atoll/images)");
    app.add_option("--vmm", vmm_path, "the atoll-vmm binary (default: ../hypervisor/atoll-vmm beside atolld in a "
                                      "build tree, else /usr/lib/atoll/atoll-vmm)");
    app.add_option("--display-socket", display_socket, "atoll-display's link socket, for VMs with a display "
                                                       "(default RUNTIME_DIR/display.sock)");
    app.add_option("--display-state-dir", display_state_dir, "where atoll-display keeps each VM's VNC address "
                                                             "(default RUNTIME_DIR/display)");
    app.add_option("--pulse-server", pulse_server, "PulseAudio server for VMs with \"audio\" that name none "
                                                   "(default: libpulse's own default)");
    app.add_option("--start-timeout", start_timeout_seconds, "seconds atoll-vmm gets to come up");
    app.add_flag("--no-autostart", no_autostart, "do not start the autostart VMs");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        if (error.get_exit_code() == 0) return app.exit(error);
        std::cerr << "atolld: " << error.what() << "\n";
        return 2;
    }
    if (session && !address.empty()) {
        std::cerr << "atolld: give --session or --bus-address, not both\n";
        return 2;
    }

    atl::dom0::BusOptions bus;
    if (session) bus.bus = atl::dom0::BusOptions::Bus::Session;
    if (!address.empty()) {
        bus.bus = atl::dom0::BusOptions::Bus::Address;
        bus.address = address;
    }
    const bool system = bus.bus == atl::dom0::BusOptions::Bus::System;
    const std::string home = environment("HOME", "/tmp");
    const std::string data_home = environment("XDG_DATA_HOME", home + "/.local/share") + "/atoll";
    atl::dom0::DaemonOptions options;
    options.database_path = !database.empty() ? database : system ? "/var/lib/atoll/atoll.db" : data_home + "/atoll.db";
    options.runtime_dir = !runtime_dir.empty() ? runtime_dir
                          : system           ? "/run/atoll"
                                             : environment("XDG_RUNTIME_DIR", "/tmp/atoll-" + std::to_string(getuid())) +
                                                   (std::getenv("XDG_RUNTIME_DIR") ? "/atoll" : "");
    options.storage_dirs = !storage_dirs.empty() ? storage_dirs
                           : system              ? std::vector<std::string>{"/var/lib/atoll/images"}
                                                 : std::vector<std::string>{data_home + "/images"};
    if (storage_dirs.empty()) {
        std::error_code ignored;  // the default place for images exists from the start
        std::filesystem::create_directories(options.storage_dirs.front(), ignored);
    }
    options.vmm_path = !vmm_path.empty() ? vmm_path : atl::dom0::default_vmm_path();
    options.display_socket = display_socket;  // empty: beside the VMs, where atoll-display listens by default
    options.display_state_dir = display_state_dir;
    options.audio_server = pulse_server;
    options.start_timeout = std::chrono::seconds(start_timeout_seconds);
    options.autostart = !no_autostart;

    signal(SIGPIPE, SIG_IGN);
    auto daemon = atl::dom0::Daemon::create(options);
    if (!daemon) {
        std::cerr << "atolld: " << daemon.error().message << "\n";
        return 1;
    }
    auto service = atl::dom0::DbusService::create(**daemon, bus);
    if (!service) {
        std::cerr << "atolld: " << service.error().message << "\n";
        return 1;
    }
    g_service = service->get();
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGHUP, &action, nullptr);

    std::cerr << "atolld: serving " << atl::dom0::kBusName << " (database " << options.database_path
              << ", runtime " << options.runtime_dir << ", atoll-vmm " << options.vmm_path << ")\n";
    (*daemon)->start_autostart_vms();
    auto served = (*service)->run();
    // Running VMs stay up: the next atolld re-adopts them.
    (*daemon)->stop_operations();
    g_service = nullptr;
    service->reset();
    daemon->reset();
    if (!served) {
        std::cerr << "atolld: " << served.error().message << "\n";
        return 1;
    }
    return 0;
}
