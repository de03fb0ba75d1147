// A VM's screen through atoll-display's local-viewer API (org.atoll.Display1,
// display/README.md): the scanout's surface mapped from the descriptor
// GetSurface passes, redrawn where Damage says, fetched again on
// SurfaceChanged; keyboard and pointer go back as SendKey / SendPointer /
// SendWheel; with "Resize with window" the window's size becomes a
// RequestResize. Scaled to the window or 1:1; fullscreen.
#pragma once

#include <QDBusConnection>
#include <QMainWindow>

class QAction;
class QDBusMessage;
class QLabel;
class QScrollArea;
class QTimer;

namespace atl::console {

class DisplayView;

class ViewerWindow : public QMainWindow {
    Q_OBJECT
public:
    ViewerWindow(const QDBusConnection& display_bus, const QString& vm_name, QWidget* parent = nullptr);
    ~ViewerWindow() override;

    QString vm_name() const { return vm_name_; }
    QWidget* display_widget() const;
    QSize surface_size() const;
    QString status_text() const;
    void set_scaled(bool scaled);
    void set_resize_with_window(bool follow);

    // Sends the keys pressed in order and released in reverse (a key combination).
    void send_combination(const QVector<uint32_t>& codes);

Q_SIGNALS:
    void surfaceShown(const QSize& size);

protected:
    void closeEvent(QCloseEvent* event) override;
    bool eventFilter(QObject* watched, QEvent* event) override;

private Q_SLOTS:
    void onSurfaceChanged(const QDBusMessage& message);
    void onSurfaceDisabled(const QDBusMessage& message);
    void onDamage(const QDBusMessage& message);
    void onDisplayAdded(const QDBusMessage& message);
    void onDisplayRemoved(const QDBusMessage& message);
    void onCursorChanged(const QDBusMessage& message);

private:
    void fetch_surface();
    void fetch_cursor();
    void call(const QString& method, const QVariantList& arguments);
    void request_resize();
    void set_status(const QString& text);
    void toggle_fullscreen();

    QDBusConnection bus_;
    QString vm_name_, path_;
    QScrollArea* scroll_;
    DisplayView* view_;
    QLabel* status_;
    QAction *scaled_, *follow_, *fullscreen_;
    QTimer* resize_timer_;
    quint64 serial_ = 0;
    quint64 fetch_generation_ = 0;
    quint64 cursor_generation_ = 0;
    QSize last_requested_;
};

}  // namespace atl::console
