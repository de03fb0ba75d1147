// The console's main window: every host and its VMs with live state, the
// lifecycle actions, the New VM wizard and the viewers. Lifecycle calls are
// asynchronous; each one in flight shows in the operations bar with a
// Cancel button, and a failure shows atolld's message in the message bar.
#pragma once

#include <QMainWindow>
#include <QPointer>

#include <functional>

class QAction;
class QDBusPendingCall;
class QLabel;
class QTreeView;
class QVBoxLayout;
class QWidget;

namespace atl::console {

class HostConnection;
class VmListModel;
struct VmInfo;

struct MainWindowOptions {
    // The named QDBusConnection of the local atoll-display's bus
    // (org.atoll.Display1) for viewers; it may still be opening.
    QString display_connection;
    int shutdown_timeout_s = 60;
};

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    MainWindow(VmListModel* model, MainWindowOptions options, QWidget* parent = nullptr);
    ~MainWindow() override;

    QTreeView* view() const { return view_; }
    // The last error shown in the message bar ("" when none).
    QString message_text() const;
    // Operations in flight (shown in the operations bar).
    int operations_in_flight() const;

public Q_SLOTS:
    void newVm();
    void startVm();
    void shutDownVm();
    void forceOffVm();
    void pauseVm();
    void resumeVm();
    void rebootVm();
    void deleteVm();
    void openViewer();
    void showMessage(const QString& text);

private:
    struct Selection;
    Selection selected() const;
    void update_actions();
    void select_pending();
    // Runs `method` on the selected VM with a row in the operations bar;
    // `cancel` is what the Cancel button does besides no longer waiting.
    void run(const QString& verb, const QString& method, const QVariantList& arguments,
             const std::function<void(HostConnection*, const QString&)>& cancel = {});
    QAction* make_action(const QString& object_name, const QString& text, const QString& icon,
                         const QKeySequence& shortcut, void (MainWindow::*slot)());

    VmListModel* model_;
    MainWindowOptions options_;
    QTreeView* view_;
    QWidget* message_bar_;
    QLabel* message_label_;
    QWidget* operations_bar_;
    QVBoxLayout* operations_layout_;
    QPointer<HostConnection> pending_host_;  // a VM just created, selected once listed
    QString pending_name_;
    QAction *new_, *start_, *shutdown_, *force_off_, *pause_, *resume_, *reboot_, *delete_, *viewer_;
};

}  // namespace atl::console
