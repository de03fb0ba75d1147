#include <atoll/console/bus_address.h>

namespace atl::console {

QString escape_address_value(const QString& value) {
    static constexpr char kHex[] = "0123456789abcdef";
    QString escaped;
    for (const char byte : value.toUtf8()) {
        const auto c = static_cast<unsigned char>(byte);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                           c == '-' || c == '_' || c == '/' || c == '.' || c == '\\' || c == '*';
        if (plain) {
            escaped += QLatin1Char(static_cast<char>(c));
        } else {
            escaped += QLatin1Char('%');
            escaped += QLatin1Char(kHex[c >> 4]);
            escaped += QLatin1Char(kHex[c & 15]);
        }
    }
    return escaped;
}

QString ssh_bus_address(const QString& ssh_host) {
    // -x: no X11 forwarding, -T: no terminal (the stream carries D-Bus bytes).
    return QStringLiteral("unixexec:path=ssh,argv1=-xT,argv2=%1,argv3=systemd-stdio-bridge")
        .arg(escape_address_value(ssh_host));
}

Result<HostSpec> parse_host_option(const QString& option) {
    const qsizetype equals = option.indexOf(QLatin1Char('='));
    const QString label = equals < 0 ? option : option.left(equals);
    const QString host = equals < 0 ? option : option.mid(equals + 1);
    if (label.trimmed().isEmpty() || host.trimmed().isEmpty())
        return make_error("--host takes NAME=SSH-HOST (or SSH-HOST), got '" + option.toStdString() + "'");
    if (host.startsWith(QLatin1Char('-')))
        return make_error("--host: '" + host.toStdString() + "' is not a host name (it starts with '-')");
    return HostSpec{label, ssh_bus_address(host)};
}

}  // namespace atl::console
