// One host: a bus (local or remote) with atolld's org.atoll.Atoll1 on it.
// Everything is asynchronous: the bus is opened on a short-lived thread (an
// SSH transport may take seconds), calls go out with QDBusConnection::asyncCall
// and VM changes arrive as signals (StateChanged, PropertiesChanged,
// VMDefined, VMUndefined), never by polling.
#pragma once

#include <atoll/console/vm_info.h>

#include <QDBusConnection>
#include <QDBusMessage>
#include <QDBusPendingCall>
#include <QObject>
#include <QStringList>

#include <functional>

class QDBusServiceWatcher;
class QThread;

namespace atl::console {

inline constexpr char kAtollService[] = "org.atoll.Atoll1";
inline constexpr char kAtollManagerPath[] = "/org/atoll/Atoll1";
inline constexpr char kAtollManagerInterface[] = "org.atoll.Atoll1.Manager";
inline constexpr char kAtollVmInterface[] = "org.atoll.Atoll1.VM";

class HostConnection : public QObject {
    Q_OBJECT
public:
    enum class Status { Connecting, Connected, NoService, Failed };

    // `address`: a D-Bus address, or "system" / "session".
    HostConnection(const QString& label, const QString& address, QObject* parent = nullptr);
    ~HostConnection() override;

    // Opens the bus and loads the VMs; statusChanged() tells how it went.
    void open();

    QString label() const { return label_; }
    QString address() const { return address_; }
    Status status() const { return status_; }
    QString status_text() const { return status_text_; }
    // Whether the bus is on this machine (not carried by a program such as ssh).
    bool is_local() const;

    // Host facts from the Manager's properties (empty until loaded).
    QString host_name() const { return host_name_; }
    unsigned cpu_count() const { return cpu_count_; }
    quint64 memory_mib() const { return memory_mib_; }
    QStringList storage_directories() const { return storage_directories_; }

    // A method of org.atoll.Atoll1.VM on `vm_path`, with a generous timeout
    // (lifecycle methods reply when done).
    QDBusPendingCall call_vm(const QString& vm_path, const QString& method, const QVariantList& arguments = {},
                             int timeout_ms = 120000);
    QDBusPendingCall define_vm(const QString& definition_json);

    QDBusConnection bus() const { return bus_; }

Q_SIGNALS:
    void statusChanged();
    void hostFactsChanged();
    // The whole list (after connecting, or when atolld came back).
    void vmsLoaded(const QVector<atl::console::VmInfo>& vms);
    // A VM appeared, or all its properties were read again.
    void vmUpdated(const atl::console::VmInfo& vm);
    void vmPropertiesChanged(const QString& path, const QVariantMap& changed);
    void vmRemoved(const QString& path);

private Q_SLOTS:
    void onStateChanged(const QDBusMessage& message);
    void onPropertiesChanged(const QDBusMessage& message);
    void onVmDefined(const QDBusMessage& message);
    void onVmUndefined(const QDBusMessage& message);

private:
    void bus_opened();
    void load();
    void set_status(Status status, const QString& text);

    QString label_, address_, connection_name_;
    QDBusConnection bus_;
    QThread* opener_ = nullptr;
    QDBusServiceWatcher* watcher_ = nullptr;
    Status status_ = Status::Connecting;
    QString status_text_;
    QString host_name_;
    unsigned cpu_count_ = 0;
    quint64 memory_mib_ = 0;
    QStringList storage_directories_;
    quint64 generation_ = 0;  // load() replies of an older generation are dropped
};

// Calls `handler` with the reply of `call` from `context`'s event loop, never
// before this returns; nothing once `context` is gone. Unlike a bare
// QDBusPendingCallWatcher (Qt 6.4) it also answers calls that failed at once,
// such as any call on a connection that is closed.
void on_reply(const QDBusPendingCall& call, QObject* context, std::function<void(const QDBusMessage&)> handler);

// A D-Bus error in words for a person: atolld's message, or what the bus said.
QString describe_error(const QString& error_name, const QString& message);

}  // namespace atl::console
