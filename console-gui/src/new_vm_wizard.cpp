#include <atoll/console/host_connection.h>
#include <atoll/console/new_vm_wizard.h>

#include <QButtonGroup>
#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QStyle>
#include <QVBoxLayout>

#include <algorithm>

namespace atl::console {

class WizardPage : public QWizardPage {
public:
    WizardPage(NewVmWizard* wizard, int id) : wizard_(wizard), id_(id) {}
    bool validatePage() override { return wizard_->check_page(id_); }
    void initializePage() override {
        if (id_ == NewVmWizard::SummaryPage) wizard_->update_summary();
    }

private:
    NewVmWizard* wizard_;
    int id_;
};

namespace {

QLabel* make_error_label(QWidget* parent) {
    auto* label = new QLabel(parent);
    label->setObjectName(QStringLiteral("errorLabel"));
    label->setWordWrap(true);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    label->setAccessibleName(QObject::tr("Error"));
    label->hide();
    return label;
}

// A path field with a Browse button (local hosts only: a remote host's files are not ours to browse).
QWidget* path_row(QLineEdit* edit, bool can_browse, QWidget* parent) {
    auto* row = new QWidget(parent);
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    if (can_browse) {
        auto* browse = new QPushButton(QObject::tr("Browse…"), row);
        QObject::connect(browse, &QPushButton::clicked, edit, [edit] {
            auto* dialog = new QFileDialog(edit->window(), QObject::tr("Choose a file"));
            dialog->setAttribute(Qt::WA_DeleteOnClose);
            dialog->setFileMode(QFileDialog::ExistingFile);
            QObject::connect(dialog, &QFileDialog::fileSelected, edit, &QLineEdit::setText);
            dialog->open();
        });
        layout->addWidget(browse);
    }
    return row;
}

}  // namespace

NewVmWizard::NewVmWizard(const QVector<HostConnection*>& hosts, HostConnection* preselected, QWidget* parent)
    : QWizard(parent) {
    setObjectName(QStringLiteral("newVmWizard"));
    setWindowTitle(tr("New virtual machine"));
    setOption(QWizard::NoBackButtonOnStartPage);
    for (HostConnection* host : hosts) hosts_.push_back(host);
    bool any_local = false;
    for (HostConnection* host : hosts) any_local = any_local || host->is_local();

    // ---- name and resources
    auto* resources = new WizardPage(this, ResourcesPage);
    resources->setTitle(tr("Name and resources"));
    auto* resources_form = new QFormLayout;
    host_ = new QComboBox(resources);
    host_->setObjectName(QStringLiteral("host"));
    for (HostConnection* host : hosts) host_->addItem(host->label());
    if (preselected) host_->setCurrentIndex(static_cast<int>(hosts.indexOf(preselected)));
    name_ = new QLineEdit(resources);
    name_->setObjectName(QStringLiteral("name"));
    name_->setPlaceholderText(tr("for example web-1"));
    name_->setMaxLength(64);
    vcpus_ = new QSpinBox(resources);
    vcpus_->setObjectName(QStringLiteral("vcpus"));
    vcpus_->setRange(1, 255);
    memory_ = new QSpinBox(resources);
    memory_->setObjectName(QStringLiteral("memory"));
    // 0 is allowed here so that a wrong entry is said in words rather than silently corrected.
    memory_->setRange(0, 4 * 1024 * 1024);
    memory_->setSuffix(tr(" MiB"));
    memory_->setValue(512);
    memory_->setSingleStep(128);
    resources_form->addRow(tr("&Host:"), host_);
    resources_form->addRow(tr("&Name:"), name_);
    resources_form->addRow(tr("&vCPUs:"), vcpus_);
    resources_form->addRow(tr("&Memory:"), memory_);
    errors_[ResourcesPage] = make_error_label(resources);
    auto* resources_layout = new QVBoxLayout(resources);
    resources_layout->addLayout(resources_form);
    resources_layout->addStretch();
    resources_layout->addWidget(errors_[ResourcesPage]);
    setPage(ResourcesPage, resources);

    // ---- boot
    auto* boot = new WizardPage(this, BootPage);
    boot->setTitle(tr("Boot"));
    boot_ = new QButtonGroup(boot);
    auto* boot_kernel = new QRadioButton(tr("Boot a &kernel (and initrd)"), boot);
    boot_kernel->setObjectName(QStringLiteral("bootKernel"));
    auto* boot_disk = new QRadioButton(tr("Boot from a &disk image"), boot);
    boot_disk->setObjectName(QStringLiteral("bootDisk"));
    boot_->addButton(boot_kernel, static_cast<int>(VmDraft::Boot::Kernel));
    boot_->addButton(boot_disk, static_cast<int>(VmDraft::Boot::Disk));
    boot_kernel->setChecked(true);
    kernel_ = new QLineEdit(boot);
    kernel_->setObjectName(QStringLiteral("kernel"));
    initrd_ = new QLineEdit(boot);
    initrd_->setObjectName(QStringLiteral("initrd"));
    initrd_->setPlaceholderText(tr("optional"));
    cmdline_ = new QLineEdit(QStringLiteral("console=ttyS0"), boot);
    cmdline_->setObjectName(QStringLiteral("cmdline"));
    disk_ = new QLineEdit(boot);
    disk_->setObjectName(QStringLiteral("disk"));
    auto* boot_form = new QFormLayout;
    boot_form->addRow(boot_kernel);
    boot_form->addRow(tr("K&ernel:"), path_row(kernel_, any_local, boot));
    boot_form->addRow(tr("&Initrd:"), path_row(initrd_, any_local, boot));
    boot_form->addRow(tr("&Command line:"), cmdline_);
    boot_form->addRow(boot_disk);
    boot_form->addRow(tr("Disk ima&ge:"), path_row(disk_, any_local, boot));
    auto* storage_hint = new QLabel(boot);
    storage_hint->setWordWrap(true);
    storage_hint->setObjectName(QStringLiteral("storageHint"));
    auto update_hint = [this, storage_hint] {
        const HostConnection* chosen = host();
        storage_hint->setText(chosen && !chosen->storage_directories().isEmpty()
                                  ? tr("atolld on %1 uses files under: %2")
                                        .arg(chosen->label(), chosen->storage_directories().join(QStringLiteral(", ")))
                                  : QString());
    };
    connect(host_, &QComboBox::currentIndexChanged, this, update_hint);
    for (HostConnection* host : hosts) connect(host, &HostConnection::hostFactsChanged, this, update_hint);
    update_hint();
    auto update_boot_fields = [this] {
        const bool kernel = boot_->checkedId() == static_cast<int>(VmDraft::Boot::Kernel);
        kernel_->setEnabled(kernel);
        initrd_->setEnabled(kernel);
        cmdline_->setEnabled(kernel);
    };
    connect(boot_, &QButtonGroup::idToggled, this, update_boot_fields);
    errors_[BootPage] = make_error_label(boot);
    auto* boot_layout = new QVBoxLayout(boot);
    boot_layout->addLayout(boot_form);
    boot_layout->addWidget(storage_hint);
    boot_layout->addStretch();
    boot_layout->addWidget(errors_[BootPage]);
    setPage(BootPage, boot);

    // ---- network and display
    auto* network = new WizardPage(this, NetworkPage);
    network->setTitle(tr("Network and display"));
    network_ = new QButtonGroup(network);
    auto* net_none = new QRadioButton(tr("N&o network"), network);
    net_none->setObjectName(QStringLiteral("netNone"));
    auto* net_user = new QRadioButton(tr("&User-mode NAT (no setup needed)"), network);
    net_user->setObjectName(QStringLiteral("netUser"));
    auto* net_tap = new QRadioButton(tr("&Tap device"), network);
    net_tap->setObjectName(QStringLiteral("netTap"));
    network_->addButton(net_none, static_cast<int>(VmDraft::Network::None));
    network_->addButton(net_user, static_cast<int>(VmDraft::Network::User));
    network_->addButton(net_tap, static_cast<int>(VmDraft::Network::Tap));
    net_user->setChecked(true);
    forwards_ = new QLineEdit(network);
    forwards_->setObjectName(QStringLiteral("forwards"));
    forwards_->setPlaceholderText(tr("for example tcp:8080:80 tcp:2222:22"));
    tap_ = new QLineEdit(network);
    tap_->setObjectName(QStringLiteral("tap"));
    tap_->setPlaceholderText(QStringLiteral("tap0"));
    display_ = new QCheckBox(tr("A &screen, keyboard and tablet (virtio-gpu, virtio-input)"), network);
    display_->setObjectName(QStringLiteral("display"));
    display_->setChecked(true);
    auto* network_form = new QFormLayout;
    network_form->addRow(net_none);
    network_form->addRow(net_user);
    network_form->addRow(tr("&Port forwards:"), forwards_);
    network_form->addRow(net_tap);
    network_form->addRow(tr("T&ap name:"), tap_);
    network_form->addRow(display_);
    errors_[NetworkPage] = make_error_label(network);
    auto* network_layout = new QVBoxLayout(network);
    network_layout->addLayout(network_form);
    network_layout->addStretch();
    network_layout->addWidget(errors_[NetworkPage]);
    setPage(NetworkPage, network);

    // ---- summary
    auto* summary = new WizardPage(this, SummaryPage);
    summary->setTitle(tr("Summary"));
    summary->setFinalPage(true);
    summary_ = new QLabel(summary);
    summary_->setObjectName(QStringLiteral("summary"));
    summary_->setWordWrap(true);
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    progress_ = new QProgressBar(summary);
    progress_->setObjectName(QStringLiteral("progress"));
    progress_->setRange(0, 0);
    progress_->setFormat(tr("Creating…"));
    progress_->setTextVisible(true);
    progress_->hide();
    errors_[SummaryPage] = make_error_label(summary);
    auto* summary_layout = new QVBoxLayout(summary);
    summary_layout->addWidget(summary_);
    summary_layout->addStretch();
    summary_layout->addWidget(progress_);
    summary_layout->addWidget(errors_[SummaryPage]);
    setPage(SummaryPage, summary);
    setButtonText(QWizard::FinishButton, tr("&Create"));
}

HostConnection* NewVmWizard::host() const {
    const int index = host_->currentIndex();
    return index >= 0 && index < hosts_.size() ? hosts_[index].data() : nullptr;
}

VmDraft NewVmWizard::draft() const {
    VmDraft draft;
    draft.name = name_->text().trimmed();
    draft.vcpus = static_cast<unsigned>(vcpus_->value());
    draft.memory_mib = static_cast<quint64>(memory_->value());
    draft.boot = static_cast<VmDraft::Boot>(boot_->checkedId());
    if (draft.boot == VmDraft::Boot::Kernel) {
        draft.kernel = kernel_->text().trimmed();
        draft.initrd = initrd_->text().trimmed();
        draft.cmdline = cmdline_->text();
    }
    draft.disk_image = disk_->text().trimmed();
    draft.network = static_cast<VmDraft::Network>(network_->checkedId());
    if (draft.network == VmDraft::Network::User)
        draft.host_forwards = forwards_->text().split(QRegularExpression(QStringLiteral("[\\s,]+")), Qt::SkipEmptyParts);
    if (draft.network == VmDraft::Network::Tap) draft.tap = tap_->text().trimmed();
    draft.display = display_->isChecked();
    return draft;
}

QString NewVmWizard::error_text() const {
    for (const QLabel* label : errors_)
        if (!label->isHidden() && !label->text().isEmpty()) return label->text();
    return {};
}

void NewVmWizard::show_error(const QString& text) {
    for (QLabel* label : errors_) label->hide();
    QLabel* label = errors_[std::clamp(currentId(), 0, 3)];
    label->setText(text);
    label->setVisible(!text.isEmpty());
}

bool NewVmWizard::check_page(int id) {
    // Later pages' fields are stood in for, so each page is judged on its own entries.
    VmDraft candidate = draft();
    if (id <= ResourcesPage) {
        candidate.boot = VmDraft::Boot::Kernel;
        candidate.kernel = QStringLiteral("/later");
        candidate.initrd.clear();
        candidate.disk_image.clear();
    }
    if (id <= BootPage) candidate.network = VmDraft::Network::None;
    if (id == ResourcesPage && !host()) {
        show_error(tr("There is no host to create the VM on."));
        return false;
    }
    const Result<void> valid = validate(candidate);
    show_error(valid ? QString() : QString::fromStdString(valid.error().message));
    return valid.ok();
}

void NewVmWizard::update_summary() {
    const VmDraft d = draft();
    QString boot = d.boot == VmDraft::Boot::Kernel
                       ? tr("kernel %1%2").arg(d.kernel, d.initrd.isEmpty() ? QString() : tr(" with initrd %1").arg(d.initrd))
                       : tr("disk image %1").arg(d.disk_image);
    QString network = d.network == VmDraft::Network::None ? tr("none")
                      : d.network == VmDraft::Network::User
                          ? (d.host_forwards.isEmpty() ? tr("user-mode NAT")
                                                       : tr("user-mode NAT, forwarding %1").arg(d.host_forwards.join(QStringLiteral(", "))))
                          : tr("tap device %1").arg(d.tap);
    summary_->setText(tr("Create <b>%1</b> on %2: %3 vCPU(s), %4 MiB of memory; boots %5; network: %6; screen: %7.")
                          .arg(d.name.toHtmlEscaped(), host() ? host()->label().toHtmlEscaped() : QString())
                          .arg(d.vcpus)
                          .arg(d.memory_mib)
                          .arg(boot.toHtmlEscaped(), network.toHtmlEscaped(), d.display ? tr("yes") : tr("no")));
}

void NewVmWizard::accept() {
    if (submitting_) return;
    if (!check_page(SummaryPage)) return;
    HostConnection* target = host();
    if (!target || target->status() != HostConnection::Status::Connected) {
        show_error(tr("Host %1 is not connected: %2").arg(host_->currentText(), target ? target->status_text() : QString()));
        return;
    }
    Result<QString> json = definition_json(draft());
    if (!json) {
        show_error(QString::fromStdString(json.error().message));
        return;
    }
    submitting_ = true;
    const quint64 submission = ++submission_;
    show_error({});
    progress_->show();
    button(QWizard::FinishButton)->setEnabled(false);
    button(QWizard::BackButton)->setEnabled(false);
    const QString name = draft().name;
    QPointer<HostConnection> guarded = target;
    on_reply(target->define_vm(*json), this, [this, submission, guarded, name](const QDBusMessage& reply) {
        if (submission != submission_) return;  // cancelled: the list shows the VM if atolld made it
        submitting_ = false;
        progress_->hide();
        button(QWizard::FinishButton)->setEnabled(true);
        button(QWizard::BackButton)->setEnabled(true);
        if (reply.type() == QDBusMessage::ErrorMessage) {
            show_error(tr("atolld refused: %1").arg(describe_error(reply.errorName(), reply.errorMessage())));
            return;
        }
        if (guarded) Q_EMIT vmDefined(guarded, name);
        QWizard::accept();
    });
}

void NewVmWizard::reject() {
    if (submitting_) {
        ++submission_;
        submitting_ = false;
    }
    QWizard::reject();
}

}  // namespace atl::console
