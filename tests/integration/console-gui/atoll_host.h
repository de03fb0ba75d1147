// What the console's integration tests run against: a private dbus-daemon and,
// on it, the real atolld (with atoll-vmm and the tiny guests of tests/guests)
// or atoll-display; and atollctl, run as a person would run it.
#pragma once

#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>

#include <memory>

namespace atl::console::testing {

// Drops the offscreen platform's "does not support propagateSizeHints()"
// warnings (one per window shown), passing every other message on.
void quiet_offscreen_warnings();

// Why this machine cannot run the tests that boot tiny guests ("" when it can).
QString kvm_unusable_reason();

class PrivateBus {
public:
    // A session-type dbus-daemon listening on DIR/bus; false (and `why`) if it does not come up.
    bool start(const QString& dir, QString* why);
    ~PrivateBus();
    QString address() const { return address_; }
    QString socket_path() const { return socket_; }

private:
    QProcess daemon_;
    QString address_, socket_;
};

// A dbus-daemon and atolld with their own database, runtime and storage
// directories; the tiny guests are copied into the storage directory.
class AtollHost {
public:
    AtollHost();
    ~AtollHost();
    bool start(QString* why);
    // atolld alone (the bus and the VMs stay): SIGTERM, then a new atolld on the same files.
    void stop_atolld();
    bool start_atolld(QString* why);
    QString address() const { return bus_.address(); }
    QString bus_socket() const { return bus_.socket_path(); }
    QString images() const { return dir_.path() + QStringLiteral("/images"); }
    QString guest(const QString& behaviour) const;  // a tiny guest's path in the storage directory
    QString log() const;

    struct Run {
        int exit_code = -1;
        QString out, err;
    };
    Run atollctl(const QStringList& arguments) const;
    // `atollctl define` of a tiny guest.
    bool define(const QString& name, const QString& behaviour = QStringLiteral("poweroff-on-button"));
    // `atollctl state NAME`: "running (started)", ...
    QString state(const QString& name) const;

private:
    QTemporaryDir dir_;
    PrivateBus bus_;
    QProcess atolld_;
};

}  // namespace atl::console::testing
