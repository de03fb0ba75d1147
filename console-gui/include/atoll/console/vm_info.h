// One VM as the console knows it: the properties of org.atoll.Atoll1.VM
// (dom0/dbus/org.atoll.Atoll1.VM.xml) that the main window shows.
#pragma once

#include <QMetaType>
#include <QString>
#include <QVariantMap>
#include <QVector>

namespace atl::console {

struct VmInfo {
    QString path;  // the object path on its host's bus
    QString name, uuid;
    QString state;   // shut-off, starting, running, paused, shutting-down, crashed
    QString reason;  // StateReason, in words
    unsigned vcpus = 0;
    quint64 memory_mib = 0;
    unsigned vmm_pid = 0;
    quint64 started_at_us = 0;
    unsigned boot_count = 0;
    bool autostart = false;
    QString vnc_address;  // VncAddress: "HOST:PORT" while atoll-display serves its screen, else ""
    bool vnc_tls = false;  // that VNC server takes only VeNCrypt (TLS) clients
    double cpu_percent = -1;  // of one host CPU; -1: unknown
};

// Applies a property map (from GetAll, GetManagedObjects or PropertiesChanged).
void apply_properties(VmInfo& vm, const QVariantMap& properties);

// The Details column: the state's reason and, while atoll-display serves the
// screen, where a VNC viewer reaches it ("started · VNC 127.0.0.1:5900 (TLS)").
QString vm_details(const VmInfo& vm);

// The state in words for people ("shut-off" → "Shut off").
QString state_label(const QString& state);

// Which lifecycle actions make sense in a state (atolld has the last word).
bool can_start(const QString& state);
bool can_shut_down(const QString& state);
bool can_force_off(const QString& state);
bool can_pause(const QString& state);
bool can_resume(const QString& state);
bool can_reboot(const QString& state);
bool can_delete(const QString& state);

}  // namespace atl::console

Q_DECLARE_METATYPE(atl::console::VmInfo)
