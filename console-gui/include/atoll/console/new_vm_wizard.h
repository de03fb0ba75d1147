// The New VM wizard: name and resources, boot (kernel + initrd, or a disk
// image), network and display, then a summary. It checks the entries on each
// page (vm_draft.h) and submits DefineVM asynchronously on Finish; while the
// call is in flight the wizard shows progress and Cancel stops waiting.
// atolld's refusal (a path outside its storage directories, a name taken)
// shows on the summary page in atolld's words and the wizard stays open.
#pragma once

#include <atoll/console/vm_draft.h>

#include <QPointer>
#include <QVector>
#include <QWizard>

class QButtonGroup;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QSpinBox;

namespace atl::console {

class HostConnection;

class NewVmWizard : public QWizard {
    Q_OBJECT
public:
    enum PageId { ResourcesPage, BootPage, NetworkPage, SummaryPage };

    NewVmWizard(const QVector<HostConnection*>& hosts, HostConnection* preselected, QWidget* parent = nullptr);

    VmDraft draft() const;
    HostConnection* host() const;
    // What the current page or atolld found wrong ("" when nothing).
    QString error_text() const;
    bool submitting() const { return submitting_; }

    void accept() override;
    void reject() override;

Q_SIGNALS:
    void vmDefined(atl::console::HostConnection* host, const QString& name);

private:
    friend class WizardPage;
    bool check_page(int id);
    void show_error(const QString& text);
    void update_summary();

    QVector<QPointer<HostConnection>> hosts_;
    QComboBox* host_;
    QLineEdit* name_;
    QSpinBox* vcpus_;
    QSpinBox* memory_;
    QButtonGroup* boot_;
    QLineEdit *kernel_, *initrd_, *cmdline_, *disk_;
    QButtonGroup* network_;
    QLineEdit *forwards_, *tap_;
    QCheckBox* display_;
    QLabel* summary_;
    QLabel* errors_[4];
    QProgressBar* progress_;
    bool submitting_ = false;
    quint64 submission_ = 0;  // replies to a cancelled submission are dropped
};

}  // namespace atl::console
