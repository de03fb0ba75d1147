#include "display_view.h"

#include <atoll/console/key_codes.h>

#include <QGuiApplication>
#include <QKeyEvent>
#include <QPainter>
#include <QPixmap>
#include <QPalette>

#include <QtMath>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace atl::console {
namespace {

constexpr uint32_t kMaxSide = 16384;

bool platform_keycodes_are_xkb() {
    // xcb and wayland report X/XKB keycodes (evdev + 8) as native scan codes.
    const QString platform = QGuiApplication::platformName();
    return platform == QLatin1String("xcb") || platform.startsWith(QLatin1String("wayland"));
}

uint32_t button_bits(Qt::MouseButtons buttons) {
    // org.atoll.Display1 SendPointer: bit 0 left, 1 right, 2 middle.
    return (buttons & Qt::LeftButton ? 1u : 0u) | (buttons & Qt::RightButton ? 2u : 0u) |
           (buttons & Qt::MiddleButton ? 4u : 0u);
}

}  // namespace

DisplayView::DisplayView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("display"));
    setAccessibleName(tr("Guest screen"));
    setFocusPolicy(Qt::StrongFocus);
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    setAttribute(Qt::WA_InputMethodEnabled, false);
    setMinimumSize(64, 48);
    placeholder_ = tr("Connecting to the display…");
}

DisplayView::~DisplayView() { unmap(); }

void DisplayView::unmap() {
    image_ = QImage();
    if (map_) munmap(map_, map_bytes_);
    map_ = nullptr;
    map_bytes_ = 0;
}

Result<void> DisplayView::set_surface(int fd, uint32_t width, uint32_t height, uint32_t stride, uint64_t offset) {
    if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide)
        return make_error("surface size " + std::to_string(width) + "x" + std::to_string(height) + " out of range");
    if (stride % 4 != 0 || offset % 4 != 0 || stride < uint64_t{width} * 4)
        return make_error("surface stride " + std::to_string(stride) + " or offset " + std::to_string(offset) + " invalid");
    // A file that can shrink under the mapping would raise SIGBUS here; atoll-display only passes sealed memfds.
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) return make_error("surface descriptor is not sealed against shrinking");
    struct stat status {};
    const uint64_t needed = offset + uint64_t{stride} * height;
    if (fstat(fd, &status) != 0 || static_cast<uint64_t>(status.st_size) < needed)
        return make_error("surface file is smaller than the surface");
    void* map = mmap(nullptr, needed, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return make_error(std::string("cannot map the surface: ") + strerror(errno));
    unmap();
    map_ = map;
    map_bytes_ = needed;
    // XRGB8888 little-endian is QImage::Format_RGB32 byte for byte.
    image_ = QImage(static_cast<const uchar*>(map_) + offset, static_cast<int>(width), static_cast<int>(height),
                    static_cast<qsizetype>(stride), QImage::Format_RGB32);
    updateGeometry();
    update();
    return {};
}

void DisplayView::clear_surface(const QString& why) {
    unmap();
    placeholder_ = why;
    update();
}

void DisplayView::damage(const QRect& rect) {
    if (image_.isNull()) return;
    const QRectF target = target_rect();
    const double sx = target.width() / image_.width(), sy = target.height() / image_.height();
    update(QRectF(target.x() + rect.x() * sx, target.y() + rect.y() * sy, rect.width() * sx, rect.height() * sy)
               .toAlignedRect()
               .adjusted(-1, -1, 1, 1));
}

Result<void> DisplayView::set_cursor(uint32_t width, uint32_t height, uint32_t hot_x, uint32_t hot_y,
                                     const QByteArray& argb) {
    // virtio-gpu cursors are at most 64x64 (display-protocol.md, "cursor").
    if (width == 0 || height == 0 || width > 64 || height > 64 || hot_x >= width || hot_y >= height)
        return make_error("cursor size or hot spot out of range");
    if (static_cast<uint64_t>(argb.size()) != uint64_t{width} * height * 4)
        return make_error("cursor pixels do not match its size");
    // ARGB8888 little-endian is QImage::Format_ARGB32 (not premultiplied) byte for byte.
    QImage image(reinterpret_cast<const uchar*>(argb.constData()), static_cast<int>(width), static_cast<int>(height),
                 static_cast<qsizetype>(width) * 4, QImage::Format_ARGB32);
    QPixmap pixmap = QPixmap::fromImage(image.copy());
    // One guest pixel per device pixel, as the screen at 1:1.
    pixmap.setDevicePixelRatio(devicePixelRatioF());
    guest_cursor_ = QCursor(pixmap, qRound(hot_x / devicePixelRatioF()), qRound(hot_y / devicePixelRatioF()));
    if (cursor_visible_) setCursor(guest_cursor_);
    return {};
}

void DisplayView::set_cursor_visible(bool visible) {
    cursor_visible_ = visible;
    setCursor(visible ? guest_cursor_ : QCursor(Qt::BlankCursor));
}

void DisplayView::set_scaled(bool scaled) {
    scaled_ = scaled;
    updateGeometry();
    update();
}

QSize DisplayView::sizeHint() const {
    if (image_.isNull()) return QSize(640, 400);
    const double ratio = devicePixelRatioF();
    return QSize(qCeil(image_.width() / ratio), qCeil(image_.height() / ratio));
}

QRectF DisplayView::target_rect() const {
    if (image_.isNull()) return {};
    const double ratio = devicePixelRatioF();
    // 1:1 means one guest pixel per device pixel (HiDPI screens included).
    if (!scaled_) return QRectF(0, 0, image_.width() / ratio, image_.height() / ratio);
    QSizeF size(image_.size());
    size.scale(QSizeF(width(), height()), Qt::KeepAspectRatio);
    return QRectF((width() - size.width()) / 2, (height() - size.height()) / 2, size.width(), size.height());
}

void DisplayView::paintEvent(QPaintEvent*) {
    QPainter painter(this);
    painter.fillRect(rect(), Qt::black);
    if (image_.isNull()) {
        painter.setPen(Qt::lightGray);
        painter.drawText(rect(), Qt::AlignCenter | Qt::TextWordWrap, placeholder_);
        return;
    }
    const QRectF target = target_rect();
    if (scaled_ && target.size() != QSizeF(image_.size()) / devicePixelRatioF())
        painter.setRenderHint(QPainter::SmoothPixmapTransform);
    painter.drawImage(target, image_, QRectF(image_.rect()));
}

bool DisplayView::event(QEvent* event) {
    if (event->type() == QEvent::ShortcutOverride) {
        // Keys belong to the guest while the screen has focus, except Ctrl+Alt+<key>:
        // those are the viewer's own shortcuts (menu, fullscreen, scaling).
        auto* key = static_cast<QKeyEvent*>(event);
        const auto held = key->modifiers() & (Qt::ControlModifier | Qt::AltModifier);
        if (held != (Qt::ControlModifier | Qt::AltModifier)) {
            event->accept();
            return true;
        }
    }
    return QWidget::event(event);
}

bool DisplayView::focusNextPrevChild(bool) { return false; }  // Tab goes to the guest

void DisplayView::key(QKeyEvent* event, bool pressed) {
    event->accept();
    if (event->isAutoRepeat()) return;  // the guest repeats on its own
    const uint32_t code = linux_key_code(event->key(), event->nativeScanCode(), platform_keycodes_are_xkb());
    if (code == 0) return;
    if (pressed) pressed_.insert(code);
    else if (!pressed_.remove(code)) return;  // a release without our press (focus came with the key held)
    Q_EMIT keyEvent(code, pressed);
}

void DisplayView::keyPressEvent(QKeyEvent* event) { key(event, true); }
void DisplayView::keyReleaseEvent(QKeyEvent* event) { key(event, false); }

void DisplayView::pointer(QMouseEvent* event) {
    event->accept();
    if (image_.isNull()) return;
    const QRectF target = target_rect();
    if (target.isEmpty()) return;
    const QPointF position = event->position();
    const int x = static_cast<int>((position.x() - target.x()) * image_.width() / target.width());
    const int y = static_cast<int>((position.y() - target.y()) * image_.height() / target.height());
    buttons_ = button_bits(event->buttons());
    Q_EMIT pointerEvent(tablet_axis(x, image_.width()), tablet_axis(y, image_.height()), buttons_);
}

void DisplayView::mouseMoveEvent(QMouseEvent* event) { pointer(event); }
void DisplayView::mousePressEvent(QMouseEvent* event) {
    setFocus(Qt::MouseFocusReason);
    pointer(event);
}
void DisplayView::mouseReleaseEvent(QMouseEvent* event) { pointer(event); }

void DisplayView::wheelEvent(QWheelEvent* event) {
    event->accept();
    // 120 units per notch (QWheelEvent::angleDelta); high-resolution wheels add up to whole steps.
    wheel_remainder_ += event->angleDelta().y();
    const int steps = wheel_remainder_ / 120;
    wheel_remainder_ -= steps * 120;
    if (steps != 0) Q_EMIT wheelSteps(steps);
}

void DisplayView::focusOutEvent(QFocusEvent* event) {
    release_all();
    QWidget::focusOutEvent(event);
}

void DisplayView::release_all() {
    const auto held = pressed_;
    pressed_.clear();
    for (uint32_t code : held) Q_EMIT keyEvent(code, false);
    if (buttons_ != 0 && !image_.isNull()) {
        buttons_ = 0;
        const QPoint here = mapFromGlobal(QCursor::pos());
        QMouseEvent release(QEvent::MouseMove, here, mapToGlobal(here), Qt::NoButton, Qt::NoButton, Qt::NoModifier);
        pointer(&release);
    }
}

}  // namespace atl::console
