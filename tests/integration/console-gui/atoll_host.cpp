#include "atoll_host.h"

#include <QDBusConnection>
#include <QDBusConnectionInterface>
#include <QDir>
#include <QFile>
#include <QThread>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace atl::console::testing {
namespace {

// atoll-vmm outlives atolld (its own session, by design): end the ones this host started.
void kill_vmms_under(const QString& dir) {
    const QByteArray wanted = (dir + QLatin1Char('/')).toUtf8();
    for (const QString& entry : QDir(QStringLiteral("/proc")).entryList(QDir::Dirs)) {
        bool numeric = false;
        const int pid = entry.toInt(&numeric);
        if (!numeric || pid == getpid()) continue;
        QFile cmdline(QStringLiteral("/proc/%1/cmdline").arg(pid));
        if (!cmdline.open(QIODevice::ReadOnly)) continue;
        const QByteArray arguments = cmdline.readAll();
        if (arguments.contains("atoll-vmm") && arguments.contains(wanted)) kill(pid, SIGKILL);
    }
}

QtMessageHandler previous_handler = nullptr;

void filter_message(QtMsgType type, const QMessageLogContext& context, const QString& message) {
    if (type == QtWarningMsg && message.contains(QLatin1String("does not support propagateSizeHints"))) return;
    if (previous_handler) previous_handler(type, context, message);
}

}  // namespace

void quiet_offscreen_warnings() {
    QtMessageHandler previous = qInstallMessageHandler(filter_message);
    if (previous != filter_message) previous_handler = previous;
}

QString kvm_unusable_reason() {
    const int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return QStringLiteral("/dev/kvm not usable: %1").arg(QString::fromLocal8Bit(strerror(errno)));
    close(fd);
    return {};
}

bool PrivateBus::start(const QString& dir, QString* why) {
    socket_ = dir + QStringLiteral("/bus");
    QFile config(dir + QStringLiteral("/bus.conf"));
    if (!config.open(QIODevice::WriteOnly)) {
        *why = QStringLiteral("cannot write %1").arg(config.fileName());
        return false;
    }
    config.write(QStringLiteral(
                     "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                     " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                     "<busconfig><type>session</type><listen>unix:path=%1</listen><auth>EXTERNAL</auth>\n"
                     "<policy context=\"default\"><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
                     "<allow own=\"*\"/></policy></busconfig>\n")
                     .arg(socket_)
                     .toUtf8());
    config.close();
    daemon_.setProgram(QStringLiteral("dbus-daemon"));
    daemon_.setArguments({QStringLiteral("--config-file=") + config.fileName(), QStringLiteral("--nofork"),
                          QStringLiteral("--nopidfile")});
    daemon_.setStandardOutputFile(dir + QStringLiteral("/dbus-daemon.log"));
    daemon_.setStandardErrorFile(dir + QStringLiteral("/dbus-daemon.log"));
    daemon_.start();
    if (!daemon_.waitForStarted(5000)) {
        *why = QStringLiteral("dbus-daemon did not start: ") + daemon_.errorString();
        return false;
    }
    for (int i = 0; i < 250 && !QFile::exists(socket_); ++i) QThread::msleep(20);
    address_ = QStringLiteral("unix:path=") + socket_;
    if (!QFile::exists(socket_)) {
        *why = QStringLiteral("dbus-daemon did not listen on ") + socket_;
        return false;
    }
    return true;
}

PrivateBus::~PrivateBus() {
    if (daemon_.state() != QProcess::NotRunning) {
        daemon_.terminate();
        if (!daemon_.waitForFinished(5000)) daemon_.kill();
        daemon_.waitForFinished(2000);
    }
}

AtollHost::AtollHost() : dir_(QDir::tempPath() + QStringLiteral("/atoll-console-it-XXXXXX")) {}

AtollHost::~AtollHost() {
    stop_atolld();
    kill_vmms_under(dir_.path());
}

void AtollHost::stop_atolld() {
    if (atolld_.state() == QProcess::NotRunning) return;
    atolld_.terminate();
    if (!atolld_.waitForFinished(10000)) atolld_.kill();
    atolld_.waitForFinished(2000);
}

QString AtollHost::guest(const QString& behaviour) const {
    return images() + QStringLiteral("/tiny-%1.bzImage").arg(behaviour);
}

QString AtollHost::log() const {
    QFile file(dir_.path() + QStringLiteral("/atolld.log"));
    return file.open(QIODevice::ReadOnly) ? QString::fromUtf8(file.readAll()) : QString();
}

bool AtollHost::start(QString* why) {
    if (!dir_.isValid()) {
        *why = QStringLiteral("no temporary directory");
        return false;
    }
    QDir(dir_.path()).mkpath(QStringLiteral("images"));
    for (const char* behaviour : {"poweroff-on-button", "halt"}) {
        const QString name = QStringLiteral("tiny-%1.bzImage").arg(QLatin1String(behaviour));
        if (!QFile::copy(QStringLiteral(TINY_GUEST_DIR "/") + name, images() + QLatin1Char('/') + name)) {
            *why = QStringLiteral("cannot copy %1 from %2").arg(name, QStringLiteral(TINY_GUEST_DIR));
            return false;
        }
    }
    if (!bus_.start(dir_.path(), why)) return false;
    return start_atolld(why);
}

bool AtollHost::start_atolld(QString* why) {
    atolld_.setProgram(QStringLiteral(ATOLLD_PATH));
    atolld_.setArguments({QStringLiteral("--bus-address"), address(), QStringLiteral("--database"),
                          dir_.path() + QStringLiteral("/state/atoll.db"), QStringLiteral("--runtime-dir"),
                          dir_.path() + QStringLiteral("/run"), QStringLiteral("--storage-dir"), images(),
                          QStringLiteral("--vmm"), QStringLiteral(ATOLL_VMM_PATH)});
    atolld_.setStandardOutputFile(dir_.path() + QStringLiteral("/atolld.log"), QIODevice::Append);
    atolld_.setStandardErrorFile(dir_.path() + QStringLiteral("/atolld.log"), QIODevice::Append);
    atolld_.start();
    if (!atolld_.waitForStarted(5000)) {
        *why = QStringLiteral("atolld did not start: ") + atolld_.errorString();
        return false;
    }
    // Test set-up only: the console itself never waits like this.
    const QString probe = QStringLiteral("probe-") + dir_.path();
    bool up = false;
    {
        QDBusConnection bus = QDBusConnection::connectToBus(address(), probe);
        for (int i = 0; i < 300 && !up; ++i) {
            up = bus.interface() && bus.interface()->isServiceRegistered(QStringLiteral("org.atoll.Atoll1"));
            if (!up) QThread::msleep(50);
        }
    }
    QDBusConnection::disconnectFromBus(probe);
    if (!up) *why = QStringLiteral("atolld did not take its bus name; its log:\n") + log();
    return up;
}

AtollHost::Run AtollHost::atollctl(const QStringList& arguments) const {
    QProcess process;
    process.start(QStringLiteral(ATOLLCTL_PATH), QStringList{QStringLiteral("--bus-address"), address()} + arguments);
    Run run;
    if (!process.waitForFinished(90000)) {
        process.kill();
        process.waitForFinished();
        run.err = QStringLiteral("atollctl did not finish");
        return run;
    }
    run.exit_code = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    run.out = QString::fromUtf8(process.readAllStandardOutput());
    run.err = QString::fromUtf8(process.readAllStandardError());
    return run;
}

bool AtollHost::define(const QString& name, const QString& behaviour) {
    const QString path = dir_.path() + QStringLiteral("/%1.json").arg(name);
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly)) return false;
    file.write(QStringLiteral("{\"name\": \"%1\", \"vcpus\": 1, \"memory_mib\": 32, \"nets\": [], "
                              "\"boot\": {\"kernel\": \"%2\", \"cmdline\": \"console=ttyS0\"}}")
                   .arg(name, guest(behaviour))
                   .toUtf8());
    file.close();
    return atollctl({QStringLiteral("define"), path}).exit_code == 0;
}

QString AtollHost::state(const QString& name) const {
    return atollctl({QStringLiteral("state"), name}).out.trimmed();
}

}  // namespace atl::console::testing
