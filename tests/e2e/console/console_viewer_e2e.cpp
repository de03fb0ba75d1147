// atoll-console-e2e: the console with a real running guest (issue 6, item 7).
//
// In the virtual test host (console-viewer-in-testhost.sh), with atolld and
// atoll-display on a private bus and a Debian guest that drew the known
// 800x600 pattern: the main window lists the VM as running with its VNC
// address; its viewer, opened from the main window as a person would (select,
// Open screen), shows the guest's pixels one to one; keys typed in the viewer
// reach the guest; the same VM seen as a remote host's (through
// systemd-stdio-bridge) points to its VNC server; Force off ends the VM and the
// viewer says so. Screenshots of both windows go to $ATOLL_E2E_ARTIFACTS.
//
//   ATOLL_E2E_BUS=ADDR ATOLL_E2E_VM=NAME ATOLL_E2E_ARTIFACTS=DIR ATOLL_E2E_GUEST_LOG=FILE
//   [ATOLL_E2E_STDIO_BRIDGE=PATH] atoll-console-e2e [QTest options]
//       ADDR: the private bus of atolld and atoll-display; FILE: the guest's serial
//       console (atollctl console); PATH: systemd-stdio-bridge (else that step skips)
//   atoll-console-e2e check-artifacts DIR      checks the screenshots again (on the build machine)
#include <atoll/console/bus_address.h>
#include <atoll/console/host_connection.h>
#include <atoll/console/main_window.h>
#include <atoll/console/viewer_window.h>
#include <atoll/console/vm_list_model.h>

#include <QAction>
#include <QApplication>
#include <QDBusConnection>
#include <QDBusConnectionInterface>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QPointer>
#include <QSet>
#include <QTest>
#include <QTreeView>

#include <cstdio>
#include <memory>
#include <optional>

namespace {

constexpr int kWidth = 800, kHeight = 600;

// The guest's pattern: tests/e2e/vnc_probe.cpp writes it (pattern_rgb), fbdraw shows it.
QRgb pattern(int x, int y) {
    return qRgb((x * 7 + y) & 0xff, (y * 3) & 0xff, (x ^ y) & 0xff);
}

// Pixels of `image` at `origin` (device pixels) that differ from the whole pattern; -1 if it does not fit.
long mismatches(const QImage& image, QPoint origin) {
    if (origin.x() < 0 || origin.y() < 0 || origin.x() + kWidth > image.width() || origin.y() + kHeight > image.height())
        return -1;
    long wrong = 0;
    for (int y = 0; y < kHeight; ++y)
        for (int x = 0; x < kWidth; ++x)
            if ((image.pixel(origin.x() + x, origin.y() + y) & 0xffffff) != (pattern(x, y) & 0xffffff)) ++wrong;
    return wrong;
}

// Where the whole pattern is in `image` (one guest pixel per image pixel), found from its first
// row's start and then checked in full.
std::optional<QPoint> find_pattern(const QImage& image) {
    for (int y = 0; y + kHeight <= image.height(); ++y)
        for (int x = 0; x + kWidth <= image.width(); ++x) {
            bool start = true;
            for (int i = 0; i < 16 && start; ++i)
                start = (image.pixel(x + i, y) & 0xffffff) == (pattern(i, 0) & 0xffffff) &&
                        (image.pixel(x + i, y + 1) & 0xffffff) == (pattern(i, 1) & 0xffffff);
            if (start && mismatches(image, QPoint(x, y)) == 0) return QPoint(x, y);
        }
    return std::nullopt;
}

// A window's screenshot that is more than a blank rectangle.
int colours_in(const QImage& image) {
    QSet<QRgb> colours;
    for (int y = 0; y < image.height(); y += 2)
        for (int x = 0; x < image.width(); x += 2) colours.insert(image.pixel(x, y));
    return static_cast<int>(colours.size());
}

int check_artifacts(const QString& dir) {
    int failures = 0;
    const QImage main_window(dir + QStringLiteral("/console-main-window.png"));
    if (main_window.isNull() || colours_in(main_window) <= 8) {
        std::printf("FAIL: %s/console-main-window.png is missing or blank\n", qPrintable(dir));
        ++failures;
    } else {
        std::printf("PASS: console-main-window.png, %dx%d, %d colours\n", main_window.width(), main_window.height(),
                    colours_in(main_window));
    }
    const QImage viewer = QImage(dir + QStringLiteral("/console-viewer.png")).convertToFormat(QImage::Format_RGB32);
    const auto origin = viewer.isNull() ? std::nullopt : find_pattern(viewer);
    if (!origin) {
        std::printf("FAIL: %s/console-viewer.png does not show the guest's 800x600 pattern\n", qPrintable(dir));
        ++failures;
    } else {
        std::printf("PASS: console-viewer.png, %dx%d, shows the guest's pattern at (%d,%d)\n", viewer.width(),
                    viewer.height(), origin->x(), origin->y());
    }
    return failures == 0 ? 0 : 1;
}

using namespace atl::console;

class ConsoleViewerE2e : public QObject {
    Q_OBJECT

private:
    QString address_ = qEnvironmentVariable("ATOLL_E2E_BUS");
    QString vm_ = qEnvironmentVariable("ATOLL_E2E_VM", QStringLiteral("web"));
    QString artifacts_ = qEnvironmentVariable("ATOLL_E2E_ARTIFACTS");
    std::unique_ptr<VmListModel> model_;
    std::unique_ptr<MainWindow> window_;
    HostConnection* host_ = nullptr;
    QPointer<ViewerWindow> viewer_;

    QString details() const { return model_->vm_index(host_, vm_, VmListModel::ReasonColumn).data().toString(); }
    QString state() const { return model_->vm_index(host_, vm_).data(VmListModel::StateRole).toString(); }
    QAction* action(QObject* owner, const char* name) { return owner->findChild<QAction*>(QLatin1String(name)); }
    QImage grab_display() const {
        return viewer_->display_widget()->grab().toImage().convertToFormat(QImage::Format_RGB32);
    }
    void save(const QImage& image, const QString& name) {
        const QString path = artifacts_ + QLatin1Char('/') + name;
        QVERIFY2(image.save(path), qPrintable(path));
        std::printf("screenshot: %s (%dx%d)\n", qPrintable(path), image.width(), image.height());
    }

private Q_SLOTS:
    void initTestCase() {
        QVERIFY2(!address_.isEmpty(), "ATOLL_E2E_BUS is not set");
        QVERIFY2(!artifacts_.isEmpty() && QDir().mkpath(artifacts_), "ATOLL_E2E_ARTIFACTS is not set or not writable");
        // atoll-display serves org.atoll.Display1 on the same private bus as atolld (--display-bus ADDR).
        const QString display_connection = QStringLiteral("atoll-display");
        QDBusConnection display = QDBusConnection::connectToBus(address_, display_connection);
        QVERIFY2(display.isConnected(), qPrintable(display.lastError().message()));
        QTRY_VERIFY_WITH_TIMEOUT(display.interface()->isServiceRegistered(QStringLiteral("org.atoll.Display1")), 10000);

        model_ = std::make_unique<VmListModel>();
        host_ = new HostConnection(QStringLiteral("testhost"), address_, model_.get());
        model_->add_host(host_);
        host_->open();
        MainWindowOptions options;
        options.display_connection = display_connection;
        window_ = std::make_unique<MainWindow>(model_.get(), options);
        window_->resize(900, 420);
        window_->show();
        QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
    }

    void cleanupTestCase() {
        delete viewer_.data();
        window_.reset();
        model_.reset();
    }

    void mainWindowListsTheRunningVm() {
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(host_, vm_).isValid(), 15000);
        QTRY_COMPARE_WITH_TIMEOUT(state(), QStringLiteral("running"), 60000);
        QCOMPARE(model_->vm_index(host_, vm_, VmListModel::StateColumn).data().toString(), QStringLiteral("Running"));
        // atoll-display serves its screen over VNC too (first port of its range); atolld says where.
        QTRY_VERIFY2_WITH_TIMEOUT(details().contains(QStringLiteral("VNC 127.0.0.1:5900")), qPrintable(details()), 90000);
        window_->view()->setCurrentIndex(model_->vm_index(host_, vm_));
        QVERIFY(action(window_.get(), "actionOpenViewer")->isEnabled());
    }

    void viewerShowsTheGuestsPattern() {
        action(window_.get(), "actionOpenViewer")->trigger();
        viewer_ = window_->findChild<ViewerWindow*>();
        QVERIFY(viewer_);
        QCOMPARE(viewer_->vm_name(), vm_);
        // One guest pixel per screen pixel, and the guest keeps its 800x600: the menu items a
        // person would uncheck, before the viewer's window size could become a resize request.
        action(viewer_, "actionFollowSize")->trigger();
        action(viewer_, "actionScale")->trigger();
        QVERIFY(!action(viewer_, "actionFollowSize")->isChecked());
        QVERIFY(!action(viewer_, "actionScale")->isChecked());
        viewer_->resize(900, 720);
        QVERIFY(QTest::qWaitForWindowExposed(viewer_));
        // The guest boots, loads virtio_gpu and draws the pattern (guest-test.sh, `console`).
        QTRY_COMPARE_WITH_TIMEOUT(viewer_->surface_size(), QSize(kWidth, kHeight), 90000);
        QCOMPARE(viewer_->devicePixelRatioF(), 1.0);
        long wrong = -1;
        QTRY_VERIFY2_WITH_TIMEOUT((wrong = mismatches(grab_display(), QPoint(0, 0))) == 0,
                                  qPrintable(QStringLiteral("%1 pixels differ from the guest's pattern").arg(wrong)), 60000);
        QCOMPARE(viewer_->status_text(), QStringLiteral("800 × 600"));
        std::printf("the viewer shows the guest's 800x600 pattern\n");
    }

    void screenshots() {
        window_->raise();
        const QImage main_window = window_->grab().toImage();
        QVERIFY(colours_in(main_window) > 8);
        // The VM's row is drawn (its name and state), not a blank line.
        const QRect row = window_->view()->visualRect(model_->vm_index(host_, vm_));
        QVERIFY(row.isValid());
        const QPoint origin = window_->view()->viewport()->mapTo(window_.get(), row.topLeft());
        QSet<QRgb> row_colours;
        for (int y = origin.y(); y < origin.y() + row.height(); ++y)
            for (int x = origin.x(); x < origin.x() + row.width(); ++x) row_colours.insert(main_window.pixel(x, y));
        QVERIFY2(row_colours.size() > 2, "the VM's row is blank");
        save(main_window, QStringLiteral("console-main-window.png"));

        const QImage viewer = viewer_->grab().toImage().convertToFormat(QImage::Format_RGB32);
        const QPoint display_origin = viewer_->display_widget()->mapTo(viewer_.data(), QPoint(0, 0));
        QCOMPARE(mismatches(viewer, display_origin), 0L);
        const auto found = find_pattern(viewer);
        QVERIFY(found);
        QCOMPARE(*found, display_origin);
        save(viewer, QStringLiteral("console-viewer.png"));
    }

    void keysTypedInTheViewerReachTheGuest() {
        // The guest prints the codes it read from its virtio keyboard on its serial console,
        // which `atollctl console` copies to $ATOLL_E2E_GUEST_LOG.
        const QString guest_log = qEnvironmentVariable("ATOLL_E2E_GUEST_LOG");
        QVERIFY2(!guest_log.isEmpty(), "ATOLL_E2E_GUEST_LOG is not set");
        QWidget* display = viewer_->display_widget();
        viewer_->activateWindow();
        display->setFocus();
        QTest::keyClicks(display, QStringLiteral("atoll"));
        const auto guest_read = [&] {
            QFile log(guest_log);
            return log.open(QIODevice::ReadOnly) && log.readAll().contains("ATOLL-KEYS 30 20 24 38 38");
        };
        QTRY_VERIFY2_WITH_TIMEOUT(guest_read(), "the guest did not print ATOLL-KEYS 30 20 24 38 38", 30000);
    }

    void aRemoteHostsVmPointsToItsVncServer() {
        // The same atolld reached as a remote host is (unixexec: + systemd-stdio-bridge, what
        // --host runs through ssh): no viewer, but where its VNC server is.
        const QString bridge = qEnvironmentVariable("ATOLL_E2E_STDIO_BRIDGE");
        if (bridge.isEmpty()) QSKIP("ATOLL_E2E_STDIO_BRIDGE is not set (systemd-stdio-bridge not found)");
        const QString socket = address_.section(QStringLiteral("path="), 1).section(QLatin1Char(','), 0, 0);
        auto* remote = new HostConnection(
            QStringLiteral("remote"),
            QStringLiteral("unixexec:path=%1,argv1=%2")
                .arg(escape_address_value(bridge), escape_address_value(QStringLiteral("--bus-path=unix:path=") + socket)),
            model_.get());
        QVERIFY(!remote->is_local());
        model_->add_host(remote);
        remote->open();
        QTRY_VERIFY_WITH_TIMEOUT(model_->vm_index(remote, vm_).isValid(), 15000);
        const QString remote_details = model_->vm_index(remote, vm_, VmListModel::ReasonColumn).data().toString();
        QVERIFY2(remote_details.contains(QStringLiteral("VNC 127.0.0.1:5900")), qPrintable(remote_details));
        window_->view()->setCurrentIndex(model_->vm_index(remote, vm_));
        window_->showMessage(QString());
        const int viewers = static_cast<int>(window_->findChildren<ViewerWindow*>().size());
        action(window_.get(), "actionOpenViewer")->trigger();
        QVERIFY2(window_->message_text().contains(QStringLiteral("runs on remote. Its VNC server there is 127.0.0.1:5900")),
                 qPrintable(window_->message_text()));
        QCOMPARE(window_->findChildren<ViewerWindow*>().size(), viewers);
        save(window_->grab().toImage(), QStringLiteral("console-main-window-remote.png"));
    }

    void forceOffEndsTheVmAndTheViewerSaysSo() {
        window_->view()->setCurrentIndex(model_->vm_index(host_, vm_));
        QTRY_VERIFY(action(window_.get(), "actionForceOff")->isEnabled());
        action(window_.get(), "actionForceOff")->trigger();
        QTRY_COMPARE_WITH_TIMEOUT(state(), QStringLiteral("shut-off"), 30000);
        QTRY_COMPARE_WITH_TIMEOUT(viewer_->status_text(), QStringLiteral("No screen"), 10000);
        QVERIFY(viewer_->surface_size().isEmpty());
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && qstrcmp(argv[1], "check-artifacts") == 0) return check_artifacts(QString::fromLocal8Bit(argv[2]));
    QApplication app(argc, argv);
    ConsoleViewerE2e test;
    return QTest::qExec(&test, argc, argv);
}

#include "console_viewer_e2e.moc"
