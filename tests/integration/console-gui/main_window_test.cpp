// The console against real atolld instances on private buses, driven through
// its widgets as a person would: the list with live state, the New VM wizard,
// the lifecycle actions, delete with its confirmation, refused entries, and a
// second host reached through systemd-stdio-bridge (what SSH carries).
#include "atoll_host.h"

#include <atoll/console/bus_address.h>
#include <atoll/console/host_connection.h>
#include <atoll/console/main_window.h>
#include <atoll/console/new_vm_wizard.h>
#include <atoll/console/viewer_window.h>
#include <atoll/console/vm_list_model.h>

#include <QAbstractButton>
#include <QAction>
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPointer>
#include <QRadioButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTest>
#include <QTreeView>

#include <memory>

using namespace atl::console;
using atl::console::testing::AtollHost;
using atl::console::testing::quiet_offscreen_warnings;

class MainWindowTest : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<AtollHost> host_a_, host_b_;
    std::unique_ptr<VmListModel> model_;
    std::unique_ptr<MainWindow> window_;
    HostConnection* connection_a_ = nullptr;

    QString cell(HostConnection* host, const QString& vm, int column) {
        return model_->vm_index(host, vm, column).data().toString();
    }
    QString state_of(HostConnection* host, const QString& vm) {
        return model_->vm_index(host, vm).data(VmListModel::StateRole).toString();
    }
    void select(HostConnection* host, const QString& vm) {
        const QModelIndex index = model_->vm_index(host, vm);
        QVERIFY2(index.isValid(), qPrintable(vm));
        window_->view()->setCurrentIndex(index);
    }
    QAction* action(const char* name) { return window_->findChild<QAction*>(QLatin1String(name)); }
    // Runs the wizard through its widgets up to the summary page.
    NewVmWizard* fill_wizard(const QString& name, int memory_mib, const QString& kernel) {
        window_->newVm();
        auto* wizard = window_->findChild<NewVmWizard*>();
        if (!wizard) return nullptr;
        auto* name_edit = wizard->findChild<QLineEdit*>(QStringLiteral("name"));
        name_edit->setFocus();
        QTest::keyClicks(name_edit, name);
        auto* memory = wizard->findChild<QSpinBox*>(QStringLiteral("memory"));
        memory->selectAll();
        QTest::keyClicks(memory, QString::number(memory_mib));
        memory->interpretText();
        wizard->next();
        if (wizard->currentId() != NewVmWizard::BootPage) return wizard;
        QTest::keyClicks(wizard->findChild<QLineEdit*>(QStringLiteral("kernel")), kernel);
        wizard->next();
        wizard->findChild<QRadioButton*>(QStringLiteral("netNone"))->click();
        wizard->next();
        return wizard;
    }

private Q_SLOTS:
    void initTestCase() {
        quiet_offscreen_warnings();
        const QString why = atl::console::testing::kvm_unusable_reason();
        if (!why.isEmpty()) QSKIP(qPrintable(why));
        host_a_ = std::make_unique<AtollHost>();
        QString error;
        QVERIFY2(host_a_->start(&error), qPrintable(error));
        QVERIFY(host_a_->define(QStringLiteral("alpha")));
        QVERIFY(host_a_->define(QStringLiteral("halter"), QStringLiteral("halt")));

        model_ = std::make_unique<VmListModel>();
        connection_a_ = new HostConnection(QStringLiteral("host-a"), host_a_->address(), model_.get());
        model_->add_host(connection_a_);
        connection_a_->open();
        MainWindowOptions options;
        options.shutdown_timeout_s = 20;
        window_ = std::make_unique<MainWindow>(model_.get(), options);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
    }

    void cleanupTestCase() {
        window_.reset();
        model_.reset();
        host_b_.reset();
        host_a_.reset();
    }

    void listsExistingVmsWithState() {
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_a_, QStringLiteral("alpha")).isValid(), 10000);
        QCOMPARE(connection_a_->status(), HostConnection::Status::Connected);
        QCOMPARE(cell(connection_a_, QStringLiteral("alpha"), VmListModel::StateColumn), QStringLiteral("Shut off"));
        QCOMPARE(cell(connection_a_, QStringLiteral("alpha"), VmListModel::VcpuColumn), QStringLiteral("1"));
        QVERIFY(cell(connection_a_, QStringLiteral("alpha"), VmListModel::MemoryColumn).contains(QStringLiteral("32")));
        QVERIFY(model_->vm_index(connection_a_, QStringLiteral("halter")).isValid());
        // Hosts at the top, VMs below, by name.
        QCOMPARE(model_->rowCount(), 1);
        QCOMPARE(model_->rowCount(model_->host_index(connection_a_)), 2);
        QCOMPARE(model_->index(0, 0, model_->host_index(connection_a_)).data().toString(), QStringLiteral("alpha"));
        // A VM defined elsewhere shows up from the VMDefined signal.
        QVERIFY(host_a_->define(QStringLiteral("delta")));
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_a_, QStringLiteral("delta")).isValid(), 10000);
        QCOMPARE(host_a_->atollctl({QStringLiteral("undefine"), QStringLiteral("delta")}).exit_code, 0);
        QTRY_VERIFY_WITH_TIMEOUT(!model_->vm_index(connection_a_, QStringLiteral("delta")).isValid(), 10000);
    }

    void wizardCreatesAVm() {
        QPointer<NewVmWizard> wizard = fill_wizard(QStringLiteral("beta"), 32, host_a_->guest(QStringLiteral("poweroff-on-button")));
        QVERIFY(wizard);
        QCOMPARE(wizard->currentId(), static_cast<int>(NewVmWizard::SummaryPage));
        QVERIFY2(wizard->error_text().isEmpty(), qPrintable(wizard->error_text()));
        wizard->button(QWizard::FinishButton)->click();
        QTRY_VERIFY_WITH_TIMEOUT(wizard.isNull(), 10000);
        const auto list = host_a_->atollctl({QStringLiteral("list")});
        QCOMPARE(list.exit_code, 0);
        QVERIFY2(list.out.contains(QRegularExpression(QStringLiteral("(^|\\n)beta +shut-off"))), qPrintable(list.out));
        const auto info = host_a_->atollctl({QStringLiteral("info"), QStringLiteral("beta"), QStringLiteral("--json")});
        QVERIFY2(info.out.contains(QStringLiteral("\"memory_mib\": 32")) || info.out.contains(QStringLiteral("\"memory_mib\":32")),
                 qPrintable(info.out));
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_a_, QStringLiteral("beta")).isValid(), 10000);
        // The new VM is selected.
        QTRY_COMPARE(window_->view()->currentIndex().data().toString(), QStringLiteral("beta"));
    }

    void wizardDiskBootNetworkAndDisplay() {
        QFile disk(host_a_->images() + QStringLiteral("/web.img"));
        QVERIFY(disk.open(QIODevice::WriteOnly));
        QVERIFY(disk.resize(1024 * 1024));
        disk.close();
        window_->newVm();
        QPointer<NewVmWizard> wizard = window_->findChild<NewVmWizard*>();
        QVERIFY(wizard);
        QTest::keyClicks(wizard->findChild<QLineEdit*>(QStringLiteral("name")), QStringLiteral("diskful"));
        auto* vcpus = wizard->findChild<QSpinBox*>(QStringLiteral("vcpus"));
        vcpus->setValue(2);
        wizard->next();
        wizard->findChild<QRadioButton*>(QStringLiteral("bootDisk"))->click();
        QVERIFY(!wizard->findChild<QLineEdit*>(QStringLiteral("kernel"))->isEnabled());
        wizard->next();
        QCOMPARE(wizard->currentId(), static_cast<int>(NewVmWizard::BootPage));  // no disk image yet
        QVERIFY2(wizard->error_text().contains(QStringLiteral("disk image")), qPrintable(wizard->error_text()));
        QTest::keyClicks(wizard->findChild<QLineEdit*>(QStringLiteral("disk")), disk.fileName());
        wizard->next();
        QCOMPARE(wizard->currentId(), static_cast<int>(NewVmWizard::NetworkPage));
        wizard->findChild<QRadioButton*>(QStringLiteral("netUser"))->click();
        QTest::keyClicks(wizard->findChild<QLineEdit*>(QStringLiteral("forwards")), QStringLiteral("tcp:8080:80, udp:5353:53"));
        wizard->next();
        QVERIFY(wizard->findChild<QLabel*>(QStringLiteral("summary"))->text().contains(QStringLiteral("diskful")));
        wizard->button(QWizard::FinishButton)->click();
        QTRY_VERIFY_WITH_TIMEOUT(wizard.isNull(), 10000);
        const auto info = host_a_->atollctl({QStringLiteral("--json"), QStringLiteral("info"), QStringLiteral("diskful")});
        QCOMPARE(info.exit_code, 0);
        const QJsonObject config = QJsonDocument::fromJson(info.out.toUtf8()).object()[QStringLiteral("Config")].toObject();
        QCOMPARE(config[QStringLiteral("vcpus")].toInt(), 2);
        QCOMPARE(config[QStringLiteral("boot")].toObject()[QStringLiteral("disk")].toInt(-1), 0);
        QCOMPARE(config[QStringLiteral("disks")].toArray()[0].toObject()[QStringLiteral("path")].toString(), disk.fileName());
        const QJsonObject net = config[QStringLiteral("nets")].toArray()[0].toObject();
        QCOMPARE(net[QStringLiteral("mode")].toString(), QStringLiteral("user"));
        QCOMPARE(net[QStringLiteral("host_forwards")].toArray().size(), 2);
        QVERIFY(config[QStringLiteral("display")].isObject());
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_a_, QStringLiteral("diskful")).isValid(), 10000);
        QCOMPARE(host_a_->atollctl({QStringLiteral("undefine"), QStringLiteral("diskful")}).exit_code, 0);
        QTRY_VERIFY_WITH_TIMEOUT(!model_->vm_index(connection_a_, QStringLiteral("diskful")).isValid(), 10000);
    }

    void wizardRefusesMemoryZeroInWords() {
        QPointer<NewVmWizard> wizard = fill_wizard(QStringLiteral("zero"), 0, QString());
        QVERIFY(wizard);
        QCOMPARE(wizard->currentId(), static_cast<int>(NewVmWizard::ResourcesPage));
        QVERIFY2(wizard->error_text().contains(QStringLiteral("Memory: 0 MiB")), qPrintable(wizard->error_text()));
        wizard->reject();
        QTRY_VERIFY(wizard.isNull());
        QVERIFY(!host_a_->atollctl({QStringLiteral("list")}).out.contains(QStringLiteral("zero")));
    }

    void wizardShowsAtolldsRefusal() {
        // A kernel outside atolld's storage directories passes the wizard's checks; atolld refuses it.
        QPointer<NewVmWizard> wizard = fill_wizard(QStringLiteral("outside"), 32, QStringLiteral("/etc/hostname"));
        QVERIFY(wizard);
        QCOMPARE(wizard->currentId(), static_cast<int>(NewVmWizard::SummaryPage));
        wizard->button(QWizard::FinishButton)->click();
        QTRY_VERIFY_WITH_TIMEOUT(wizard->error_text().contains(QStringLiteral("outside the permitted storage directories")), 10000);
        QVERIFY(wizard->error_text().startsWith(QStringLiteral("atolld refused:")));
        QVERIFY(!wizard.isNull());  // stays open to be corrected
        wizard->reject();
        QTRY_VERIFY(wizard.isNull());
        // A name that is taken.
        wizard = fill_wizard(QStringLiteral("alpha"), 32, host_a_->guest(QStringLiteral("halt")));
        QVERIFY(wizard);
        wizard->button(QWizard::FinishButton)->click();
        QTRY_VERIFY_WITH_TIMEOUT(wizard->error_text().contains(QStringLiteral("alpha")), 10000);
        wizard->reject();
        QTRY_VERIFY(wizard.isNull());
        const auto list = host_a_->atollctl({QStringLiteral("list")});
        QVERIFY2(!list.out.contains(QStringLiteral("outside")), qPrintable(list.out));
        QCOMPARE(list.out.count(QStringLiteral("alpha")), 1);
    }

    void lifecycleFromTheActions() {
        const QString alpha = QStringLiteral("alpha");
        select(connection_a_, alpha);
        QVERIFY(action("actionStart")->isEnabled());
        QVERIFY(!action("actionShutdown")->isEnabled());
        action("actionStart")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("running"), 30000);
        QVERIFY2(host_a_->state(alpha).startsWith(QStringLiteral("running")), qPrintable(host_a_->state(alpha)));
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 30000);
        QVERIFY(action("actionShutdown")->isEnabled());
        QVERIFY(!action("actionDelete")->isEnabled());

        action("actionPause")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("paused"), 10000);
        QVERIFY(host_a_->state(alpha).startsWith(QStringLiteral("paused")));
        QTRY_VERIFY(action("actionResume")->isEnabled());
        action("actionResume")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("running"), 10000);

        // A refused call shows atolld's words: Pause twice in a row.
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 10000);
        action("actionPause")->trigger();
        window_->pauseVm();
        QTRY_VERIFY_WITH_TIMEOUT(!window_->message_text().isEmpty(), 10000);
        QVERIFY2(window_->message_text().contains(QStringLiteral("Pausing 'alpha' failed:")), qPrintable(window_->message_text()));
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("paused"), 10000);
        window_->resumeVm();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("running"), 10000);
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 10000);

        // Reboot: the state stays, BootCount (PropertiesChanged) counts it.
        const unsigned boots = model_->vm_at(model_->vm_index(connection_a_, alpha))->boot_count;
        action("actionReboot")->trigger();
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_at(model_->vm_index(connection_a_, alpha))->boot_count > boots, 10000);
        QCOMPARE(state_of(connection_a_, alpha), QStringLiteral("running"));
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 10000);

        // CPU use of a local VM: sampled from its atoll-vmm every 2 s.
        QTRY_VERIFY_WITH_TIMEOUT(cell(connection_a_, alpha, VmListModel::CpuColumn).endsWith(QStringLiteral(" %")), 8000);

        action("actionShutdown")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, alpha), QStringLiteral("shut-off"), 30000);
        QTRY_VERIFY(cell(connection_a_, alpha, VmListModel::CpuColumn).isEmpty());
        QVERIFY2(host_a_->state(alpha).contains(QStringLiteral("the guest powered off")), qPrintable(host_a_->state(alpha)));
        QCOMPARE(cell(connection_a_, alpha, VmListModel::ReasonColumn), QStringLiteral("the guest powered off"));

        // Force off a guest that ignores the power button.
        const QString halter = QStringLiteral("halter");
        select(connection_a_, halter);
        action("actionStart")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, halter), QStringLiteral("running"), 30000);
        QTRY_VERIFY_WITH_TIMEOUT(action("actionForceOff")->isEnabled(), 5000);
        action("actionForceOff")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, halter), QStringLiteral("shut-off"), 30000);
        QVERIFY2(host_a_->state(halter).contains(QStringLiteral("force-stopped")), qPrintable(host_a_->state(halter)));
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 10000);
    }

    void cancellingAStartForcesTheVmOff() {
        const QString halter = QStringLiteral("halter");
        select(connection_a_, halter);
        action("actionStart")->trigger();
        QCOMPARE(window_->operations_in_flight(), 1);
        auto* cancel = window_->findChild<QAbstractButton*>(QStringLiteral("cancelOperation"));
        QVERIFY(cancel);
        cancel->click();
        QCOMPARE(window_->operations_in_flight(), 0);
        // Either the start is stopped on its way or the VM is forced off as soon as it runs.
        QTRY_VERIFY_WITH_TIMEOUT(host_a_->state(halter).startsWith(QStringLiteral("shut-off")) &&
                                     state_of(connection_a_, halter) == QStringLiteral("shut-off"),
                                 30000);
        QTest::qWait(500);
        QVERIFY2(host_a_->state(halter).startsWith(QStringLiteral("shut-off")), qPrintable(host_a_->state(halter)));
    }

    void keyboardAlone() {
        // Focus in the list, arrows to the VM, shortcuts for the actions.
        window_->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(window_.get()));
        window_->view()->setFocus();
        select(connection_a_, QStringLiteral("alpha"));
        QTest::keyClick(window_->view(), Qt::Key_Down);
        QCOMPARE(window_->view()->currentIndex().data().toString(), QStringLiteral("beta"));
        QTest::keyClick(window_->view(), Qt::Key_R, Qt::ControlModifier);  // Start
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, QStringLiteral("beta")), QStringLiteral("running"), 30000);
        QTRY_VERIFY(action("actionForceOff")->isEnabled());
        QTest::keyClick(window_->view(), Qt::Key_D, Qt::ControlModifier | Qt::ShiftModifier);  // Force off
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_a_, QStringLiteral("beta")), QStringLiteral("shut-off"), 30000);
        QVERIFY(host_a_->state(QStringLiteral("beta")).startsWith(QStringLiteral("shut-off")));
        QTRY_COMPARE_WITH_TIMEOUT(window_->operations_in_flight(), 0, 10000);
        // The wizard opens from the keyboard and Escape leaves it.
        QTest::keyClick(window_->view(), Qt::Key_N, Qt::ControlModifier);
        QPointer<NewVmWizard> wizard = window_->findChild<NewVmWizard*>();
        QVERIFY(wizard);
        QTRY_VERIFY(wizard->isVisible());
        QTest::keyClick(wizard, Qt::Key_Escape);
        QTRY_VERIFY(wizard.isNull());
    }

    void deleteAsksFirst() {
        const QString beta = QStringLiteral("beta");
        select(connection_a_, beta);
        QVERIFY(action("actionDelete")->isEnabled());
        action("actionDelete")->trigger();
        QMessageBox* confirm = nullptr;
        QTRY_VERIFY((confirm = window_->findChild<QMessageBox*>(QStringLiteral("confirmDelete"))) != nullptr);
        QVERIFY(confirm->text().contains(beta));
        confirm->button(QMessageBox::Cancel)->click();
        QTRY_VERIFY(window_->findChild<QMessageBox*>(QStringLiteral("confirmDelete")) == nullptr);
        QTest::qWait(300);
        QVERIFY(model_->vm_index(connection_a_, beta).isValid());
        QVERIFY(host_a_->atollctl({QStringLiteral("list")}).out.contains(beta));

        select(connection_a_, beta);
        action("actionDelete")->trigger();
        QTRY_VERIFY((confirm = window_->findChild<QMessageBox*>(QStringLiteral("confirmDelete"))) != nullptr);
        confirm->button(QMessageBox::Yes)->click();
        QTRY_VERIFY_WITH_TIMEOUT(!model_->vm_index(connection_a_, beta).isValid(), 10000);
        QVERIFY(!host_a_->atollctl({QStringLiteral("list")}).out.contains(beta));
        QCOMPARE(host_a_->atollctl({QStringLiteral("state"), beta}).exit_code, 3);
    }

    void screenshot() {
        window_->resize(900, 480);
        select(connection_a_, QStringLiteral("alpha"));
        QTest::qWait(100);
        const QImage image = window_->grab().toImage();
        QVERIFY(!image.isNull());
        const QString path = QStringLiteral(ARTIFACT_DIR "/main-window.png");
        QDir().mkpath(QStringLiteral(ARTIFACT_DIR));
        QVERIFY(image.save(path));
        qInfo("screenshot: %s", qPrintable(path));
        // Not blank: the tree view's rows differ from its background, the window has several colours.
        QSet<QRgb> colours;
        for (int y = 0; y < image.height(); y += 2)
            for (int x = 0; x < image.width(); x += 2) colours.insert(image.pixel(x, y));
        QVERIFY2(colours.size() > 8, qPrintable(QString::number(colours.size())));
        const QRect row = window_->view()->visualRect(model_->vm_index(connection_a_, QStringLiteral("alpha")));
        QVERIFY(row.isValid());
        const QPoint origin = window_->view()->viewport()->mapTo(window_.get(), row.topLeft());
        const qreal ratio = image.devicePixelRatio();
        QSet<QRgb> row_colours;
        for (int y = origin.y(); y < origin.y() + row.height(); ++y)
            for (int x = origin.x(); x < origin.x() + row.width(); ++x)
                row_colours.insert(image.pixel(qRound(x * ratio), qRound(y * ratio)));
        QVERIFY2(row_colours.size() > 2, "the row of 'alpha' is blank");
    }

    void twoHostsSideBySideOneThroughTheStdioBridge() {
        host_b_ = std::make_unique<AtollHost>();
        QString error;
        QVERIFY2(host_b_->start(&error), qPrintable(error));
        QVERIFY(host_b_->define(QStringLiteral("gamma")));
        const QString bridge = QStandardPaths::findExecutable(QStringLiteral("systemd-stdio-bridge"));
        // The same transport as --host NAME=SSH-HOST, with the bridge run here instead of through ssh.
        const QString address =
            bridge.isEmpty() ? host_b_->address()
                             : QStringLiteral("unixexec:path=%1,argv1=%2")
                                   .arg(escape_address_value(bridge),
                                        escape_address_value(QStringLiteral("--bus-path=") + host_b_->address()));
        if (bridge.isEmpty()) qWarning("systemd-stdio-bridge missing: host-b is reached directly");
        auto* connection_b = new HostConnection(QStringLiteral("host-b"), address, model_.get());
        model_->add_host(connection_b);
        connection_b->open();
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_b, QStringLiteral("gamma")).isValid(), 15000);
        QCOMPARE(connection_b->status(), HostConnection::Status::Connected);
        QCOMPARE(model_->rowCount(), 2);
        QVERIFY(model_->vm_index(connection_a_, QStringLiteral("alpha")).isValid());
        QVERIFY(!model_->vm_index(connection_b, QStringLiteral("alpha")).isValid());
        QVERIFY(!connection_b->is_local() || bridge.isEmpty());
        // Signals travel the bridge too: start gamma from the GUI, stop it with atollctl.
        select(connection_b, QStringLiteral("gamma"));
        action("actionStart")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_b, QStringLiteral("gamma")), QStringLiteral("running"), 30000);
        QCOMPARE(host_b_->atollctl({QStringLiteral("force-stop"), QStringLiteral("gamma")}).exit_code, 0);
        QTRY_COMPARE_WITH_TIMEOUT(state_of(connection_b, QStringLiteral("gamma")), QStringLiteral("shut-off"), 10000);
        QVERIFY(host_a_->state(QStringLiteral("alpha")).startsWith(QStringLiteral("shut-off")));

        // Screens are local: a remote VM's is refused in words, a local one opens a viewer window.
        window_->showMessage(QString());
        action("actionOpenViewer")->trigger();
        QVERIFY2(window_->message_text().contains(QStringLiteral("runs on host-b")), qPrintable(window_->message_text()));
        QVERIFY(window_->findChildren<ViewerWindow*>().isEmpty());
        select(connection_a_, QStringLiteral("alpha"));
        action("actionOpenViewer")->trigger();
        QPointer<ViewerWindow> viewer = window_->findChild<ViewerWindow*>();
        QVERIFY(viewer);
        QCOMPARE(viewer->vm_name(), QStringLiteral("alpha"));
        QTRY_COMPARE(viewer->status_text(), QStringLiteral("No screen"));
        action("actionOpenViewer")->trigger();  // the same window again, not a second one
        QCOMPARE(window_->findChildren<ViewerWindow*>().size(), 1);
        viewer->close();
        QTRY_VERIFY(viewer.isNull());

        // A host that cannot be reached says so and leaves the others alone.
        auto* nowhere = new HostConnection(QStringLiteral("nowhere"), QStringLiteral("unix:path=/nonexistent/bus"), model_.get());
        model_->add_host(nowhere);
        nowhere->open();
        QTRY_COMPARE_WITH_TIMEOUT(nowhere->status(), HostConnection::Status::Failed, 10000);
        const QModelIndex nowhere_row = model_->host_index(nowhere);
        QCOMPARE(nowhere_row.siblingAtColumn(VmListModel::StateColumn).data().toString(), QStringLiteral("Unreachable"));
        QVERIFY2(nowhere_row.siblingAtColumn(VmListModel::ReasonColumn).data().toString().contains(QStringLiteral("Cannot reach the bus")),
                 qPrintable(nowhere_row.siblingAtColumn(VmListModel::ReasonColumn).data().toString()));
        QCOMPARE(model_->rowCount(), 3);
        QVERIFY(model_->vm_index(connection_b, QStringLiteral("gamma")).isValid());

        // atolld going away empties its host's list and says why; a new atolld is followed again.
        host_b_->stop_atolld();
        QTRY_COMPARE_WITH_TIMEOUT(connection_b->status(), HostConnection::Status::NoService, 10000);
        QCOMPARE(model_->rowCount(model_->host_index(connection_b)), 0);
        QCOMPARE(model_->host_index(connection_b).siblingAtColumn(VmListModel::StateColumn).data().toString(),
                 QStringLiteral("atolld not running"));
        QVERIFY(model_->vm_index(connection_a_, QStringLiteral("alpha")).isValid());
        QVERIFY2(host_b_->start_atolld(&error), qPrintable(error));
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_b, QStringLiteral("gamma")).isValid(), 15000);
        QCOMPARE(connection_b->status(), HostConnection::Status::Connected);
        QVERIFY(host_b_->define(QStringLiteral("epsilon")));
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(connection_b, QStringLiteral("epsilon")).isValid(), 10000);

        const QImage both = window_->grab().toImage();
        QVERIFY(both.save(QStringLiteral(ARTIFACT_DIR "/main-window-two-hosts.png")));
    }
};

QTEST_MAIN(MainWindowTest)
#include "main_window_test.moc"
