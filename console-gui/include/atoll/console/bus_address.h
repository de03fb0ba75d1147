// D-Bus addresses for the hosts the console shows: the local system or
// session bus, a given address, or a remote host's system bus through SSH.
#pragma once

#include <atoll/result.h>

#include <QString>

namespace atl::console {

// One host as the command line names it.
struct HostSpec {
    QString label;    // shown in the host list
    QString address;  // a D-Bus address, or "system" / "session"
};

// Escapes a value of a D-Bus address (D-Bus specification, "Server
// Addresses": bytes outside [-0-9A-Za-z_/.\*] are written as %XX).
QString escape_address_value(const QString& value);

// unixexec:path=ssh,argv1=-xT,argv2=HOST,argv3=systemd-stdio-bridge: the
// remote system bus, carried over SSH's standard input and output.
QString ssh_bus_address(const QString& ssh_host);

// "NAME=ssh-host" (or just "ssh-host", then NAME is the host) as --host takes it.
Result<HostSpec> parse_host_option(const QString& option);

}  // namespace atl::console
