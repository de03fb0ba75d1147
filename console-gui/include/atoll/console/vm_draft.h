// What the New VM wizard collects, checked and turned into the definition
// JSON that DefineVM takes (dom0/README.md, "The VM definition").
#pragma once

#include <atoll/result.h>

#include <QString>
#include <QStringList>

namespace atl::console {

struct VmDraft {
    enum class Boot { Kernel, Disk };
    enum class Network { None, User, Tap };

    QString name;
    unsigned vcpus = 1;
    quint64 memory_mib = 512;
    Boot boot = Boot::Kernel;
    QString kernel, initrd, cmdline = QStringLiteral("console=ttyS0");
    QString disk_image;  // the boot disk (Boot::Disk) or an extra disk (Boot::Kernel), optional there
    Network network = Network::User;
    QStringList host_forwards;  // tcp|udp:HOST:GUEST, for Network::User
    QString tap;                // for Network::Tap
    bool display = true;        // a virtio-gpu screen and virtio-input devices
};

// The rules atolld applies, checked here first so that the wizard can say
// what is wrong before it asks; atolld still has the last word (storage
// directories, names taken).
Result<void> validate(const VmDraft& draft);

// The definition as JSON (compact), or the first thing wrong with the draft.
Result<QString> definition_json(const VmDraft& draft);

}  // namespace atl::console
