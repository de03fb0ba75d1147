#include <atoll/console/vm_info.h>

#include <QCoreApplication>

namespace atl::console {

void apply_properties(VmInfo& vm, const QVariantMap& properties) {
    for (auto it = properties.begin(); it != properties.end(); ++it) {
        const QString& key = it.key();
        const QVariant& value = it.value();
        if (key == QLatin1String("Name")) vm.name = value.toString();
        else if (key == QLatin1String("UUID")) vm.uuid = value.toString();
        else if (key == QLatin1String("State")) vm.state = value.toString();
        else if (key == QLatin1String("StateReason")) vm.reason = value.toString();
        else if (key == QLatin1String("VCPUs")) vm.vcpus = value.toUInt();
        else if (key == QLatin1String("MemoryMiB")) vm.memory_mib = value.toULongLong();
        else if (key == QLatin1String("VmmPid")) vm.vmm_pid = value.toUInt();
        else if (key == QLatin1String("StartedAt")) vm.started_at_us = value.toULongLong();
        else if (key == QLatin1String("BootCount")) vm.boot_count = value.toUInt();
        else if (key == QLatin1String("Autostart")) vm.autostart = value.toBool();
        else if (key == QLatin1String("VncAddress")) vm.vnc_address = value.toString();
        else if (key == QLatin1String("VncTls")) vm.vnc_tls = value.toBool();
    }
    if (vm.vmm_pid == 0) vm.cpu_percent = -1;
}

QString vm_details(const VmInfo& vm) {
    if (vm.vnc_address.isEmpty()) return vm.reason;
    const QString vnc = vm.vnc_tls ? QCoreApplication::translate("atl::console", "VNC %1 (TLS)").arg(vm.vnc_address)
                                   : QCoreApplication::translate("atl::console", "VNC %1").arg(vm.vnc_address);
    return vm.reason.isEmpty() ? vnc : QStringLiteral("%1 · %2").arg(vm.reason, vnc);
}

QString state_label(const QString& state) {
    if (state == QLatin1String("shut-off")) return QCoreApplication::translate("atl::console", "Shut off");
    if (state == QLatin1String("starting")) return QCoreApplication::translate("atl::console", "Starting");
    if (state == QLatin1String("running")) return QCoreApplication::translate("atl::console", "Running");
    if (state == QLatin1String("paused")) return QCoreApplication::translate("atl::console", "Paused");
    if (state == QLatin1String("shutting-down")) return QCoreApplication::translate("atl::console", "Shutting down");
    if (state == QLatin1String("crashed")) return QCoreApplication::translate("atl::console", "Crashed");
    return state;
}

bool can_start(const QString& s) { return s == QLatin1String("shut-off") || s == QLatin1String("crashed"); }
bool can_shut_down(const QString& s) { return s == QLatin1String("running"); }
bool can_force_off(const QString& s) {
    return s == QLatin1String("running") || s == QLatin1String("paused") || s == QLatin1String("starting") ||
           s == QLatin1String("shutting-down");
}
bool can_pause(const QString& s) { return s == QLatin1String("running"); }
bool can_resume(const QString& s) { return s == QLatin1String("paused"); }
bool can_reboot(const QString& s) { return s == QLatin1String("running"); }
bool can_delete(const QString& s) { return s == QLatin1String("shut-off") || s == QLatin1String("crashed"); }

}  // namespace atl::console
