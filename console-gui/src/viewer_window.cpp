#include "display_view.h"

#include <atoll/console/host_connection.h>
#include <atoll/console/viewer_window.h>
#include <atoll/display/dbus_api.h>

#include <QAction>
#include <QCloseEvent>
#include <QDBusArgument>
#include <QDBusMessage>
#include <QDBusObjectPath>
#include <QDBusUnixFileDescriptor>
#include <QLabel>
#include <QMenuBar>
#include <QScrollArea>
#include <QStatusBar>
#include <QTimer>

#include <algorithm>
#include <linux/input-event-codes.h>

namespace atl::console {
namespace {

namespace api = atl::display::dbus;
const QString kDisplayService = QLatin1String(api::kBusName);

}  // namespace

ViewerWindow::ViewerWindow(const QDBusConnection& display_bus, const QString& vm_name, QWidget* parent)
    : QMainWindow(parent), bus_(display_bus), vm_name_(vm_name),
      path_(QString::fromStdString(api::object_path(vm_name.toStdString()))), scroll_(new QScrollArea(this)),
      view_(new DisplayView), status_(new QLabel(this)), resize_timer_(new QTimer(this)) {
    setObjectName(QStringLiteral("viewer"));
    setWindowTitle(tr("%1 — Atoll").arg(vm_name));
    scroll_->setWidget(view_);
    scroll_->setWidgetResizable(true);
    scroll_->setAlignment(Qt::AlignCenter);
    scroll_->setFrameShape(QFrame::NoFrame);
    scroll_->setBackgroundRole(QPalette::Dark);
    scroll_->viewport()->installEventFilter(this);
    setCentralWidget(scroll_);
    status_->setObjectName(QStringLiteral("viewerStatus"));
    statusBar()->addWidget(status_, 1);

    // Ctrl+Alt+<key>: the screen passes these on (DisplayView::event), so they work while it has focus.
    QMenu* view_menu = menuBar()->addMenu(tr("&View"));
    scaled_ = view_menu->addAction(tr("&Scale to window"));
    scaled_->setObjectName(QStringLiteral("actionScale"));
    scaled_->setCheckable(true);
    scaled_->setChecked(true);
    scaled_->setShortcut(QKeySequence(tr("Ctrl+Alt+S")));
    connect(scaled_, &QAction::toggled, this, &ViewerWindow::set_scaled);
    follow_ = view_menu->addAction(tr("&Resize guest with window"));
    follow_->setObjectName(QStringLiteral("actionFollowSize"));
    follow_->setCheckable(true);
    follow_->setChecked(true);
    follow_->setShortcut(QKeySequence(tr("Ctrl+Alt+R")));
    connect(follow_, &QAction::toggled, this, &ViewerWindow::set_resize_with_window);
    fullscreen_ = view_menu->addAction(QIcon::fromTheme(QStringLiteral("view-fullscreen")), tr("&Fullscreen"));
    fullscreen_->setObjectName(QStringLiteral("actionFullscreen"));
    fullscreen_->setCheckable(true);
    fullscreen_->setShortcuts({QKeySequence(tr("Ctrl+Alt+F")), QKeySequence::FullScreen});
    connect(fullscreen_, &QAction::triggered, this, &ViewerWindow::toggle_fullscreen);
    view_menu->addSeparator();
    QAction* menu_focus = view_menu->addAction(tr("Release &keyboard to the menu"));
    menu_focus->setShortcut(QKeySequence(tr("Ctrl+Alt+M")));
    connect(menu_focus, &QAction::triggered, this, [this] {
        if (isFullScreen()) toggle_fullscreen();
        menuBar()->setFocus(Qt::ShortcutFocusReason);
        menuBar()->setActiveAction(menuBar()->actions().constFirst());
    });
    QAction* close_action = view_menu->addAction(QIcon::fromTheme(QStringLiteral("window-close")), tr("&Close"));
    close_action->setShortcut(QKeySequence(tr("Ctrl+Alt+W")));
    connect(close_action, &QAction::triggered, this, &QWidget::close);
    // Also on the window: a hidden menu bar (fullscreen) takes its actions' shortcuts with it.
    addActions(view_menu->actions());

    QMenu* keys = menuBar()->addMenu(tr("Send &key"));
    keys->setObjectName(QStringLiteral("sendKeyMenu"));
    struct Combination {
        QString label;
        QVector<uint32_t> codes;
    };
    QVector<Combination> combinations = {
        {tr("Ctrl+Alt+&Del"), {KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE}},
        {tr("Ctrl+Alt+&Backspace"), {KEY_LEFTCTRL, KEY_LEFTALT, KEY_BACKSPACE}},
        {tr("&Print Screen"), {KEY_SYSRQ}},
        {tr("Alt+&Tab"), {KEY_LEFTALT, KEY_TAB}},
        {tr("Alt+F&4"), {KEY_LEFTALT, KEY_F4}},
    };
    for (uint32_t n = 1; n <= 8; ++n)
        combinations.push_back({tr("Ctrl+Alt+F&%1").arg(n), {KEY_LEFTCTRL, KEY_LEFTALT, KEY_F1 + n - 1}});
    for (const Combination& combination : combinations) {
        QAction* action = keys->addAction(combination.label);
        const QVector<uint32_t> codes = combination.codes;
        connect(action, &QAction::triggered, this, [this, codes] { send_combination(codes); });
    }

    connect(view_, &DisplayView::keyEvent, this,
            [this](uint32_t code, bool pressed) { call(QStringLiteral("SendKey"), {code, pressed}); });
    connect(view_, &DisplayView::pointerEvent, this, [this](uint32_t x, uint32_t y, uint32_t buttons) {
        call(QStringLiteral("SendPointer"), {x, y, buttons});
    });
    connect(view_, &DisplayView::wheelSteps, this,
            [this](int steps) { call(QStringLiteral("SendWheel"), {std::clamp(steps, -120, 120)}); });

    // A window being resized by hand sends one request when it settles, not one per pixel.
    resize_timer_->setSingleShot(true);
    resize_timer_->setInterval(300);
    connect(resize_timer_, &QTimer::timeout, this, &ViewerWindow::request_resize);

    const QString display_interface = QLatin1String(api::kDisplayInterface);
    const QString manager_interface = QLatin1String(api::kManagerInterface);
    bus_.connect(kDisplayService, path_, display_interface, QStringLiteral("SurfaceChanged"), this,
                 SLOT(onSurfaceChanged(QDBusMessage)));
    bus_.connect(kDisplayService, path_, display_interface, QStringLiteral("SurfaceDisabled"), this,
                 SLOT(onSurfaceDisabled(QDBusMessage)));
    bus_.connect(kDisplayService, path_, display_interface, QStringLiteral("Damage"), this, SLOT(onDamage(QDBusMessage)));
    bus_.connect(kDisplayService, path_, display_interface, QStringLiteral("CursorChanged"), this,
                 SLOT(onCursorChanged(QDBusMessage)));
    bus_.connect(kDisplayService, QLatin1String(api::kManagerPath), manager_interface, QStringLiteral("DisplayAdded"),
                 this, SLOT(onDisplayAdded(QDBusMessage)));
    bus_.connect(kDisplayService, QLatin1String(api::kManagerPath), manager_interface, QStringLiteral("DisplayRemoved"),
                 this, SLOT(onDisplayRemoved(QDBusMessage)));
    view_->setFocus();
    resize(800, 600);
    fetch_surface();
    fetch_cursor();
}

ViewerWindow::~ViewerWindow() = default;

QWidget* ViewerWindow::display_widget() const { return view_; }
QSize ViewerWindow::surface_size() const { return view_->surface_size(); }
QString ViewerWindow::status_text() const { return status_->text(); }

void ViewerWindow::set_status(const QString& text) { status_->setText(text); }

void ViewerWindow::set_scaled(bool scaled) {
    scaled_->setChecked(scaled);
    view_->set_scaled(scaled);
    scroll_->setWidgetResizable(scaled);
    if (!scaled) view_->resize(view_->sizeHint());
}

void ViewerWindow::set_resize_with_window(bool follow) {
    follow_->setChecked(follow);
    if (follow) resize_timer_->start();
}

void ViewerWindow::toggle_fullscreen() {
    if (isFullScreen()) showNormal();
    else showFullScreen();
    fullscreen_->setChecked(isFullScreen());
    menuBar()->setVisible(!isFullScreen());
    statusBar()->setVisible(!isFullScreen());
}

void ViewerWindow::call(const QString& method, const QVariantList& arguments) {
    auto message = QDBusMessage::createMethodCall(kDisplayService, path_, QLatin1String(api::kDisplayInterface), method);
    message.setArguments(arguments);
    // Input is fire-and-forget and keeps its order on the connection; nothing waits for the reply.
    message.setAutoStartService(false);
    bus_.send(message);
}

void ViewerWindow::send_combination(const QVector<uint32_t>& codes) {
    for (uint32_t code : codes) call(QStringLiteral("SendKey"), {code, true});
    for (auto it = codes.rbegin(); it != codes.rend(); ++it) call(QStringLiteral("SendKey"), {*it, false});
}

void ViewerWindow::fetch_surface() {
    const quint64 generation = ++fetch_generation_;
    auto message = QDBusMessage::createMethodCall(kDisplayService, path_, QLatin1String(api::kDisplayInterface),
                                                  QStringLiteral("GetSurface"));
    message << 0u;
    on_reply(bus_.asyncCall(message, 10000), this, [this, generation](const QDBusMessage& reply) {
        if (generation != fetch_generation_) return;  // a newer surface was asked for
        if (reply.type() == QDBusMessage::ErrorMessage) {
            const QString name = reply.errorName();
            if (name == QLatin1String(api::kErrorNoSurface))
                view_->clear_surface(tr("The guest has not turned its screen on."));
            else if (name == QLatin1String("org.freedesktop.DBus.Error.UnknownObject") ||
                     name == QLatin1String("org.freedesktop.DBus.Error.UnknownMethod") ||
                     name == QLatin1String(api::kErrorGone))
                view_->clear_surface(tr("No screen for '%1' yet: it shows when the VM runs with a display.").arg(vm_name_));
            else if (name == QLatin1String("org.freedesktop.DBus.Error.ServiceUnknown"))
                view_->clear_surface(tr("atoll-display is not running on this machine's bus."));
            else
                view_->clear_surface(describe_error(name, reply.errorMessage()));
            set_status(tr("No screen"));
            return;
        }
        const QVariantList values = reply.arguments();
        if (values.size() < 7) return;
        const auto fd = values.at(0).value<QDBusUnixFileDescriptor>();
        const uint32_t width = values.at(1).toUInt(), height = values.at(2).toUInt(), stride = values.at(3).toUInt();
        const quint64 offset = values.at(4).toULongLong();
        const QString format = values.at(5).toString();
        serial_ = values.at(6).toULongLong();
        if (format != QLatin1String("XRGB8888")) {
            view_->clear_surface(tr("The screen's pixel format %1 is not one this viewer knows.").arg(format));
            return;
        }
        const Result<void> shown = view_->set_surface(fd.fileDescriptor(), width, height, stride, offset);
        if (!shown) {
            view_->clear_surface(tr("Cannot show the screen: %1").arg(QString::fromStdString(shown.error().message)));
            return;
        }
        if (!scaled_->isChecked()) view_->resize(view_->sizeHint());
        set_status(tr("%1 × %2").arg(width).arg(height));
        Q_EMIT surfaceShown(QSize(static_cast<int>(width), static_cast<int>(height)));
    });
}

void ViewerWindow::fetch_cursor() {
    const quint64 generation = ++cursor_generation_;
    auto message = QDBusMessage::createMethodCall(kDisplayService, path_, QLatin1String(api::kDisplayInterface),
                                                  QStringLiteral("GetCursor"));
    message << 0u;
    on_reply(bus_.asyncCall(message, 10000), this, [this, generation](const QDBusMessage& reply) {
        if (generation != cursor_generation_ || reply.type() != QDBusMessage::ReplyMessage) return;
        const QVariantList values = reply.arguments();
        if (values.size() < 8) return;
        const uint32_t width = values.at(5).toUInt(), height = values.at(6).toUInt();
        if (width != 0 && height != 0) {
            const Result<void> set = view_->set_cursor(width, height, values.at(3).toUInt(), values.at(4).toUInt(),
                                                       values.at(7).toByteArray());
            if (!set) return;  // a shape we cannot show: the local pointer stays as it was
        }
        view_->set_cursor_visible(values.at(0).toBool() || width == 0);
    });
}

void ViewerWindow::onCursorChanged(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 5 || arguments.at(0).toUInt() != 0) return;
    if (arguments.at(4).toBool()) fetch_cursor();
    else view_->set_cursor_visible(arguments.at(1).toBool());
}

void ViewerWindow::onSurfaceChanged(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() >= 5 && arguments.at(0).toUInt() == 0) fetch_surface();
}

void ViewerWindow::onSurfaceDisabled(const QDBusMessage& message) {
    if (message.arguments().value(0).toUInt() != 0) return;
    ++fetch_generation_;
    view_->clear_surface(tr("The guest turned its screen off."));
    set_status(tr("Screen off"));
}

void ViewerWindow::onDamage(const QDBusMessage& message) {
    const QVariantList arguments = message.arguments();
    if (arguments.size() < 2 || arguments.at(0).toUInt() != 0) return;
    const auto rects = arguments.at(1).value<QDBusArgument>();
    rects.beginArray();
    while (!rects.atEnd()) {
        uint x = 0, y = 0, w = 0, h = 0;
        rects.beginStructure();
        rects >> x >> y >> w >> h;
        rects.endStructure();
        view_->damage(QRect(static_cast<int>(x), static_cast<int>(y), static_cast<int>(w), static_cast<int>(h)));
    }
    rects.endArray();
}

void ViewerWindow::onDisplayAdded(const QDBusMessage& message) {
    if (message.arguments().value(0).toString() != vm_name_) return;
    fetch_surface();
    fetch_cursor();
}

void ViewerWindow::onDisplayRemoved(const QDBusMessage& message) {
    if (message.arguments().value(0).toString() != vm_name_) return;
    ++fetch_generation_;
    view_->clear_surface(tr("'%1' has no screen now (the VM stopped).").arg(vm_name_));
    set_status(tr("No screen"));
}

bool ViewerWindow::eventFilter(QObject* watched, QEvent* event) {
    if (watched == scroll_->viewport() && event->type() == QEvent::Resize && follow_->isChecked())
        resize_timer_->start();
    return QMainWindow::eventFilter(watched, event);
}

void ViewerWindow::request_resize() {
    if (!follow_->isChecked() || !view_->has_surface()) return;
    const double ratio = devicePixelRatioF();
    const QSize wanted(std::clamp(qRound(scroll_->viewport()->width() * ratio), 64, 8192),
                       std::clamp(qRound(scroll_->viewport()->height() * ratio), 64, 8192));
    if (wanted == view_->surface_size() || wanted == last_requested_) return;
    last_requested_ = wanted;
    call(QStringLiteral("RequestResize"), {0u, static_cast<uint>(wanted.width()), static_cast<uint>(wanted.height())});
}

void ViewerWindow::closeEvent(QCloseEvent* event) {
    view_->release_all();
    QMainWindow::closeEvent(event);
}

}  // namespace atl::console
