// The widget that shows a guest's scanout from a mapped surface descriptor
// (org.atoll.Display1 GetSurface) and turns keyboard, mouse and wheel events
// into Linux key codes and tablet positions for the viewer to send.
#pragma once

#include <atoll/result.h>

#include <QCursor>
#include <QImage>
#include <QSet>
#include <QWidget>

namespace atl::console {

class DisplayView : public QWidget {
    Q_OBJECT
public:
    explicit DisplayView(QWidget* parent = nullptr);
    ~DisplayView() override;

    // Maps the descriptor (a sealed memfd: checked, see display/README.md
    // "Surfaces and SIGBUS") and shows it. The view keeps its own duplicate.
    Result<void> set_surface(int fd, uint32_t width, uint32_t height, uint32_t stride, uint64_t offset);
    void clear_surface(const QString& why);
    void damage(const QRect& rect);  // surface coordinates
    QSize surface_size() const { return image_.size(); }
    bool has_surface() const { return !image_.isNull(); }

    // The guest's cursor as the local pointer's shape (the tablet is absolute,
    // so the two are at the same place). `argb`: ARGB8888 little-endian.
    Result<void> set_cursor(uint32_t width, uint32_t height, uint32_t hot_x, uint32_t hot_y, const QByteArray& argb);
    void set_cursor_visible(bool visible);
    bool guest_cursor_visible() const { return cursor_visible_; }

    void set_scaled(bool scaled);
    bool scaled() const { return scaled_; }
    QSize sizeHint() const override;
    // Where the surface is drawn, in widget coordinates.
    QRectF target_rect() const;
    // Releases every key and button this view pressed (on focus loss, before closing).
    void release_all();

Q_SIGNALS:
    void keyEvent(uint32_t code, bool pressed);
    void pointerEvent(uint32_t x, uint32_t y, uint32_t buttons);
    void wheelSteps(int steps);

protected:
    bool event(QEvent* event) override;
    bool focusNextPrevChild(bool next) override;
    void paintEvent(QPaintEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void keyReleaseEvent(QKeyEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void focusOutEvent(QFocusEvent* event) override;

private:
    void unmap();
    void key(QKeyEvent* event, bool pressed);
    void pointer(QMouseEvent* event);

    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    QImage image_;  // over the mapping, no copy
    QString placeholder_;
    bool scaled_ = true;
    QCursor guest_cursor_{Qt::ArrowCursor};
    bool cursor_visible_ = true;
    uint32_t buttons_ = 0;
    QSet<uint32_t> pressed_;
    int wheel_remainder_ = 0;
};

}  // namespace atl::console
