// atoll-console: the Qt console. Hosts come from the command line; without
// any, the local system bus (where atolld runs as a service).
#include <atoll/console/bus_address.h>
#include <atoll/console/host_connection.h>
#include <atoll/console/main_window.h>
#include <atoll/console/vm_list_model.h>

#include <QApplication>
#include <QCommandLineParser>
#include <QDBusConnection>
#include <QThread>

#include <cstdio>
#include <memory>
#include <unistd.h>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("atoll-console"));
    QApplication::setApplicationDisplayName(QStringLiteral("Atoll"));
    QApplication::setApplicationVersion(QStringLiteral(ATOLL_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("org.atoll.Console"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Manage Atoll virtual machines on this and other hosts."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption system({QStringLiteral("system")}, QStringLiteral("atolld on the system bus (default)."));
    const QCommandLineOption session({QStringLiteral("session")}, QStringLiteral("atolld on the session bus."));
    const QCommandLineOption bus_address({QStringLiteral("bus-address")},
                                         QStringLiteral("atolld on the bus at ADDR (repeatable)."), QStringLiteral("ADDR"));
    const QCommandLineOption host({QStringLiteral("host")},
                                  QStringLiteral("atolld on a remote host's system bus through ssh and "
                                                 "systemd-stdio-bridge (repeatable)."),
                                  QStringLiteral("NAME=SSH-HOST"));
    const QCommandLineOption display_bus({QStringLiteral("display-bus")},
                                         QStringLiteral("where atoll-display serves org.atoll.Display1: system, session "
                                                        "or an address (default: system as root, else session)."),
                                         QStringLiteral("BUS"));
    parser.addOptions({system, session, bus_address, host, display_bus});
    parser.process(app);

    QVector<atl::console::HostSpec> hosts;
    if (parser.isSet(system)) hosts.push_back({QStringLiteral("localhost"), QStringLiteral("system")});
    if (parser.isSet(session)) hosts.push_back({QStringLiteral("localhost (session)"), QStringLiteral("session")});
    int bus_number = 0;
    for (const QString& address : parser.values(bus_address))
        hosts.push_back({bus_number++ == 0 ? QStringLiteral("local") : QStringLiteral("local-%1").arg(bus_number), address});
    for (const QString& option : parser.values(host)) {
        auto spec = atl::console::parse_host_option(option);
        if (!spec) {
            std::fprintf(stderr, "atoll-console: %s\n", spec.error().message.c_str());
            return 2;
        }
        hosts.push_back(*spec);
    }
    if (hosts.isEmpty()) hosts.push_back({QStringLiteral("localhost"), QStringLiteral("system")});

    QString display = parser.value(display_bus);
    if (display.isEmpty())
        display = geteuid() == 0 || qEnvironmentVariableIsEmpty("DBUS_SESSION_BUS_ADDRESS") ? QStringLiteral("system")
                                                                                             : QStringLiteral("session");
    // Opened on a thread like the hosts' buses: the window never waits for a bus.
    atl::console::MainWindowOptions options;
    options.display_connection = QStringLiteral("atoll-display");
    std::unique_ptr<QThread> display_opener(QThread::create([display, name = options.display_connection] {
        if (display == QLatin1String("system")) QDBusConnection::connectToBus(QDBusConnection::SystemBus, name);
        else if (display == QLatin1String("session")) QDBusConnection::connectToBus(QDBusConnection::SessionBus, name);
        else QDBusConnection::connectToBus(display, name);
    }));
    display_opener->start();

    atl::console::VmListModel model;
    for (const auto& spec : hosts) {
        auto* connection = new atl::console::HostConnection(spec.label, spec.address, &app);
        model.add_host(connection);
        connection->open();
    }
    atl::console::MainWindow window(&model, options);
    window.show();
    const int status = QApplication::exec();
    display_opener->wait();  // a thread may not outlive the application
    return status;
}
