#include <atoll/console/vm_draft.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>

namespace atl::console {
namespace {

Error error(const QString& message) { return make_error(message.toStdString()); }

bool absolute_clean_path(const QString& path) {
    if (!path.startsWith(QLatin1Char('/'))) return false;
    for (const QString& part : path.split(QLatin1Char('/')))
        if (part == QLatin1String(".") || part == QLatin1String("..")) return false;
    return true;
}

}  // namespace

Result<void> validate(const VmDraft& draft) {
    // dom0/README.md, "The VM definition": the same limits atolld checks.
    static const QRegularExpression kName(QStringLiteral("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"));
    if (draft.name.isEmpty()) return error(QStringLiteral("The VM needs a name."));
    if (!kName.match(draft.name).hasMatch())
        return error(QStringLiteral("Name '%1': use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                                    "letter or digit.")
                         .arg(draft.name));
    if (draft.vcpus < 1 || draft.vcpus > 255) return error(QStringLiteral("vCPUs: 1 to 255."));
    if (draft.memory_mib < 16 || draft.memory_mib > 4ull * 1024 * 1024)
        return error(QStringLiteral("Memory: %1 MiB is out of range; use 16 MiB to 4 TiB.").arg(draft.memory_mib));
    if (draft.boot == VmDraft::Boot::Kernel) {
        if (draft.kernel.isEmpty()) return error(QStringLiteral("Choose the kernel to boot."));
        if (!absolute_clean_path(draft.kernel))
            return error(QStringLiteral("Kernel '%1': give an absolute path without '.' or '..'.").arg(draft.kernel));
        if (!draft.initrd.isEmpty() && !absolute_clean_path(draft.initrd))
            return error(QStringLiteral("Initrd '%1': give an absolute path without '.' or '..'.").arg(draft.initrd));
        if (draft.cmdline.toUtf8().size() > 4095)
            return error(QStringLiteral("Kernel command line: at most 4095 bytes."));
    } else if (draft.disk_image.isEmpty()) {
        return error(QStringLiteral("Choose the disk image to boot from."));
    }
    if (!draft.disk_image.isEmpty() && !absolute_clean_path(draft.disk_image))
        return error(QStringLiteral("Disk image '%1': give an absolute path without '.' or '..'.").arg(draft.disk_image));
    if (draft.network == VmDraft::Network::User) {
        static const QRegularExpression kForward(QStringLiteral("^(tcp|udp):[0-9]{1,5}:[0-9]{1,5}$"));
        for (const QString& forward : draft.host_forwards)
            if (!kForward.match(forward).hasMatch())
                return error(QStringLiteral("Port forward '%1': write it as tcp:HOST-PORT:GUEST-PORT (or udp:...).")
                                 .arg(forward));
    }
    if (draft.network == VmDraft::Network::Tap && draft.tap.trimmed().isEmpty())
        return error(QStringLiteral("Name the tap device (for example tap0)."));
    return {};
}

Result<QString> definition_json(const VmDraft& draft) {
    ATOLL_TRY(validate(draft));
    QJsonObject definition{{QStringLiteral("name"), draft.name},
                           {QStringLiteral("vcpus"), static_cast<int>(draft.vcpus)},
                           {QStringLiteral("memory_mib"), static_cast<qint64>(draft.memory_mib)}};
    QJsonArray disks;
    if (!draft.disk_image.isEmpty()) disks.append(QJsonObject{{QStringLiteral("path"), draft.disk_image}});
    if (draft.boot == VmDraft::Boot::Kernel) {
        QJsonObject boot{{QStringLiteral("kernel"), draft.kernel}, {QStringLiteral("cmdline"), draft.cmdline}};
        if (!draft.initrd.isEmpty()) boot.insert(QStringLiteral("initrd"), draft.initrd);
        definition.insert(QStringLiteral("boot"), boot);
    } else {
        definition.insert(QStringLiteral("boot"), QJsonObject{{QStringLiteral("disk"), 0}});
    }
    definition.insert(QStringLiteral("disks"), disks);
    QJsonArray nets;
    if (draft.network == VmDraft::Network::User) {
        QJsonObject net{{QStringLiteral("mode"), QStringLiteral("user")}};
        if (!draft.host_forwards.isEmpty())
            net.insert(QStringLiteral("host_forwards"), QJsonArray::fromStringList(draft.host_forwards));
        nets.append(net);
    } else if (draft.network == VmDraft::Network::Tap) {
        nets.append(QJsonObject{{QStringLiteral("mode"), QStringLiteral("tap")}, {QStringLiteral("tap"), draft.tap.trimmed()}});
    }
    definition.insert(QStringLiteral("nets"), nets);
    if (draft.display) definition.insert(QStringLiteral("display"), QJsonObject{});
    return QString::fromUtf8(QJsonDocument(definition).toJson(QJsonDocument::Compact));
}

}  // namespace atl::console
