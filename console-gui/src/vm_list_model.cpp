#include <atoll/console/host_connection.h>
#include <atoll/console/vm_list_model.h>

#include <QFile>
#include <QIcon>
#include <QLocale>
#include <QTimer>

#include <algorithm>
#include <optional>
#include <unistd.h>

namespace atl::console {
namespace {

constexpr quintptr kHostId = 0;  // internalId of host rows; VM rows carry host row + 1

bool by_name(const VmInfo& a, const VmInfo& b) { return a.name < b.name; }

// utime + stime of a process in clock ticks (proc(5), /proc/PID/stat fields 14 and 15).
std::optional<quint64> process_cpu_ticks(unsigned pid) {
    QFile file(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!file.open(QIODevice::ReadOnly)) return std::nullopt;
    const QByteArray stat = file.readAll();
    const qsizetype end_of_name = stat.lastIndexOf(')');
    if (end_of_name < 0) return std::nullopt;
    const QList<QByteArray> fields = stat.mid(end_of_name + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    if (fields.size() < 13) return std::nullopt;
    return fields.at(11).toULongLong() + fields.at(12).toULongLong();
}

QString state_icon_name(const QString& state) {
    if (state == QLatin1String("running")) return QStringLiteral("media-playback-start");
    if (state == QLatin1String("paused")) return QStringLiteral("media-playback-pause");
    if (state == QLatin1String("crashed")) return QStringLiteral("dialog-error");
    if (state == QLatin1String("starting") || state == QLatin1String("shutting-down"))
        return QStringLiteral("view-refresh");
    return QStringLiteral("media-playback-stop");
}

QString host_status_label(HostConnection::Status status) {
    switch (status) {
    case HostConnection::Status::Connecting: return VmListModel::tr("Connecting…");
    case HostConnection::Status::Connected: return VmListModel::tr("Connected");
    case HostConnection::Status::NoService: return VmListModel::tr("atolld not running");
    case HostConnection::Status::Failed: return VmListModel::tr("Unreachable");
    }
    return {};
}

}  // namespace

VmListModel::VmListModel(QObject* parent) : QAbstractItemModel(parent), cpu_timer_(new QTimer(this)) {
    qRegisterMetaType<atl::console::VmInfo>();
    clock_.start();
    cpu_timer_->setInterval(2000);
    connect(cpu_timer_, &QTimer::timeout, this, &VmListModel::sample_cpu);
    cpu_timer_->start();
}

VmListModel::~VmListModel() = default;

void VmListModel::add_host(HostConnection* connection) {
    const int row = static_cast<int>(hosts_.size());
    beginInsertRows({}, row, row);
    hosts_.push_back(Host{connection, {}, {}});
    endInsertRows();
    connect(connection, &HostConnection::statusChanged, this, [this, connection] {
        const QModelIndex index = host_index(connection);
        Q_EMIT dataChanged(index, index.siblingAtColumn(ColumnCount - 1));
    });
    connect(connection, &HostConnection::hostFactsChanged, this, [this, connection] {
        const QModelIndex index = host_index(connection);
        Q_EMIT dataChanged(index, index.siblingAtColumn(ColumnCount - 1));
    });
    connect(connection, &HostConnection::vmsLoaded, this,
            [this, connection](const QVector<VmInfo>& vms) { loaded(connection, vms); });
    connect(connection, &HostConnection::vmUpdated, this,
            [this, connection](const VmInfo& vm) { updated(connection, vm); });
    connect(connection, &HostConnection::vmPropertiesChanged, this,
            [this, connection](const QString& path, const QVariantMap& changed) {
                properties_changed(connection, path, changed);
            });
    connect(connection, &HostConnection::vmRemoved, this,
            [this, connection](const QString& path) { removed(connection, path); });
    connect(connection, &QObject::destroyed, this, [this, connection] {
        const int host = host_row(connection);
        if (host < 0) return;
        beginRemoveRows({}, host, host);
        hosts_.removeAt(host);
        endRemoveRows();
    });
}

QVector<HostConnection*> VmListModel::hosts() const {
    QVector<HostConnection*> connections;
    for (const Host& host : hosts_) connections.push_back(host.connection);
    return connections;
}

int VmListModel::host_row(const HostConnection* connection) const {
    for (int row = 0; row < hosts_.size(); ++row)
        if (hosts_[row].connection == connection) return row;
    return -1;
}

int VmListModel::vm_row(const Host& host, const QString& path) const {
    for (int row = 0; row < host.vms.size(); ++row)
        if (host.vms[row].path == path) return row;
    return -1;
}

HostConnection* VmListModel::host_at(const QModelIndex& index) const {
    if (!index.isValid()) return nullptr;
    const int row = index.internalId() == kHostId ? index.row() : static_cast<int>(index.internalId() - 1);
    return row < hosts_.size() ? hosts_[row].connection : nullptr;
}

const VmInfo* VmListModel::vm_at(const QModelIndex& index) const {
    if (!index.isValid() || index.internalId() == kHostId) return nullptr;
    const Host& host = hosts_[static_cast<int>(index.internalId() - 1)];
    return index.row() < host.vms.size() ? &host.vms[index.row()] : nullptr;
}

QModelIndex VmListModel::host_index(const HostConnection* connection) const {
    const int row = host_row(connection);
    return row < 0 ? QModelIndex() : createIndex(row, 0, kHostId);
}

QModelIndex VmListModel::vm_index(const HostConnection* connection, const QString& vm_name, int column) const {
    const int host = host_row(connection);
    if (host < 0) return {};
    const auto& vms = hosts_[host].vms;
    for (int row = 0; row < vms.size(); ++row)
        if (vms[row].name == vm_name) return createIndex(row, column, static_cast<quintptr>(host + 1));
    return {};
}

QModelIndex VmListModel::index(int row, int column, const QModelIndex& parent) const {
    if (column < 0 || column >= ColumnCount || row < 0) return {};
    if (!parent.isValid()) return row < hosts_.size() ? createIndex(row, column, kHostId) : QModelIndex();
    if (parent.internalId() != kHostId || parent.row() >= hosts_.size()) return {};
    if (row >= hosts_[parent.row()].vms.size()) return {};
    return createIndex(row, column, static_cast<quintptr>(parent.row() + 1));
}

QModelIndex VmListModel::parent(const QModelIndex& child) const {
    if (!child.isValid() || child.internalId() == kHostId) return {};
    return createIndex(static_cast<int>(child.internalId() - 1), 0, kHostId);
}

int VmListModel::rowCount(const QModelIndex& parent) const {
    if (!parent.isValid()) return static_cast<int>(hosts_.size());
    if (parent.internalId() != kHostId || parent.column() != 0) return 0;
    return static_cast<int>(hosts_[parent.row()].vms.size());
}

int VmListModel::columnCount(const QModelIndex&) const { return ColumnCount; }

QVariant VmListModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
    switch (section) {
    case NameColumn: return tr("Name");
    case StateColumn: return tr("State");
    case VcpuColumn: return tr("vCPUs");
    case MemoryColumn: return tr("Memory");
    case CpuColumn: return tr("CPU");
    case ReasonColumn: return tr("Details");
    }
    return {};
}

QVariant VmListModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid()) return {};
    if (index.internalId() == kHostId) {
        const HostConnection* host = hosts_[index.row()].connection;
        if (role == Qt::DisplayRole || role == Qt::AccessibleTextRole) {
            switch (index.column()) {
            case NameColumn:
                return host->host_name().isEmpty() || host->host_name() == host->label()
                           ? host->label()
                           : tr("%1 (%2)").arg(host->label(), host->host_name());
            case StateColumn: return host_status_label(host->status());
            case VcpuColumn: return host->cpu_count() ? QVariant(host->cpu_count()) : QVariant();
            case MemoryColumn:
                return host->memory_mib() ? QLocale().formattedDataSize(host->memory_mib() * 1024 * 1024, 1) : QString();
            case ReasonColumn:
                return host->status() == HostConnection::Status::Connected ? host->address() : host->status_text();
            }
            return {};
        }
        if (role == Qt::DecorationRole && index.column() == NameColumn)
            return QIcon::fromTheme(host->is_local() ? QStringLiteral("computer") : QStringLiteral("network-server"));
        if (role == Qt::ToolTipRole) return tr("%1\n%2").arg(host->address(), host->status_text());
        return {};
    }
    const VmInfo* vm = vm_at(index);
    if (!vm) return {};
    switch (role) {
    case Qt::DisplayRole:
    case Qt::AccessibleTextRole:
        switch (index.column()) {
        case NameColumn: return vm->name;
        case StateColumn: return state_label(vm->state);
        case VcpuColumn: return vm->vcpus;
        case MemoryColumn:
            // Whole units as the definition gives them: 512 MiB, 2 GiB.
            return vm->memory_mib >= 1024 && vm->memory_mib % 1024 == 0 ? tr("%1 GiB").arg(vm->memory_mib / 1024)
                                                                         : tr("%1 MiB").arg(vm->memory_mib);
        case CpuColumn: return vm->cpu_percent < 0 ? QString() : QStringLiteral("%1 %").arg(vm->cpu_percent, 0, 'f', 0);
        case ReasonColumn: return vm_details(*vm);
        }
        return {};
    case Qt::DecorationRole:
        if (index.column() == StateColumn) return QIcon::fromTheme(state_icon_name(vm->state));
        return {};
    case Qt::TextAlignmentRole:
        if (index.column() == VcpuColumn || index.column() == MemoryColumn || index.column() == CpuColumn)
            return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
        return {};
    case Qt::ToolTipRole: return tr("%1 — %2\nUUID %3").arg(vm->name, vm_details(*vm), vm->uuid);
    case StateRole: return vm->state;
    case PathRole: return vm->path;
    case VmNameRole: return vm->name;
    }
    return {};
}

void VmListModel::loaded(HostConnection* connection, QVector<VmInfo> vms) {
    const int host = host_row(connection);
    if (host < 0) return;
    std::sort(vms.begin(), vms.end(), by_name);
    const QModelIndex parent = createIndex(host, 0, kHostId);
    if (!hosts_[host].vms.isEmpty()) {
        beginRemoveRows(parent, 0, static_cast<int>(hosts_[host].vms.size()) - 1);
        hosts_[host].vms.clear();
        endRemoveRows();
    }
    if (!vms.isEmpty()) {
        beginInsertRows(parent, 0, static_cast<int>(vms.size()) - 1);
        hosts_[host].vms = vms;
        endInsertRows();
    }
}

void VmListModel::updated(HostConnection* connection, const VmInfo& vm) {
    const int host = host_row(connection);
    if (host < 0) return;
    auto& vms = hosts_[host].vms;
    const int existing = vm_row(hosts_[host], vm.path);
    if (existing >= 0) {
        const QString old_state = vms[existing].state;
        vms[existing] = vm;
        Q_EMIT dataChanged(createIndex(existing, 0, static_cast<quintptr>(host + 1)),
                           createIndex(existing, ColumnCount - 1, static_cast<quintptr>(host + 1)));
        if (old_state != vm.state) Q_EMIT vmStateChanged(connection, vm.name, vm.state);
        return;
    }
    const int row = static_cast<int>(std::lower_bound(vms.begin(), vms.end(), vm, by_name) - vms.begin());
    beginInsertRows(createIndex(host, 0, kHostId), row, row);
    vms.insert(row, vm);
    endInsertRows();
    Q_EMIT vmStateChanged(connection, vm.name, vm.state);
}

void VmListModel::properties_changed(HostConnection* connection, const QString& path, const QVariantMap& changed) {
    const int host = host_row(connection);
    if (host < 0) return;
    const int row = vm_row(hosts_[host], path);
    if (row < 0) return;  // not loaded yet: VMDefined's GetAll brings it whole
    VmInfo& vm = hosts_[host].vms[row];
    const QString old_state = vm.state;
    apply_properties(vm, changed);
    Q_EMIT dataChanged(createIndex(row, 0, static_cast<quintptr>(host + 1)),
                       createIndex(row, ColumnCount - 1, static_cast<quintptr>(host + 1)));
    if (old_state != vm.state) Q_EMIT vmStateChanged(connection, vm.name, vm.state);
}

void VmListModel::removed(HostConnection* connection, const QString& path) {
    const int host = host_row(connection);
    if (host < 0) return;
    const int row = vm_row(hosts_[host], path);
    if (row < 0) return;
    beginRemoveRows(createIndex(host, 0, kHostId), row, row);
    hosts_[host].vms.removeAt(row);
    endRemoveRows();
}

void VmListModel::sample_cpu() {
    static const long ticks_per_second = sysconf(_SC_CLK_TCK);
    const qint64 now_ms = clock_.elapsed();
    for (int host = 0; host < hosts_.size(); ++host) {
        Host& entry = hosts_[host];
        if (!entry.connection->is_local()) continue;
        QHash<unsigned, Host::CpuSample> samples;
        for (int row = 0; row < entry.vms.size(); ++row) {
            VmInfo& vm = entry.vms[row];
            if (vm.vmm_pid == 0) continue;
            const auto ticks = process_cpu_ticks(vm.vmm_pid);
            if (!ticks) continue;
            samples.insert(vm.vmm_pid, {*ticks, now_ms});
            const auto previous = entry.cpu.constFind(vm.vmm_pid);
            if (previous == entry.cpu.constEnd() || now_ms <= previous->at_ms || *ticks < previous->ticks) continue;
            vm.cpu_percent = 100.0 * static_cast<double>(*ticks - previous->ticks) / ticks_per_second /
                             (static_cast<double>(now_ms - previous->at_ms) / 1000.0);
            const QModelIndex cell = createIndex(row, CpuColumn, static_cast<quintptr>(host + 1));
            Q_EMIT dataChanged(cell, cell, {Qt::DisplayRole});
        }
        entry.cpu = samples;
    }
}

}  // namespace atl::console
