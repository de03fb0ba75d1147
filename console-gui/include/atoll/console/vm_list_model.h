// Every host and its VMs as a two-level tree: hosts at the top, their VMs
// below, in name order. Fed by HostConnection's signals; CPU use is sampled
// from /proc for VMs of hosts on this machine (atolld's API has no CPU time
// yet), every two seconds while a VM runs.
#pragma once

#include <atoll/console/vm_info.h>

#include <QAbstractItemModel>
#include <QElapsedTimer>
#include <QHash>
#include <QVector>

class QTimer;

namespace atl::console {

class HostConnection;

class VmListModel : public QAbstractItemModel {
    Q_OBJECT
public:
    enum Column { NameColumn, StateColumn, VcpuColumn, MemoryColumn, CpuColumn, ReasonColumn, ColumnCount };
    enum Role { StateRole = Qt::UserRole + 1, PathRole, VmNameRole };

    explicit VmListModel(QObject* parent = nullptr);
    ~VmListModel() override;

    // The model follows the host from now on (it does not own it).
    void add_host(HostConnection* host);
    QVector<HostConnection*> hosts() const;

    HostConnection* host_at(const QModelIndex& index) const;  // for host and VM rows
    const VmInfo* vm_at(const QModelIndex& index) const;      // null for host rows
    QModelIndex host_index(const HostConnection* host) const;
    QModelIndex vm_index(const HostConnection* host, const QString& vm_name, int column = 0) const;

    QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
    QModelIndex parent(const QModelIndex& child) const override;
    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

Q_SIGNALS:
    // A VM's state changed (after the row was updated): for views that act on it.
    void vmStateChanged(atl::console::HostConnection* host, const QString& vm_name, const QString& state);

private:
    struct Host {
        HostConnection* connection;
        QVector<VmInfo> vms;  // by name
        struct CpuSample {
            quint64 ticks = 0;
            qint64 at_ms = 0;
        };
        QHash<unsigned, CpuSample> cpu;  // by VMM pid
    };
    int host_row(const HostConnection* host) const;
    int vm_row(const Host& host, const QString& path) const;
    void loaded(HostConnection* connection, QVector<VmInfo> vms);
    void updated(HostConnection* connection, const VmInfo& vm);
    void properties_changed(HostConnection* connection, const QString& path, const QVariantMap& changed);
    void removed(HostConnection* connection, const QString& path);
    void sample_cpu();

    QVector<Host> hosts_;
    QTimer* cpu_timer_;
    QElapsedTimer clock_;
};

}  // namespace atl::console
