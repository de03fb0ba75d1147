#include <atoll/dom0/store.h>

#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace atl::dom0 {
namespace {

using testing::TempDir;

VmDefinition sample(const std::string& name) {
    VmDefinition d;
    d.uuid = generate_uuid();
    d.name = name;
    d.vcpus = 2;
    d.memory_mib = 1024;
    d.boot.kernel = "/images/vmlinuz";
    d.boot.initrd = "/images/initrd";
    d.disks = {{"/images/" + name + ".img", false, "root"}, {"/images/cd.iso", true, ""}};
    NicDefinition nic;
    nic.mac = "52:54:00:00:00:01";
    nic.host_forwards = {"tcp:8080:80", "udp:5353:53"};
    d.nets = {nic};
    d.autostart = true;
    d.restart = {RestartPolicy::Kind::OnCrash, 3};
    d.extra_json = R"({"display":{"width":800}})";
    return d;
}

// Runs SQL on the file behind the store's back.
std::string query(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    std::string out;
    sqlite3_exec(
        db, sql.c_str(),
        [](void* arg, int columns, char** values, char**) {
            auto* text = static_cast<std::string*>(arg);
            for (int i = 0; i < columns; ++i) *text += (i ? "|" : "") + std::string(values[i] ? values[i] : "NULL");
            *text += "\n";
            return 0;
        },
        &out, nullptr);
    sqlite3_close(db);
    return out;
}

class StoreTest : public ::testing::Test {
protected:
    TempDir dir;
    std::string path = dir / "atoll.db";
};

TEST_F(StoreTest, CreatesTheSchemaInWalModeWithForeignKeys) {
    auto store = Store::open(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->schema_version(), Store::kSchemaVersion);
    EXPECT_EQ(query(path, "PRAGMA journal_mode"), "wal\n");
    EXPECT_TRUE((*store)->check_consistency().ok());
}

TEST_F(StoreTest, DefinitionsRoundTrip) {
    auto store = Store::open(path);
    ASSERT_TRUE(store.ok());
    const VmDefinition web = sample("web"), db = sample("db");
    ASSERT_TRUE((*store)->insert(web).ok());
    ASSERT_TRUE((*store)->insert(db).ok());
    auto all = (*store)->load_all();
    ASSERT_TRUE(all.ok()) << all.error().message;
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].definition.name, "db");  // sorted by name
    const VmDefinition& loaded = (*all)[1].definition;
    EXPECT_EQ(vm_definition_to_json(loaded), vm_definition_to_json(web));
    EXPECT_EQ((*all)[1].runtime.state, VmState::ShutOff);
    EXPECT_TRUE((*store)->check_consistency().ok());
}

TEST_F(StoreTest, ReplaceSwapsTheDefinitionAndKeepsTheRest) {
    auto store = Store::open(path);
    ASSERT_TRUE(store.ok());
    VmDefinition web = sample("web");
    RuntimeRecord runtime;
    runtime.reason = "defined";
    ASSERT_TRUE((*store)->insert(web, runtime).ok());
    const std::string created = query(path, "SELECT created_unix_us FROM vm");
    VmDefinition changed = web;
    changed.name = "www";
    changed.memory_mib = 2048;
    changed.disks = {{"/images/other.img", true, "data"}};
    changed.nets.clear();
    ASSERT_TRUE((*store)->replace(changed, runtime).ok());
    auto loaded = (*store)->load(web.uuid);
    ASSERT_TRUE(loaded.ok() && *loaded);
    EXPECT_EQ(vm_definition_to_json((*loaded)->definition), vm_definition_to_json(changed));
    EXPECT_EQ((*loaded)->runtime.reason, "defined");
    EXPECT_EQ(query(path, "SELECT created_unix_us FROM vm"), created);
    EXPECT_EQ(query(path, "SELECT count(*) FROM disk"), "1\n");
    EXPECT_EQ(query(path, "SELECT count(*) FROM net"), "0\n");
    VmDefinition unknown = sample("ghost");
    EXPECT_EQ((*store)->replace(unknown, runtime).error().kind, ErrorKind::NotFound);
    EXPECT_TRUE((*store)->check_consistency().ok());
}

TEST_F(StoreTest, SurvivesReopening) {
    const VmDefinition web = sample("web");
    {
        auto store = Store::open(path);
        ASSERT_TRUE((*store)->insert(web).ok());
        RuntimeRecord runtime{VmState::Running, "started", 4242, 2, 1700000000000000, 1};
        ASSERT_TRUE((*store)->set_runtime(web.uuid, runtime).ok());
    }
    auto store = Store::open(path);
    auto loaded = (*store)->load(web.uuid);
    ASSERT_TRUE(loaded.ok());
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ((*loaded)->runtime, (RuntimeRecord{VmState::Running, "started", 4242, 2, 1700000000000000, 1}));
    EXPECT_EQ(vm_definition_to_json((*loaded)->definition), vm_definition_to_json(web));
}

TEST_F(StoreTest, NamesAndUuidsAreUnique) {
    auto store = Store::open(path);
    VmDefinition web = sample("web");
    ASSERT_TRUE((*store)->insert(web).ok());
    VmDefinition same_name = sample("web");
    auto inserted = (*store)->insert(same_name);
    ASSERT_FALSE(inserted.ok());
    EXPECT_EQ(inserted.error().kind, ErrorKind::Exists);
    VmDefinition same_uuid = sample("other");
    same_uuid.uuid = web.uuid;
    EXPECT_EQ((*store)->insert(same_uuid).error().kind, ErrorKind::Exists);
    // A refused insert leaves nothing behind (one transaction).
    EXPECT_EQ(query(path, "SELECT count(*) FROM vm; SELECT count(*) FROM disk; SELECT count(*) FROM vm_runtime"),
              "1\n2\n1\n");
}

TEST_F(StoreTest, RemoveTakesDisksNetsAndRuntimeAlong) {
    auto store = Store::open(path);
    VmDefinition web = sample("web");
    ASSERT_TRUE((*store)->insert(web).ok());
    ASSERT_TRUE((*store)->remove(web.uuid).ok());
    EXPECT_EQ(query(path, "SELECT (SELECT count(*) FROM vm) + (SELECT count(*) FROM disk) + (SELECT count(*) FROM net)"
                          " + (SELECT count(*) FROM vm_runtime)"),
              "0\n");
    EXPECT_EQ((*store)->remove(web.uuid).error().kind, ErrorKind::NotFound);
    EXPECT_EQ((*store)->set_autostart(web.uuid, true).error().kind, ErrorKind::NotFound);
    EXPECT_EQ((*store)->set_runtime(web.uuid, {}).error().kind, ErrorKind::NotFound);
}

TEST_F(StoreTest, Autostart) {
    auto store = Store::open(path);
    VmDefinition web = sample("web");
    ASSERT_TRUE((*store)->insert(web).ok());
    ASSERT_TRUE((*store)->set_autostart(web.uuid, false).ok());
    EXPECT_FALSE((*(*store)->load(web.uuid))->definition.autostart);
}

TEST_F(StoreTest, MigratesAnOldDatabaseKeepingItsData) {
    const std::string uuid = generate_uuid();
    {
        auto old = Store::open(path, 1);
        ASSERT_TRUE(old.ok()) << old.error().message;
        EXPECT_EQ((*old)->schema_version(), 1);
    }
    // A VM as version 1 stored it (version 1 had no restart policy, extra settings or runtime).
    query(path, "INSERT INTO vm (uuid, name, vcpus, memory_mib, boot_kind, kernel, created_unix_us) VALUES ('" + uuid +
                    "', 'old', 1, 256, 'kernel', '/images/vmlinuz', 0);"
                    "INSERT INTO disk (vm_id, position, path, read_only) VALUES (1, 0, '/images/old.img', 0)");
    auto store = Store::open(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->schema_version(), 2);
    auto loaded = (*store)->load(uuid);
    ASSERT_TRUE(loaded.ok() && loaded->has_value());
    EXPECT_EQ((*loaded)->definition.name, "old");
    EXPECT_EQ((*loaded)->definition.disks.size(), 1u);
    EXPECT_EQ((*loaded)->definition.restart.kind, RestartPolicy::Kind::Never);
    EXPECT_EQ((*loaded)->definition.extra_json, "{}");
    EXPECT_EQ((*loaded)->runtime.state, VmState::ShutOff);
    EXPECT_TRUE((*store)->check_consistency().ok());
}

TEST_F(StoreTest, RefusesADatabaseFromTheFuture) {
    { auto store = Store::open(path); }
    query(path, "PRAGMA user_version = 99");
    auto store = Store::open(path);
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

TEST_F(StoreTest, RefusesWhatIsNotADatabase) {
    dir.write("atoll.db", std::string(8192, 'x'));
    auto store = Store::open(path);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.error().kind, ErrorKind::Failed);
}

TEST_F(StoreTest, ConsistencyCheckFindsBrokenInvariants) {
    auto store = Store::open(path);
    VmDefinition web = sample("web");
    ASSERT_TRUE((*store)->insert(web).ok());
    query(path, "DELETE FROM vm_runtime");
    auto checked = (*store)->check_consistency();
    ASSERT_FALSE(checked.ok());
    EXPECT_NE(checked.error().message.find("runtime"), std::string::npos);
}

TEST_F(StoreTest, DatabaseFileIsPrivate) {
    { auto store = Store::open(path); }
    struct stat info {};
    ASSERT_EQ(stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0077, 0u);
}

}  // namespace
}  // namespace atl::dom0
