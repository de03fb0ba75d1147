#include <atoll/console/host_connection.h>

#include <QDBusArgument>
#include <QDBusConnectionInterface>
#include <QDBusMessage>
#include <QDBusMetaType>
#include <QDBusObjectPath>
#include <QDBusPendingCallWatcher>
#include <QDBusPendingReply>
#include <QDBusServiceWatcher>
#include <QThread>

#include <atomic>

namespace atl::console {
namespace {

constexpr char kProperties[] = "org.freedesktop.DBus.Properties";
constexpr char kObjectManager[] = "org.freedesktop.DBus.ObjectManager";
const QString kService = QLatin1String(kAtollService);

QString next_connection_name() {
    static std::atomic<int> counter{0};
    return QStringLiteral("atoll-console-%1").arg(++counter);
}

// GetManagedObjects' a{oa{sa{sv}}}: the VM objects with their properties.
QVector<VmInfo> parse_managed_objects(const QDBusArgument& argument) {
    QVector<VmInfo> vms;
    argument.beginMap();
    while (!argument.atEnd()) {
        QDBusObjectPath path;
        argument.beginMapEntry();
        argument >> path;
        argument.beginMap();
        VmInfo vm;
        vm.path = path.path();
        bool is_vm = false;
        while (!argument.atEnd()) {
            QString interface;
            QVariantMap properties;
            argument.beginMapEntry();
            argument >> interface >> properties;
            argument.endMapEntry();
            if (interface == QLatin1String(kAtollVmInterface)) {
                apply_properties(vm, properties);
                is_vm = true;
            }
        }
        argument.endMap();
        argument.endMapEntry();
        if (is_vm) vms.push_back(vm);
    }
    argument.endMap();
    return vms;
}

}  // namespace

void on_reply(const QDBusPendingCall& call, QObject* context, std::function<void(const QDBusMessage&)> handler) {
    if (call.isFinished()) {
        QMetaObject::invokeMethod(context, [call, handler = std::move(handler)] { handler(call.reply()); },
                                  Qt::QueuedConnection);
        return;
    }
    auto* watcher = new QDBusPendingCallWatcher(call, context);
    QObject::connect(watcher, &QDBusPendingCallWatcher::finished, context,
                     [watcher, handler = std::move(handler)] {
                         watcher->deleteLater();
                         handler(watcher->reply());
                     });
}

QString describe_error(const QString& name, const QString& message) {
    if (name.startsWith(QLatin1String("org.atoll.Atoll1.Error.")) || name.startsWith(QLatin1String("org.atoll.Display1.Error.")))
        return message;
    if (name == QLatin1String("org.freedesktop.DBus.Error.ServiceUnknown") ||
        name == QLatin1String("org.freedesktop.DBus.Error.NameHasNoOwner"))
        return QObject::tr("atolld is not running on this bus.");
    if (name == QLatin1String("org.freedesktop.DBus.Error.NoReply") ||
        name == QLatin1String("org.freedesktop.DBus.Error.Timeout"))
        return QObject::tr("No answer in time (the operation may still be going on).");
    if (name == QLatin1String("org.freedesktop.DBus.Error.AccessDenied"))
        return QObject::tr("Not allowed by the bus policy (join the group 'atoll'): %1").arg(message);
    if (name == QLatin1String("org.freedesktop.DBus.Error.Disconnected"))
        return QObject::tr("The connection to the host is gone.");
    return message.isEmpty() ? name : message;
}

HostConnection::HostConnection(const QString& label, const QString& address, QObject* parent)
    : QObject(parent), label_(label), address_(address), connection_name_(next_connection_name()),
      bus_(connection_name_) {}

HostConnection::~HostConnection() {
    if (opener_) {
        // The thread may still wait for ssh: it ends on its own and is not ours to join here.
        opener_->disconnect(this);
        if (opener_->isRunning()) QObject::connect(opener_, &QThread::finished, opener_, &QObject::deleteLater);
        else delete opener_;
    }
    QDBusConnection::disconnectFromBus(connection_name_);
}

bool HostConnection::is_local() const {
    return address_ == QLatin1String("system") || address_ == QLatin1String("session") ||
           address_.startsWith(QLatin1String("unix:"));
}

void HostConnection::open() {
    set_status(Status::Connecting, tr("Connecting…"));
    const QString address = address_, name = connection_name_;
    opener_ = QThread::create([address, name] {
        if (address == QLatin1String("system")) QDBusConnection::connectToBus(QDBusConnection::SystemBus, name);
        else if (address == QLatin1String("session")) QDBusConnection::connectToBus(QDBusConnection::SessionBus, name);
        else QDBusConnection::connectToBus(address, name);
    });
    QObject::connect(opener_, &QThread::finished, this, [this] {
        opener_->deleteLater();
        opener_ = nullptr;
        bus_opened();
    });
    opener_->start();
}

void HostConnection::bus_opened() {
    bus_ = QDBusConnection(connection_name_);
    if (!bus_.isConnected()) {
        const QDBusError error = bus_.lastError();
        set_status(Status::Failed, tr("Cannot reach the bus: %1").arg(error.message().isEmpty() ? error.name() : error.message()));
        return;
    }
    const QString any_path;
    bus_.connect(kService, any_path, QLatin1String(kAtollVmInterface), QStringLiteral("StateChanged"), this,
                 SLOT(onStateChanged(QDBusMessage)));
    bus_.connect(kService, any_path, QLatin1String(kProperties), QStringLiteral("PropertiesChanged"), this,
                 SLOT(onPropertiesChanged(QDBusMessage)));
    bus_.connect(kService, QLatin1String(kAtollManagerPath), QLatin1String(kAtollManagerInterface),
                 QStringLiteral("VMDefined"), this, SLOT(onVmDefined(QDBusMessage)));
    bus_.connect(kService, QLatin1String(kAtollManagerPath), QLatin1String(kAtollManagerInterface),
                 QStringLiteral("VMUndefined"), this, SLOT(onVmUndefined(QDBusMessage)));
    watcher_ = new QDBusServiceWatcher(kService, bus_,
                                       QDBusServiceWatcher::WatchForRegistration | QDBusServiceWatcher::WatchForUnregistration,
                                       this);
    QObject::connect(watcher_, &QDBusServiceWatcher::serviceRegistered, this, [this] { load(); });
    QObject::connect(watcher_, &QDBusServiceWatcher::serviceUnregistered, this, [this] {
        ++generation_;
        set_status(Status::NoService, tr("atolld is not running on this bus."));
        Q_EMIT vmsLoaded({});
    });
    load();
}

void HostConnection::load() {
    const quint64 generation = ++generation_;
    auto objects = QDBusMessage::createMethodCall(kService, QLatin1String(kAtollManagerPath),
                                                  QLatin1String(kObjectManager), QStringLiteral("GetManagedObjects"));
    on_reply(bus_.asyncCall(objects), this, [this, generation](const QDBusMessage& reply) {
        if (generation != generation_) return;
        if (reply.type() == QDBusMessage::ErrorMessage) {
            const bool absent = reply.errorName() == QLatin1String("org.freedesktop.DBus.Error.ServiceUnknown") ||
                                reply.errorName() == QLatin1String("org.freedesktop.DBus.Error.NameHasNoOwner");
            set_status(absent ? Status::NoService : Status::Failed, describe_error(reply.errorName(), reply.errorMessage()));
            Q_EMIT vmsLoaded({});
            return;
        }
        QVector<VmInfo> vms;
        if (!reply.arguments().isEmpty())
            vms = parse_managed_objects(reply.arguments().constFirst().value<QDBusArgument>());
        set_status(Status::Connected, tr("Connected"));
        Q_EMIT vmsLoaded(vms);
    });

    auto facts = QDBusMessage::createMethodCall(kService, QLatin1String(kAtollManagerPath), QLatin1String(kProperties),
                                                QStringLiteral("GetAll"));
    facts << QLatin1String(kAtollManagerInterface);
    on_reply(bus_.asyncCall(facts), this, [this](const QDBusMessage& reply) {
        if (reply.type() != QDBusMessage::ReplyMessage || reply.arguments().isEmpty()) return;
        const auto properties = qdbus_cast<QVariantMap>(reply.arguments().constFirst());
        host_name_ = properties.value(QStringLiteral("HostName")).toString();
        cpu_count_ = properties.value(QStringLiteral("CpuCount")).toUInt();
        memory_mib_ = properties.value(QStringLiteral("MemoryMiB")).toULongLong();
        storage_directories_ = properties.value(QStringLiteral("StorageDirectories")).toStringList();
        Q_EMIT hostFactsChanged();
    });
}

void HostConnection::set_status(Status status, const QString& text) {
    status_ = status;
    status_text_ = text;
    Q_EMIT statusChanged();
}

QDBusPendingCall HostConnection::call_vm(const QString& vm_path, const QString& method, const QVariantList& arguments,
                                         int timeout_ms) {
    auto message = QDBusMessage::createMethodCall(kService, vm_path, QLatin1String(kAtollVmInterface), method);
    message.setArguments(arguments);
    return bus_.asyncCall(message, timeout_ms);
}

QDBusPendingCall HostConnection::define_vm(const QString& definition_json) {
    auto message = QDBusMessage::createMethodCall(kService, QLatin1String(kAtollManagerPath),
                                                  QLatin1String(kAtollManagerInterface), QStringLiteral("DefineVM"));
    message << definition_json;
    return bus_.asyncCall(message, 60000);
}

void HostConnection::onStateChanged(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 2) return;
    Q_EMIT vmPropertiesChanged(message.path(), {{QStringLiteral("State"), arguments.at(0)},
                                                {QStringLiteral("StateReason"), arguments.at(1)}});
}

void HostConnection::onPropertiesChanged(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 2 || arguments.at(0).toString() != QLatin1String(kAtollVmInterface)) return;
    const auto changed = qdbus_cast<QVariantMap>(arguments.at(1));
    if (!changed.isEmpty()) Q_EMIT vmPropertiesChanged(message.path(), changed);
}

void HostConnection::onVmDefined(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 2) return;
    const QString path = arguments.at(1).value<QDBusObjectPath>().path();
    auto get_all = QDBusMessage::createMethodCall(kService, path, QLatin1String(kProperties), QStringLiteral("GetAll"));
    get_all << QLatin1String(kAtollVmInterface);
    const quint64 generation = generation_;
    on_reply(bus_.asyncCall(get_all), this, [this, path, generation](const QDBusMessage& reply) {
        // An error: undefined meanwhile. Another generation: reloaded, the load has it.
        if (reply.type() != QDBusMessage::ReplyMessage || reply.arguments().isEmpty() || generation != generation_) return;
        VmInfo vm;
        vm.path = path;
        apply_properties(vm, qdbus_cast<QVariantMap>(reply.arguments().constFirst()));
        Q_EMIT vmUpdated(vm);
    });
}

void HostConnection::onVmUndefined(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 2) return;
    Q_EMIT vmRemoved(arguments.at(1).value<QDBusObjectPath>().path());
}

}  // namespace atl::console
