// VmListModel fed through HostConnection's signals (no bus): rows in name
// order per host, updates in place, removals, reloads; the model checked by
// QAbstractItemModelTester throughout.
#include <atoll/console/host_connection.h>
#include <atoll/console/vm_list_model.h>

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTest>

using namespace atl::console;

namespace {

VmInfo vm(const QString& name, const QString& state = QStringLiteral("shut-off")) {
    VmInfo info;
    info.name = name;
    info.path = QStringLiteral("/org/atoll/Atoll1/vm/") + name;
    info.state = state;
    info.vcpus = 1;
    info.memory_mib = 2048;
    return info;
}

}  // namespace

class VmListModelTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void followsTheHostsSignals() {
        VmListModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        HostConnection a(QStringLiteral("a"), QStringLiteral("unix:path=/nonexistent/a"));
        HostConnection b(QStringLiteral("b"), QStringLiteral("unixexec:path=ssh,argv1=b"));
        model.add_host(&a);
        model.add_host(&b);
        QCOMPARE(model.rowCount(), 2);
        QVERIFY(a.is_local());
        QVERIFY(!b.is_local());

        Q_EMIT a.vmsLoaded({vm(QStringLiteral("web")), vm(QStringLiteral("db"), QStringLiteral("running"))});
        const QModelIndex host_a = model.host_index(&a);
        QCOMPARE(model.rowCount(host_a), 2);
        QCOMPARE(model.index(0, VmListModel::NameColumn, host_a).data().toString(), QStringLiteral("db"));
        QCOMPARE(model.index(0, VmListModel::StateColumn, host_a).data().toString(), QStringLiteral("Running"));
        QCOMPARE(model.index(1, VmListModel::MemoryColumn, host_a).data().toString(), QStringLiteral("2 GiB"));
        QCOMPARE(model.host_at(model.index(1, 0, host_a)), &a);
        QCOMPARE(model.vm_at(model.index(1, 0, host_a))->name, QStringLiteral("web"));
        QVERIFY(model.vm_at(host_a) == nullptr);

        // Another host's VM of the same name is its own row.
        Q_EMIT b.vmUpdated(vm(QStringLiteral("web")));
        QCOMPARE(model.rowCount(model.host_index(&b)), 1);
        QVERIFY(model.vm_index(&a, QStringLiteral("web")) != model.vm_index(&b, QStringLiteral("web")));

        QSignalSpy states(&model, &VmListModel::vmStateChanged);
        Q_EMIT a.vmPropertiesChanged(vm(QStringLiteral("web")).path,
                                     {{QStringLiteral("State"), QStringLiteral("running")},
                                      {QStringLiteral("StateReason"), QStringLiteral("started")}});
        QCOMPARE(states.size(), 1);
        QCOMPARE(states.at(0).at(1).toString(), QStringLiteral("web"));
        QCOMPARE(model.vm_index(&a, QStringLiteral("web"), VmListModel::ReasonColumn).data().toString(), QStringLiteral("started"));
        QCOMPARE(model.vm_index(&b, QStringLiteral("web"), VmListModel::StateColumn).data().toString(), QStringLiteral("Shut off"));
        // atolld's VncAddress (PropertiesChanged once atoll-display serves the screen) shows in Details.
        QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
        Q_EMIT a.vmPropertiesChanged(vm(QStringLiteral("web")).path, {{QStringLiteral("VncAddress"), QStringLiteral("127.0.0.1:5900")}});
        QCOMPARE(changed.size(), 1);
        QCOMPARE(model.vm_index(&a, QStringLiteral("web"), VmListModel::ReasonColumn).data().toString(),
                 QStringLiteral("started · VNC 127.0.0.1:5900"));
        QVERIFY(model.vm_index(&a, QStringLiteral("web")).data(Qt::ToolTipRole).toString().contains(QStringLiteral("VNC 127.0.0.1:5900")));
        // Properties of an unknown object change nothing.
        Q_EMIT a.vmPropertiesChanged(QStringLiteral("/org/atoll/Atoll1/vm/nosuch"), {{QStringLiteral("State"), QStringLiteral("running")}});
        QCOMPARE(states.size(), 1);

        // A new VM goes in name order; the same VM again updates in place.
        Q_EMIT a.vmUpdated(vm(QStringLiteral("mail")));
        QCOMPARE(model.index(1, 0, host_a).data().toString(), QStringLiteral("mail"));
        Q_EMIT a.vmUpdated(vm(QStringLiteral("mail"), QStringLiteral("paused")));
        QCOMPARE(model.rowCount(host_a), 3);
        QCOMPARE(model.index(1, VmListModel::StateColumn, host_a).data().toString(), QStringLiteral("Paused"));

        Q_EMIT a.vmRemoved(vm(QStringLiteral("db")).path);
        QCOMPARE(model.rowCount(host_a), 2);
        QCOMPARE(model.index(0, 0, host_a).data().toString(), QStringLiteral("mail"));

        // A reload (atolld restarted) replaces the host's list; an empty one empties it.
        Q_EMIT a.vmsLoaded({vm(QStringLiteral("x"))});
        QCOMPARE(model.rowCount(host_a), 1);
        Q_EMIT a.vmsLoaded({});
        QCOMPARE(model.rowCount(host_a), 0);
        QCOMPARE(model.rowCount(model.host_index(&b)), 1);
    }

    void aDestroyedHostLeavesTheModel() {
        VmListModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        auto* host = new HostConnection(QStringLiteral("gone"), QStringLiteral("unix:path=/nonexistent"));
        model.add_host(host);
        Q_EMIT host->vmsLoaded({vm(QStringLiteral("web"))});
        QCOMPARE(model.rowCount(), 1);
        delete host;
        QCOMPARE(model.rowCount(), 0);
    }
};

QTEST_MAIN(VmListModelTest)
#include "vm_list_model_test.moc"
