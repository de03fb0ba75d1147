// The viewer against the real atoll-display on a private bus, with the fake
// VMM of the display tests (tests/integration/display/fake_vmm.h) on its link:
// the pixels shown are the surface's, damage is redrawn, keys and pointer
// reach the link, and a resized window asks the guest for its size.
#include "atoll_host.h"
#include "fake_vmm.h"

#include <atoll/console/viewer_window.h>

#include <QAction>
#include <QApplication>
#include <QDBusConnection>
#include <QDBusConnectionInterface>
#include <QDir>
#include <QMenu>
#include <QProcess>
#include <QTest>
#include <QThread>
#include <QWheelEvent>

#include <fcntl.h>
#include <linux/input-event-codes.h>

#include <memory>

using namespace atl::console;
using atl::display::testing::FakeVmm;
using atl::display::testing::SharedSurface;
using atl::display::testing::pattern_pixel;
using nlohmann::json;

class ViewerTest : public QObject {
    Q_OBJECT

private:
    QTemporaryDir dir_{QDir::tempPath() + QStringLiteral("/atoll-viewer-it-XXXXXX")};
    atl::console::testing::PrivateBus bus_;
    QProcess display_;
    std::unique_ptr<FakeVmm> vmm_;
    std::unique_ptr<SharedSurface> surface_;
    std::unique_ptr<ViewerWindow> viewer_;
    std::vector<json> heard_;  // what the fake VMM received, in order

    void listen() {
        while (auto message = vmm_->receive(std::chrono::milliseconds(5))) heard_.push_back(*message);
    }
    // Until the fake VMM has heard messages of `type` matching `accept`; the event loop keeps running.
    std::vector<json> heard(const std::string& type, const std::function<bool(const json&)>& accept = {}) {
        listen();
        std::vector<json> matching;
        for (const json& message : heard_)
            if (message.value("type", "") == type && (!accept || accept(message))) matching.push_back(message);
        return matching;
    }
    bool shows(const SharedSurface& surface, uint32_t seed_inside, QRect rect = {}, uint32_t seed_outside = 0) {
        const QImage image = viewer_->display_widget()->grab().toImage().convertToFormat(QImage::Format_RGB32);
        if (image.width() < static_cast<int>(surface.width) || image.height() < static_cast<int>(surface.height)) return false;
        for (uint32_t y = 0; y < surface.height; ++y)
            for (uint32_t x = 0; x < surface.width; ++x) {
                const bool inside = rect.isNull() || rect.contains(static_cast<int>(x), static_cast<int>(y));
                const uint32_t want = pattern_pixel(x, y, inside ? seed_inside : seed_outside);
                if ((image.pixel(static_cast<int>(x), static_cast<int>(y)) & 0xffffff) != want) return false;
            }
        return true;
    }

private Q_SLOTS:
    void initTestCase() {
        atl::console::testing::quiet_offscreen_warnings();
        QVERIFY(dir_.isValid());
        QString why;
        QVERIFY2(bus_.start(dir_.path(), &why), qPrintable(why));
        QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
        environment.insert(QStringLiteral("DBUS_SESSION_BUS_ADDRESS"), bus_.address());
        display_.setProcessEnvironment(environment);
        display_.setProgram(QStringLiteral(ATOLL_DISPLAY_PATH));
        display_.setArguments({QStringLiteral("--listen"), dir_.path() + QStringLiteral("/display.sock"),
                               QStringLiteral("--state-dir"), dir_.path() + QStringLiteral("/state"),
                               QStringLiteral("--no-vnc"), QStringLiteral("--dbus"), QStringLiteral("session")});
        display_.setStandardOutputFile(dir_.path() + QStringLiteral("/atoll-display.log"));
        display_.setStandardErrorFile(dir_.path() + QStringLiteral("/atoll-display.log"));
        display_.start();
        QVERIFY(display_.waitForStarted(5000));
        vmm_ = FakeVmm::connect((dir_.path() + QStringLiteral("/display.sock")).toStdString());
        QVERIFY(vmm_);
        QVERIFY(vmm_->hello("web-1"));
        surface_ = SharedSurface::create(320, 200, 1344, 4096 + 256, F_SEAL_SHRINK | F_SEAL_GROW);
        QVERIFY(surface_);
        surface_->fill(1);
        QVERIFY(vmm_->send_surface(*surface_));
        QDBusConnection bus = QDBusConnection::connectToBus(bus_.address(), QStringLiteral("viewer-test"));
        QVERIFY(bus.isConnected());
        QTRY_VERIFY_WITH_TIMEOUT(bus.interface()->isServiceRegistered(QStringLiteral("org.atoll.Display1")), 10000);
        viewer_ = std::make_unique<ViewerWindow>(bus, QStringLiteral("web-1"));
        viewer_->set_resize_with_window(false);
        viewer_->set_scaled(false);
        viewer_->show();
        QVERIFY(QTest::qWaitForWindowExposed(viewer_.get()));
    }

    void cleanupTestCase() {
        viewer_.reset();
        vmm_.reset();
        if (display_.state() != QProcess::NotRunning) {
            display_.terminate();
            QVERIFY(display_.waitForFinished(10000));
            QCOMPARE(display_.exitCode(), 0);
        }
        QDBusConnection::disconnectFromBus(QStringLiteral("viewer-test"));
    }

    void showsTheSurfacesPixels() {
        QTRY_COMPARE_WITH_TIMEOUT(viewer_->surface_size(), QSize(320, 200), 10000);
        QTRY_VERIFY_WITH_TIMEOUT(shows(*surface_, 1), 5000);
        QCOMPARE(viewer_->status_text(), QStringLiteral("320 × 200"));
        QVERIFY(QDir().mkpath(QStringLiteral(ARTIFACT_DIR)));
        const bool hidpi = viewer_->devicePixelRatioF() > 1;
        QVERIFY(viewer_->grab().save(hidpi ? QStringLiteral(ARTIFACT_DIR "/viewer-hidpi.png") : QStringLiteral(ARTIFACT_DIR "/viewer.png")));
    }

    void redrawsDamage() {
        surface_->fill_rect(40, 30, 100, 50, 2);
        QVERIFY(vmm_->send_damage(40, 30, 100, 50));
        QTRY_VERIFY_WITH_TIMEOUT(shows(*surface_, 2, QRect(40, 30, 100, 50), 1), 5000);
    }

    void newSurfaceIsFetched() {
        auto bigger = SharedSurface::create(400, 240, 1600, 0, F_SEAL_SHRINK | F_SEAL_GROW);
        QVERIFY(bigger);
        bigger->fill(3);
        QVERIFY(vmm_->send_surface(*bigger));
        QTRY_COMPARE_WITH_TIMEOUT(viewer_->surface_size(), QSize(400, 240), 5000);
        QTRY_VERIFY_WITH_TIMEOUT(shows(*bigger, 3), 5000);
        surface_ = std::move(bigger);
    }

    void keysReachTheLink() {
        QWidget* display = viewer_->display_widget();
        display->setFocus();
        heard_.clear();
        QTest::keyClick(display, Qt::Key_A);
        QTest::keyClick(display, Qt::Key_Tab);  // the guest's, not the focus chain's
        QTest::keyClick(display, Qt::Key_Return);
        QTRY_COMPARE_WITH_TIMEOUT(heard("key").size(), size_t{6}, 5000);
        const auto keys = heard("key");
        const uint32_t codes[] = {KEY_A, KEY_A, KEY_TAB, KEY_TAB, KEY_ENTER, KEY_ENTER};
        for (size_t i = 0; i < keys.size(); ++i) {
            QCOMPARE(keys[i]["code"].get<uint32_t>(), codes[i]);
            QCOMPARE(keys[i]["pressed"].get<bool>(), i % 2 == 0);
        }
        QCOMPARE(QApplication::focusWidget(), display);
    }

    void keyCombinationMenu() {
        heard_.clear();
        auto* menu = viewer_->findChild<QMenu*>(QStringLiteral("sendKeyMenu"));
        QVERIFY(menu);
        menu->actions().constFirst()->trigger();  // Ctrl+Alt+Del
        QTRY_COMPARE_WITH_TIMEOUT(heard("key").size(), size_t{6}, 5000);
        const auto keys = heard("key");
        const std::pair<uint32_t, bool> expected[] = {{KEY_LEFTCTRL, true}, {KEY_LEFTALT, true}, {KEY_DELETE, true},
                                                      {KEY_DELETE, false},  {KEY_LEFTALT, false}, {KEY_LEFTCTRL, false}};
        for (size_t i = 0; i < keys.size(); ++i) {
            QCOMPARE(keys[i]["code"].get<uint32_t>(), expected[i].first);
            QCOMPARE(keys[i]["pressed"].get<bool>(), expected[i].second);
        }
    }

    void pointerReachesTheLink() {
        QWidget* display = viewer_->display_widget();
        heard_.clear();
        // 1:1: one surface pixel per device pixel of the 400x240 surface (HiDPI: ratio device pixels per point).
        const int ratio = qRound(display->devicePixelRatioF());
        auto tablet = [](int pixel, int size) { return static_cast<uint32_t>(pixel * 32767 / (size - 1)); };
        QTest::mouseClick(display, Qt::LeftButton, Qt::NoModifier, QPoint(100, 60));
        const uint32_t x = tablet(100 * ratio, 400), y = tablet(60 * ratio, 240);
        auto at = [x, y](const json& m) { return m["x"].get<uint32_t>() == x && m["y"].get<uint32_t>() == y; };
        QTRY_VERIFY_WITH_TIMEOUT(!heard("pointer", [&](const json& m) { return at(m) && m["buttons"] == 1; }).empty(), 5000);
        QTRY_VERIFY_WITH_TIMEOUT(!heard("pointer", [&](const json& m) { return at(m) && m["buttons"] == 0; }).empty(), 5000);
        // (QTest takes QPoint(0, 0) for "the centre": use the next point.)
        QTest::mouseClick(display, Qt::RightButton, Qt::NoModifier, QPoint(1, 1));
        const uint32_t x1 = tablet(ratio, 400), y1 = tablet(ratio, 240);
        QTRY_VERIFY_WITH_TIMEOUT(!heard("pointer", [&](const json& m) {
                                      return m["x"] == x1 && m["y"] == y1 && m["buttons"] == 2;
                                  }).empty(),
                                 5000);
        // The wheel: one notch away from the user is one step.
        QWheelEvent wheel(QPointF(50, 50), display->mapToGlobal(QPointF(50, 50)), QPoint(), QPoint(0, 120), Qt::NoButton,
                          Qt::NoModifier, Qt::NoScrollPhase, false);
        QApplication::sendEvent(display, &wheel);
        QTRY_VERIFY_WITH_TIMEOUT(!heard("wheel", [](const json& m) { return m["dy"] == 1; }).empty(), 5000);
    }

    void guestCursorShape() {
        QWidget* display = viewer_->display_widget();
        std::vector<uint32_t> argb(8 * 8, 0xff112233);
        argb[0] = 0x80ff0000;
        QVERIFY(vmm_->send_cursor(10, 10, true, 8, 8, 2, 3, argb));
        QTRY_COMPARE_WITH_TIMEOUT(display->cursor().shape(), Qt::BitmapCursor, 5000);
        const QPixmap pixmap = display->cursor().pixmap();
        const qreal ratio = display->devicePixelRatioF();
        QCOMPARE(pixmap.size(), QSize(8, 8));  // device pixels
        const QImage image = pixmap.toImage().convertToFormat(QImage::Format_ARGB32);
        QCOMPARE(image.pixel(4, 4), 0xff112233u);
        QCOMPARE(qAlpha(image.pixel(0, 0)), 0x80);
        QCOMPARE(display->cursor().hotSpot(), QPoint(qRound(2 / ratio), qRound(3 / ratio)));
        QVERIFY(vmm_->send({{"type", "cursor"}, {"scanout", 0}, {"x", 10}, {"y", 10}, {"visible", false}}));
        QTRY_COMPARE_WITH_TIMEOUT(display->cursor().shape(), Qt::BlankCursor, 5000);
        QVERIFY(vmm_->send({{"type", "cursor"}, {"scanout", 0}, {"x", 12}, {"y", 10}, {"visible", true}}));
        QTRY_COMPARE_WITH_TIMEOUT(display->cursor().shape(), Qt::BitmapCursor, 5000);
    }

    void windowResizeRequestsTheSize() {
        heard_.clear();
        viewer_->set_scaled(true);
        viewer_->set_resize_with_window(true);
        viewer_->resize(900, 700);
        QWidget* viewport = viewer_->display_widget()->parentWidget();
        QTRY_VERIFY_WITH_TIMEOUT(!heard("resize").empty(), 5000);
        const json resize = heard("resize").back();
        const qreal ratio = viewer_->devicePixelRatioF();
        QCOMPARE(resize["width"].get<int>(), qRound(viewport->width() * ratio));
        QCOMPARE(resize["height"].get<int>(), qRound(viewport->height() * ratio));
        QCOMPARE(resize["scanout"].get<int>(), 0);
        QVERIFY(resize["width"].get<int>() > 400);
    }

    void ctrlAltKeysAreTheViewers() {
        viewer_->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(viewer_.get()));
        QWidget* display = viewer_->display_widget();
        display->setFocus();
        heard_.clear();
        QTest::keyClick(display, Qt::Key_F, Qt::ControlModifier | Qt::AltModifier);
        QTRY_VERIFY(viewer_->isFullScreen());
        QTest::keyClick(display, Qt::Key_F, Qt::ControlModifier | Qt::AltModifier);
        QTRY_VERIFY(!viewer_->isFullScreen());
        // The F never reached the guest; other keys with Ctrl do.
        QTest::keyClick(display, Qt::Key_C, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(!heard("key", [](const json& m) { return m["code"] == KEY_C; }).empty(), 5000);
        QVERIFY(heard("key", [](const json& m) { return m["code"] == KEY_F; }).empty());
    }

    void aDisplayThatComesLaterAndGoes() {
        ViewerWindow late(QDBusConnection(QStringLiteral("viewer-test")), QStringLiteral("late"));
        late.set_scaled(false);
        late.set_resize_with_window(false);
        late.show();
        QTRY_COMPARE_WITH_TIMEOUT(late.status_text(), QStringLiteral("No screen"), 5000);
        auto vmm = FakeVmm::connect((dir_.path() + QStringLiteral("/display.sock")).toStdString());
        QVERIFY(vmm && vmm->hello("late"));
        auto surface = SharedSurface::create(128, 96, 512, 0, F_SEAL_SHRINK | F_SEAL_GROW);
        surface->fill(7);
        QVERIFY(vmm->send_surface(*surface));
        // DisplayAdded (or the surface's SurfaceChanged) brings it without asking again.
        QTRY_COMPARE_WITH_TIMEOUT(late.surface_size(), QSize(128, 96), 5000);
        const QImage image = late.display_widget()->grab().toImage();
        QCOMPARE(image.pixel(100, 50) & 0xffffff, pattern_pixel(100, 50, 7));
        vmm.reset();  // the VMM goes: the display object goes with it
        QTRY_VERIFY_WITH_TIMEOUT(late.surface_size().isEmpty(), 5000);
        QCOMPARE(late.status_text(), QStringLiteral("No screen"));
    }

    void surfaceGoneSaysSo() {
        QVERIFY(vmm_->send({{"type", "disable"}, {"scanout", 0}}));
        QTRY_VERIFY_WITH_TIMEOUT(viewer_->surface_size().isEmpty(), 5000);
        QCOMPARE(viewer_->status_text(), QStringLiteral("Screen off"));
    }
};

QTEST_MAIN(ViewerTest)
#include "viewer_test.moc"
