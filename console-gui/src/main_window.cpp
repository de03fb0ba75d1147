#include <atoll/console/host_connection.h>
#include <atoll/console/main_window.h>
#include <atoll/console/new_vm_wizard.h>
#include <atoll/console/viewer_window.h>
#include <atoll/console/vm_list_model.h>

#include <QAction>
#include <QApplication>
#include <QDBusConnection>
#include <QFrame>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QStatusBar>
#include <QStyle>
#include <QToolBar>
#include <QToolButton>
#include <QTreeView>
#include <QVBoxLayout>

#include <memory>

namespace atl::console {

struct MainWindow::Selection {
    HostConnection* host = nullptr;
    QString path, name, state;
    QString vnc_address;
    bool vnc_tls = false;
};

MainWindow::MainWindow(VmListModel* model, MainWindowOptions options, QWidget* parent)
    : QMainWindow(parent), model_(model), options_(std::move(options)) {
    setObjectName(QStringLiteral("mainWindow"));
    setWindowTitle(tr("Atoll console"));
    setWindowIcon(QIcon::fromTheme(QStringLiteral("computer")));

    auto* central = new QWidget(this);
    auto* layout = new QVBoxLayout(central);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(0);

    // The message bar: errors in words, dismissed by the user (no modal box to block anything).
    message_bar_ = new QFrame(central);
    message_bar_->setObjectName(QStringLiteral("messageBar"));
    static_cast<QFrame*>(message_bar_)->setFrameShape(QFrame::StyledPanel);
    message_bar_->setAutoFillBackground(true);
    auto* message_layout = new QHBoxLayout(message_bar_);
    auto* message_icon = new QLabel(message_bar_);
    const int icon_size = style()->pixelMetric(QStyle::PM_SmallIconSize);
    message_icon->setPixmap(style()->standardIcon(QStyle::SP_MessageBoxWarning).pixmap(icon_size, icon_size));
    message_label_ = new QLabel(message_bar_);
    message_label_->setObjectName(QStringLiteral("messageText"));
    message_label_->setWordWrap(true);
    message_label_->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    auto* dismiss = new QToolButton(message_bar_);
    dismiss->setIcon(style()->standardIcon(QStyle::SP_DialogCloseButton));
    dismiss->setAccessibleName(tr("Dismiss the message"));
    dismiss->setToolTip(tr("Dismiss"));
    connect(dismiss, &QToolButton::clicked, message_bar_, [this] {
        message_label_->clear();
        message_bar_->hide();
    });
    message_layout->addWidget(message_icon);
    message_layout->addWidget(message_label_, 1);
    message_layout->addWidget(dismiss);
    message_bar_->hide();

    view_ = new QTreeView(central);
    view_->setObjectName(QStringLiteral("vmView"));
    view_->setAccessibleName(tr("Hosts and virtual machines"));
    view_->setModel(model_);
    view_->setUniformRowHeights(true);
    view_->setAlternatingRowColors(true);
    view_->setAllColumnsShowFocus(true);
    view_->setSelectionBehavior(QAbstractItemView::SelectRows);
    view_->setSelectionMode(QAbstractItemView::SingleSelection);
    view_->setContextMenuPolicy(Qt::ActionsContextMenu);
    view_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    view_->header()->setStretchLastSection(true);
    view_->expandAll();
    connect(model_, &QAbstractItemModel::rowsInserted, view_, [this](const QModelIndex& parent) {
        if (!parent.isValid()) view_->expandAll();
        else view_->expand(parent);
        if (!view_->currentIndex().isValid()) view_->setCurrentIndex(model_->index(0, 0));
        select_pending();
    });
    connect(view_, &QTreeView::activated, this, [this](const QModelIndex& index) {
        if (model_->vm_at(index)) openViewer();
    });

    operations_bar_ = new QWidget(central);
    operations_bar_->setObjectName(QStringLiteral("operationsBar"));
    operations_layout_ = new QVBoxLayout(operations_bar_);
    operations_bar_->hide();

    layout->addWidget(message_bar_);
    layout->addWidget(view_, 1);
    layout->addWidget(operations_bar_);
    setCentralWidget(central);

    new_ = make_action(QStringLiteral("actionNewVm"), tr("&New virtual machine…"), QStringLiteral("document-new"),
                       QKeySequence::New, &MainWindow::newVm);
    start_ = make_action(QStringLiteral("actionStart"), tr("&Start"), QStringLiteral("media-playback-start"),
                         QKeySequence(tr("Ctrl+R")), &MainWindow::startVm);
    shutdown_ = make_action(QStringLiteral("actionShutdown"), tr("Shut &down"), QStringLiteral("system-shutdown"),
                            QKeySequence(tr("Ctrl+D")), &MainWindow::shutDownVm);
    force_off_ = make_action(QStringLiteral("actionForceOff"), tr("&Force off"), QStringLiteral("process-stop"),
                             QKeySequence(tr("Ctrl+Shift+D")), &MainWindow::forceOffVm);
    pause_ = make_action(QStringLiteral("actionPause"), tr("&Pause"), QStringLiteral("media-playback-pause"),
                         QKeySequence(tr("Ctrl+P")), &MainWindow::pauseVm);
    resume_ = make_action(QStringLiteral("actionResume"), tr("Res&ume"), QStringLiteral("media-playback-start"),
                          QKeySequence(tr("Ctrl+Shift+P")), &MainWindow::resumeVm);
    reboot_ = make_action(QStringLiteral("actionReboot"), tr("Re&boot"), QStringLiteral("view-refresh"),
                          QKeySequence(tr("Ctrl+Shift+R")), &MainWindow::rebootVm);
    viewer_ = make_action(QStringLiteral("actionOpenViewer"), tr("&Open screen"), QStringLiteral("video-display"),
                          QKeySequence(tr("Ctrl+O")), &MainWindow::openViewer);
    delete_ = make_action(QStringLiteral("actionDelete"), tr("De&lete…"), QStringLiteral("edit-delete"),
                          QKeySequence::Delete, &MainWindow::deleteVm);

    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(new_);
    file->addSeparator();
    QAction* quit = file->addAction(QIcon::fromTheme(QStringLiteral("application-exit")), tr("&Quit"));
    quit->setShortcut(QKeySequence::Quit);
    connect(quit, &QAction::triggered, this, &QWidget::close);
    QMenu* vm = menuBar()->addMenu(tr("&Virtual machine"));
    for (QAction* action : {start_, shutdown_, force_off_, pause_, resume_, reboot_}) vm->addAction(action);
    vm->addSeparator();
    vm->addAction(viewer_);
    vm->addSeparator();
    vm->addAction(delete_);
    view_->addActions({start_, shutdown_, force_off_, pause_, resume_, reboot_, viewer_, delete_});

    QToolBar* tools = addToolBar(tr("Virtual machine"));
    tools->setObjectName(QStringLiteral("toolbar"));
    tools->setToolButtonStyle(Qt::ToolButtonFollowStyle);
    for (QAction* action : {new_, start_, shutdown_, force_off_, pause_, resume_, viewer_}) tools->addAction(action);

    connect(view_->selectionModel(), &QItemSelectionModel::currentChanged, this, &MainWindow::update_actions);
    connect(model_, &QAbstractItemModel::dataChanged, this, &MainWindow::update_actions);
    connect(model_, &QAbstractItemModel::rowsRemoved, this, &MainWindow::update_actions);
    update_actions();
    statusBar()->showMessage(tr("Ready"));
    view_->setFocus();
    resize(QSize(900, 520).expandedTo(sizeHint()));
}

MainWindow::~MainWindow() = default;

QAction* MainWindow::make_action(const QString& object_name, const QString& text, const QString& icon,
                                 const QKeySequence& shortcut, void (MainWindow::*slot)()) {
    auto* action = new QAction(QIcon::fromTheme(icon), text, this);
    action->setObjectName(object_name);
    action->setShortcut(shortcut);
    action->setShortcutContext(Qt::WindowShortcut);
    connect(action, &QAction::triggered, this, slot);
    return action;
}

MainWindow::Selection MainWindow::selected() const {
    Selection selection;
    const QModelIndex index = view_->currentIndex();
    selection.host = model_->host_at(index);
    if (const VmInfo* vm = model_->vm_at(index)) {
        selection.path = vm->path;
        selection.name = vm->name;
        selection.state = vm->state;
        selection.vnc_address = vm->vnc_address;
        selection.vnc_tls = vm->vnc_tls;
    }
    return selection;
}

void MainWindow::select_pending() {
    if (!pending_host_ || pending_name_.isEmpty()) return;
    const QModelIndex index = model_->vm_index(pending_host_, pending_name_);
    if (!index.isValid()) return;
    view_->setCurrentIndex(index);
    pending_host_ = nullptr;
    pending_name_.clear();
}

void MainWindow::update_actions() {
    const Selection selection = selected();
    const bool vm = !selection.path.isEmpty();
    start_->setEnabled(vm && can_start(selection.state));
    shutdown_->setEnabled(vm && can_shut_down(selection.state));
    force_off_->setEnabled(vm && can_force_off(selection.state));
    pause_->setEnabled(vm && can_pause(selection.state));
    resume_->setEnabled(vm && can_resume(selection.state));
    reboot_->setEnabled(vm && can_reboot(selection.state));
    delete_->setEnabled(vm && can_delete(selection.state));
    viewer_->setEnabled(vm);
    new_->setEnabled(!model_->hosts().isEmpty());
}

QString MainWindow::message_text() const { return message_bar_->isVisible() ? message_label_->text() : QString(); }

int MainWindow::operations_in_flight() const { return operations_bar_->findChildren<QWidget*>(QStringLiteral("operation")).size(); }

void MainWindow::showMessage(const QString& text) {
    message_label_->setText(text);
    message_bar_->setVisible(!text.isEmpty());
}

void MainWindow::run(const QString& verb, const QString& method, const QVariantList& arguments,
                     const std::function<void(HostConnection*, const QString&)>& cancel) {
    const Selection selection = selected();
    if (!selection.host || selection.path.isEmpty()) return;
    QPointer<HostConnection> host = selection.host;
    const QString path = selection.path, name = selection.name;

    auto* row = new QWidget(operations_bar_);
    row->setObjectName(QStringLiteral("operation"));
    auto* row_layout = new QHBoxLayout(row);
    row_layout->setContentsMargins(0, 0, 0, 0);
    auto* label = new QLabel(tr("%1 '%2'…").arg(verb, name), row);
    auto* progress = new QProgressBar(row);
    progress->setRange(0, 0);  // atolld reports no steps: busy until the reply
    progress->setAccessibleName(label->text());
    auto* cancel_button = new QPushButton(tr("Cancel"), row);
    cancel_button->setObjectName(QStringLiteral("cancelOperation"));
    cancel_button->setToolTip(cancel ? tr("Stop it") : tr("Stop waiting (atolld carries on)"));
    row_layout->addWidget(label);
    row_layout->addWidget(progress, 1);
    row_layout->addWidget(cancel_button);
    operations_layout_->addWidget(row);
    operations_bar_->show();
    statusBar()->showMessage(label->text());

    QPointer<QWidget> guarded_row = row;
    auto finish_row = [this, guarded_row] {
        if (!guarded_row) return;
        guarded_row->hide();
        guarded_row->setObjectName(QString());
        guarded_row->deleteLater();
        if (operations_in_flight() == 0) operations_bar_->hide();
    };
    // Cancelled: the row goes at once, the reply is still watched so that a cancelled
    // operation that completes anyway (a Start that won the race) is undone.
    auto cancelled = std::make_shared<bool>(false);
    on_reply(selection.host->call_vm(path, method, arguments), this,
             [this, finish_row, verb, name, cancelled, cancel, host, path](const QDBusMessage& reply) {
                const bool failed = reply.type() == QDBusMessage::ErrorMessage;
                if (*cancelled) {
                    if (!failed && cancel && host) cancel(host, path);
                    return;
                }
                if (failed) {
                    showMessage(tr("%1 '%2' failed: %3").arg(verb, name, describe_error(reply.errorName(), reply.errorMessage())));
                    statusBar()->showMessage(tr("%1 '%2' failed").arg(verb, name), 5000);
                } else {
                    statusBar()->showMessage(tr("%1 '%2': done").arg(verb, name), 5000);
                }
                finish_row();
            });
    connect(cancel_button, &QPushButton::clicked, this, [finish_row, cancel, cancelled, host, path] {
        *cancelled = true;
        if (cancel && host) cancel(host, path);
        finish_row();
    });
}

namespace {

void force_stop(HostConnection* host, const QString& path) {
    // Allowed while a Start is in progress (dom0/README.md): the reply is not awaited.
    on_reply(host->call_vm(path, QStringLiteral("ForceStop")), host, [](const QDBusMessage&) {});
}

}  // namespace

void MainWindow::startVm() { run(tr("Starting"), QStringLiteral("Start"), {}, force_stop); }
void MainWindow::shutDownVm() {
    run(tr("Shutting down"), QStringLiteral("Shutdown"), {static_cast<uint>(options_.shutdown_timeout_s), false});
}
void MainWindow::forceOffVm() { run(tr("Forcing off"), QStringLiteral("ForceStop"), {}); }
void MainWindow::pauseVm() { run(tr("Pausing"), QStringLiteral("Pause"), {}); }
void MainWindow::resumeVm() { run(tr("Resuming"), QStringLiteral("Resume"), {}); }
void MainWindow::rebootVm() { run(tr("Rebooting"), QStringLiteral("Reboot"), {}); }

void MainWindow::deleteVm() {
    const Selection selection = selected();
    if (selection.path.isEmpty()) return;
    auto* confirm = new QMessageBox(QMessageBox::Question, tr("Delete virtual machine"),
                                    tr("Delete '%1' from %2?").arg(selection.name, selection.host->label()),
                                    QMessageBox::Yes | QMessageBox::Cancel, this);
    confirm->setObjectName(QStringLiteral("confirmDelete"));
    confirm->setInformativeText(tr("Its definition is removed. Disk images stay where they are."));
    confirm->setDefaultButton(QMessageBox::Cancel);
    confirm->button(QMessageBox::Yes)->setText(tr("&Delete"));
    confirm->setAttribute(Qt::WA_DeleteOnClose);
    const QString name = selection.name;
    QPointer<HostConnection> host = selection.host;
    connect(confirm, &QMessageBox::finished, this, [this, confirm, host, name](int) {
        if (confirm->standardButton(confirm->clickedButton()) != QMessageBox::Yes || !host) return;
        // The selection may have moved while the question was open: act on the VM that was asked about.
        const QModelIndex index = model_->vm_index(host, name);
        if (!index.isValid()) return;
        view_->setCurrentIndex(index);
        run(tr("Deleting"), QStringLiteral("Undefine"), {});
    });
    confirm->open();
}

void MainWindow::newVm() {
    if (auto* existing = findChild<NewVmWizard*>()) {
        existing->raise();
        existing->activateWindow();
        return;
    }
    auto* wizard = new NewVmWizard(model_->hosts(), selected().host, this);
    wizard->setAttribute(Qt::WA_DeleteOnClose);
    connect(wizard, &NewVmWizard::vmDefined, this, [this](HostConnection* host, const QString& name) {
        statusBar()->showMessage(tr("Created '%1'").arg(name), 5000);
        // DefineVM's reply may come before VMDefined has brought the VM into the list.
        pending_host_ = host;
        pending_name_ = name;
        select_pending();
    });
    wizard->open();
}

void MainWindow::openViewer() {
    const Selection selection = selected();
    if (selection.path.isEmpty()) return;
    if (!selection.host->is_local()) {
        // Surfaces are memfds: they cannot cross SSH, VNC can (forwarded by the user's ssh).
        if (selection.vnc_address.isEmpty())
            showMessage(tr("The screen viewer shows VMs of this machine; '%1' runs on %2, and atoll-display serves no "
                           "screen for it there now (it is not running or has no display).")
                            .arg(selection.name, selection.host->label()));
        else
            showMessage(tr("The screen viewer shows VMs of this machine; '%1' runs on %2. Its VNC server there is "
                           "%3%4: reach it through an SSH tunnel (ssh -L).")
                            .arg(selection.name, selection.host->label(), selection.vnc_address,
                                 selection.vnc_tls ? tr(" (TLS only)") : QString()));
        return;
    }
    const QString key = selection.host->label() + QLatin1Char('/') + selection.name;
    for (auto* existing : findChildren<ViewerWindow*>()) {
        if (existing->property("atollKey").toString() == key) {
            existing->raise();
            existing->activateWindow();
            return;
        }
    }
    auto* viewer = new ViewerWindow(QDBusConnection(options_.display_connection), selection.name, this);
    viewer->setWindowFlag(Qt::Window);
    viewer->setProperty("atollKey", key);
    viewer->setAttribute(Qt::WA_DeleteOnClose);
    viewer->show();
}

}  // namespace atl::console
