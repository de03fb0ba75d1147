#include <atoll/dom0/store.h>

#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <map>

namespace atl::dom0 {
namespace {

using nlohmann::json;

// Forward migrations: migrations[i] takes schema version i to i + 1. Each runs
// in one transaction together with the new user_version, so a database is
// always at exactly one version. Never edit a released step; add one.
const char* const kMigrations[] = {
    // 0 -> 1: definitions.
    R"sql(
CREATE TABLE vm (
  id INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL UNIQUE CHECK (length(uuid) = 36),
  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
  vcpus INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 255),
  memory_mib INTEGER NOT NULL CHECK (memory_mib >= 16),
  boot_kind TEXT NOT NULL CHECK (boot_kind IN ('kernel', 'disk')),
  kernel TEXT NOT NULL DEFAULT '',
  initrd TEXT NOT NULL DEFAULT '',
  cmdline TEXT NOT NULL DEFAULT '',
  boot_disk INTEGER NOT NULL DEFAULT 0,
  entropy INTEGER NOT NULL DEFAULT 1,
  autostart INTEGER NOT NULL DEFAULT 0,
  created_unix_us INTEGER NOT NULL
);
CREATE TABLE disk (
  vm_id INTEGER NOT NULL REFERENCES vm(id) ON DELETE CASCADE,
  position INTEGER NOT NULL CHECK (position >= 0),
  path TEXT NOT NULL,
  read_only INTEGER NOT NULL,
  serial TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (vm_id, position)
);
CREATE TABLE net (
  vm_id INTEGER NOT NULL REFERENCES vm(id) ON DELETE CASCADE,
  position INTEGER NOT NULL CHECK (position >= 0),
  mode TEXT NOT NULL CHECK (mode IN ('user', 'tap')),
  tap TEXT NOT NULL DEFAULT '',
  mac TEXT NOT NULL DEFAULT '',
  host_forwards TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (vm_id, position)
);
)sql",
    // 1 -> 2: restart policy, the free-form settings of later components, and
    // the runtime record atolld reconciles after its own restart.
    R"sql(
ALTER TABLE vm ADD COLUMN restart_policy TEXT NOT NULL DEFAULT 'never' CHECK (restart_policy IN ('never', 'on-crash'));
ALTER TABLE vm ADD COLUMN restart_max INTEGER NOT NULL DEFAULT 0 CHECK (restart_max BETWEEN 0 AND 100);
ALTER TABLE vm ADD COLUMN extra_json TEXT NOT NULL DEFAULT '{}';
CREATE TABLE vm_runtime (
  vm_id INTEGER PRIMARY KEY REFERENCES vm(id) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK (state IN ('shut-off', 'starting', 'running', 'paused', 'shutting-down', 'crashed')),
  reason TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL DEFAULT 0,
  boot_count INTEGER NOT NULL DEFAULT 0,
  started_unix_us INTEGER NOT NULL DEFAULT 0,
  restart_count INTEGER NOT NULL DEFAULT 0,
  updated_unix_us INTEGER NOT NULL DEFAULT 0
);
INSERT INTO vm_runtime (vm_id, state) SELECT id, 'shut-off' FROM vm;
)sql",
};
static_assert(std::size(kMigrations) == Store::kSchemaVersion);

int64_t now_unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Fault db_fault(sqlite3* db, const std::string& what) {
    return fault(ErrorKind::Failed, "database: " + what + ": " + sqlite3_errmsg(db));
}

// One prepared statement; binds by position (1-based), finalizes on scope exit.
class Statement {
public:
    Statement(sqlite3* db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
    }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    bool valid() const { return stmt_ != nullptr; }
    Statement& bind(int index, const std::string& text) {
        sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind(int index, int64_t value) {
        sqlite3_bind_int64(stmt_, index, value);
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return sqlite3_step(stmt_); }
    int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    std::string text(int column) const {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        return data ? std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
    }

private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

Outcome<void> exec(sqlite3* db, const char* sql, const std::string& what) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string text = message ? message : sqlite3_errmsg(db);
        sqlite3_free(message);
        return fault(ErrorKind::Failed, "database: " + what + ": " + text);
    }
    return {};
}

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
class Transaction {
public:
    explicit Transaction(sqlite3* db) : db_(db) {}
    ~Transaction() {
        if (open_ && !committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Outcome<void> begin() {
        ATOLL_DOM0_TRY(exec(db_, "BEGIN IMMEDIATE", "begin"));
        open_ = true;
        return {};
    }
    Outcome<void> commit() {
        ATOLL_DOM0_TRY(exec(db_, "COMMIT", "commit"));
        committed_ = true;
        return {};
    }

private:
    sqlite3* db_;
    bool open_ = false;
    bool committed_ = false;
};

Outcome<void> step_done(Statement& statement, sqlite3* db, const std::string& what) {
    if (!statement.valid()) return db_fault(db, what);
    const int rc = statement.step();
    if (rc == SQLITE_DONE) return {};
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return fault(ErrorKind::Exists, "database: " + what + ": " + sqlite3_errmsg(db));
    return db_fault(db, what);
}

// A runtime record as ?2..?8 of an INSERT or UPDATE of vm_runtime (state, reason,
// pid, boot_count, started_unix_us, restart_count, updated_unix_us = now); ?1
// names the VM.
void bind_runtime(Statement& statement, const RuntimeRecord& runtime) {
    statement.bind(2, std::string(state_name(runtime.state)))
        .bind(3, runtime.reason)
        .bind(4, runtime.pid)
        .bind(5, int64_t{runtime.boot_count})
        .bind(6, static_cast<int64_t>(runtime.started_unix_us))
        .bind(7, int64_t{runtime.restart_count})
        .bind(8, now_unix_us());
}

}  // namespace

Outcome<std::unique_ptr<Store>> Store::open(const std::string& path, int target_version) {
    if (target_version < 1 || target_version > kSchemaVersion)
        return fault(ErrorKind::InvalidArgument, "database: no schema version " + std::to_string(target_version));
    sqlite3* db = nullptr;
    const mode_t old_mask = umask(0077);  // the database and its -wal/-shm files: atolld's alone
    const int rc = sqlite3_open_v2(path.c_str(), &db,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    umask(old_mask);
    if (rc != SQLITE_OK) {
        std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close(db);
        return fault(ErrorKind::Failed, "database " + path + ": cannot open: " + message);
    }
    std::unique_ptr<Store> store(new Store(db));
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    // WAL: readers never block the writer and a commit is one append. NORMAL:
    // a commit is durable against a crash of atolld (kill -9); a power cut may
    // lose the last commits but never leaves a half-applied one.
    {
        Statement mode(db, "PRAGMA journal_mode = WAL");
        if (!mode.valid() || mode.step() != SQLITE_ROW)
            return fault(ErrorKind::Failed, "database " + path + ": " + sqlite3_errmsg(db));
        if (mode.text(0) != "wal")
            return fault(ErrorKind::Failed, "database " + path + ": cannot use WAL mode (got " + mode.text(0) + ")");
    }
    ATOLL_DOM0_TRY(exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "settings"));
    ATOLL_DOM0_TRY(store->migrate(target_version));
    return store;
}

Store::~Store() { sqlite3_close_v2(db_); }

int Store::schema_version() {
    std::lock_guard lock(mutex_);
    Statement statement(db_, "PRAGMA user_version");
    if (!statement.valid() || statement.step() != SQLITE_ROW) return -1;
    return static_cast<int>(statement.integer(0));
}

Outcome<void> Store::migrate(int target_version) {
    for (;;) {
        Transaction transaction(db_);
        ATOLL_DOM0_TRY(transaction.begin());
        // Read inside the transaction: two atollds racing on one file migrate once.
        Statement version_query(db_, "PRAGMA user_version");
        if (!version_query.valid() || version_query.step() != SQLITE_ROW) return db_fault(db_, "schema version");
        const int version = static_cast<int>(version_query.integer(0));
        if (version > kSchemaVersion)
            return fault(ErrorKind::Failed, "database: schema version " + std::to_string(version) +
                                                " is newer than this atolld knows (" + std::to_string(kSchemaVersion) +
                                                "); use a newer atolld");
        if (version >= target_version) return {};
        ATOLL_DOM0_TRY(exec(db_, kMigrations[version], "migration to schema " + std::to_string(version + 1)));
        const std::string set_version = "PRAGMA user_version = " + std::to_string(version + 1);
        ATOLL_DOM0_TRY(exec(db_, set_version.c_str(), "schema version"));
        ATOLL_DOM0_TRY(transaction.commit());
    }
}

Outcome<void> Store::insert(const VmDefinition& d, const RuntimeRecord& runtime) {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_);
    ATOLL_DOM0_TRY(transaction.begin());
    ATOLL_DOM0_TRY(insert_rows(d, runtime, now_unix_us()));
    return transaction.commit();
}

Outcome<void> Store::replace(const VmDefinition& d, const RuntimeRecord& runtime) {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_);
    ATOLL_DOM0_TRY(transaction.begin());
    int64_t created_unix_us = now_unix_us();
    {
        Statement statement(db_, "SELECT created_unix_us FROM vm WHERE uuid = ?1");
        statement.bind(1, d.uuid);
        if (!statement.valid()) return db_fault(db_, "redefine");
        if (statement.step() != SQLITE_ROW) return fault(ErrorKind::NotFound, "no VM with UUID " + d.uuid);
        created_unix_us = statement.integer(0);
    }
    {
        // Disks, network interfaces and the runtime row go with it (ON DELETE CASCADE).
        Statement statement(db_, "DELETE FROM vm WHERE uuid = ?1");
        statement.bind(1, d.uuid);
        ATOLL_DOM0_TRY(step_done(statement, db_, "redefine"));
    }
    ATOLL_DOM0_TRY(insert_rows(d, runtime, created_unix_us));
    return transaction.commit();
}

Outcome<void> Store::insert_rows(const VmDefinition& d, const RuntimeRecord& runtime, int64_t created_unix_us) {
    {
        Statement statement(db_,
                            "INSERT INTO vm (uuid, name, vcpus, memory_mib, boot_kind, kernel, initrd, cmdline, "
                            "boot_disk, entropy, autostart, created_unix_us, restart_policy, restart_max, extra_json) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
        if (!statement.valid()) return db_fault(db_, "define");
        statement.bind(1, d.uuid)
            .bind(2, d.name)
            .bind(3, int64_t{d.vcpus})
            .bind(4, static_cast<int64_t>(d.memory_mib))
            .bind(5, std::string(d.boot.kind == BootSource::Kind::Disk ? "disk" : "kernel"))
            .bind(6, d.boot.kernel)
            .bind(7, d.boot.initrd)
            .bind(8, d.boot.cmdline)
            .bind(9, int64_t{d.boot.disk})
            .bind(10, int64_t{d.entropy})
            .bind(11, int64_t{d.autostart})
            .bind(12, created_unix_us)
            .bind(13, std::string(d.restart.kind == RestartPolicy::Kind::OnCrash ? "on-crash" : "never"))
            .bind(14, int64_t{d.restart.max_restarts})
            .bind(15, d.extra_json);
        auto done = step_done(statement, db_, "define VM '" + d.name + "'");
        if (!done && done.error().kind == ErrorKind::Exists)
            return fault(ErrorKind::Exists, "a VM named '" + d.name + "' or with UUID " + d.uuid + " is already defined");
        ATOLL_DOM0_TRY(done);
    }
    const int64_t vm_id = sqlite3_last_insert_rowid(db_);
    for (size_t i = 0; i < d.disks.size(); ++i) {
        Statement statement(db_, "INSERT INTO disk (vm_id, position, path, read_only, serial) VALUES (?1, ?2, ?3, ?4, ?5)");
        statement.bind(1, vm_id)
            .bind(2, static_cast<int64_t>(i))
            .bind(3, d.disks[i].path)
            .bind(4, int64_t{d.disks[i].read_only})
            .bind(5, d.disks[i].serial);
        ATOLL_DOM0_TRY(step_done(statement, db_, "define disk"));
    }
    for (size_t i = 0; i < d.nets.size(); ++i) {
        const auto& nic = d.nets[i];
        Statement statement(db_,
                            "INSERT INTO net (vm_id, position, mode, tap, mac, host_forwards) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
        statement.bind(1, vm_id)
            .bind(2, static_cast<int64_t>(i))
            .bind(3, std::string(nic.mode == NicDefinition::Mode::Tap ? "tap" : "user"))
            .bind(4, nic.tap)
            .bind(5, nic.mac)
            .bind(6, json(nic.host_forwards).dump());
        ATOLL_DOM0_TRY(step_done(statement, db_, "define network interface"));
    }
    {
        Statement statement(db_,
                            "INSERT INTO vm_runtime (vm_id, state, reason, pid, boot_count, started_unix_us, "
                            "restart_count, updated_unix_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
        statement.bind(1, vm_id);
        bind_runtime(statement, runtime);
        ATOLL_DOM0_TRY(step_done(statement, db_, "define runtime record"));
    }
    return {};
}

Outcome<void> Store::remove(const std::string& uuid) {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_);
    ATOLL_DOM0_TRY(transaction.begin());
    Statement statement(db_, "DELETE FROM vm WHERE uuid = ?1");
    statement.bind(1, uuid);
    ATOLL_DOM0_TRY(step_done(statement, db_, "undefine"));
    if (sqlite3_changes(db_) != 1) return fault(ErrorKind::NotFound, "no VM with UUID " + uuid);
    return transaction.commit();
}

Outcome<void> Store::set_autostart(const std::string& uuid, bool autostart) {
    std::lock_guard lock(mutex_);
    Statement statement(db_, "UPDATE vm SET autostart = ?2 WHERE uuid = ?1");
    statement.bind(1, uuid).bind(2, int64_t{autostart});
    ATOLL_DOM0_TRY(step_done(statement, db_, "set autostart"));
    if (sqlite3_changes(db_) != 1) return fault(ErrorKind::NotFound, "no VM with UUID " + uuid);
    return {};
}

Outcome<void> Store::set_runtime(const std::string& uuid, const RuntimeRecord& runtime) {
    std::lock_guard lock(mutex_);
    Statement statement(db_,
                        "UPDATE vm_runtime SET state = ?2, reason = ?3, pid = ?4, boot_count = ?5, "
                        "started_unix_us = ?6, restart_count = ?7, updated_unix_us = ?8 "
                        "WHERE vm_id = (SELECT id FROM vm WHERE uuid = ?1)");
    statement.bind(1, uuid);
    bind_runtime(statement, runtime);
    ATOLL_DOM0_TRY(step_done(statement, db_, "record state"));
    if (sqlite3_changes(db_) != 1) return fault(ErrorKind::NotFound, "no VM with UUID " + uuid);
    return {};
}

Outcome<std::vector<StoredVm>> Store::load_all() {
    std::lock_guard lock(mutex_);
    return load_where("", "");
}

Outcome<std::optional<StoredVm>> Store::load(const std::string& uuid) {
    std::lock_guard lock(mutex_);
    auto found = load_where("WHERE vm.uuid = ?1", uuid);
    if (!found) return found.error();
    if (found->empty()) return std::optional<StoredVm>();
    return std::optional<StoredVm>(std::move(found->front()));
}

Outcome<std::vector<StoredVm>> Store::load_where(const std::string& condition, const std::string& argument) {
    // One read transaction: the three queries see the same snapshot.
    Transaction transaction(db_);
    ATOLL_DOM0_TRY(exec(db_, "BEGIN", "read"));
    struct Rollback {
        sqlite3* db;
        ~Rollback() { sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); }
    } rollback{db_};

    std::vector<StoredVm> vms;
    std::map<int64_t, size_t> index_of;
    const std::string sql =
        "SELECT vm.id, uuid, name, vcpus, memory_mib, boot_kind, kernel, initrd, cmdline, boot_disk, entropy, "
        "autostart, restart_policy, restart_max, extra_json, state, reason, pid, boot_count, started_unix_us, "
        "restart_count FROM vm JOIN vm_runtime ON vm_runtime.vm_id = vm.id " +
        condition + " ORDER BY name";
    Statement statement(db_, sql.c_str());
    if (!statement.valid()) return db_fault(db_, "load");
    if (!argument.empty()) statement.bind(1, argument);
    int rc;
    while ((rc = statement.step()) == SQLITE_ROW) {
        StoredVm vm;
        VmDefinition& d = vm.definition;
        d.uuid = statement.text(1);
        d.name = statement.text(2);
        d.vcpus = static_cast<unsigned>(statement.integer(3));
        d.memory_mib = static_cast<uint64_t>(statement.integer(4));
        d.boot.kind = statement.text(5) == "disk" ? BootSource::Kind::Disk : BootSource::Kind::Kernel;
        d.boot.kernel = statement.text(6);
        d.boot.initrd = statement.text(7);
        d.boot.cmdline = statement.text(8);
        d.boot.disk = static_cast<unsigned>(statement.integer(9));
        d.entropy = statement.integer(10) != 0;
        d.autostart = statement.integer(11) != 0;
        d.restart.kind = statement.text(12) == "on-crash" ? RestartPolicy::Kind::OnCrash : RestartPolicy::Kind::Never;
        d.restart.max_restarts = static_cast<unsigned>(statement.integer(13));
        d.extra_json = statement.text(14);
        RuntimeRecord& r = vm.runtime;
        r.state = parse_state(statement.text(15)).value_or(VmState::ShutOff);
        r.reason = statement.text(16);
        r.pid = statement.integer(17);
        r.boot_count = static_cast<uint32_t>(statement.integer(18));
        r.started_unix_us = static_cast<uint64_t>(statement.integer(19));
        r.restart_count = static_cast<uint32_t>(statement.integer(20));
        index_of[statement.integer(0)] = vms.size();
        vms.push_back(std::move(vm));
    }
    if (rc != SQLITE_DONE) return db_fault(db_, "load");
    if (vms.empty()) return vms;

    Statement disks(db_, "SELECT vm_id, path, read_only, serial FROM disk ORDER BY vm_id, position");
    if (!disks.valid()) return db_fault(db_, "load disks");
    while ((rc = disks.step()) == SQLITE_ROW) {
        auto it = index_of.find(disks.integer(0));
        if (it == index_of.end()) continue;
        vms[it->second].definition.disks.push_back({disks.text(1), disks.integer(2) != 0, disks.text(3)});
    }
    if (rc != SQLITE_DONE) return db_fault(db_, "load disks");
    Statement nets(db_, "SELECT vm_id, mode, tap, mac, host_forwards FROM net ORDER BY vm_id, position");
    if (!nets.valid()) return db_fault(db_, "load network interfaces");
    while ((rc = nets.step()) == SQLITE_ROW) {
        auto it = index_of.find(nets.integer(0));
        if (it == index_of.end()) continue;
        NicDefinition nic;
        nic.mode = nets.text(1) == "tap" ? NicDefinition::Mode::Tap : NicDefinition::Mode::User;
        nic.tap = nets.text(2);
        nic.mac = nets.text(3);
        json forwards = json::parse(nets.text(4), nullptr, false);
        if (forwards.is_array()) {
            for (const auto& forward : forwards) {
                if (forward.is_string()) nic.host_forwards.push_back(forward.get<std::string>());
            }
        }
        vms[it->second].definition.nets.push_back(std::move(nic));
    }
    if (rc != SQLITE_DONE) return db_fault(db_, "load network interfaces");
    return vms;
}

Outcome<void> Store::check_consistency() {
    std::lock_guard lock(mutex_);
    {
        Statement statement(db_, "PRAGMA integrity_check");
        if (!statement.valid() || statement.step() != SQLITE_ROW) return db_fault(db_, "integrity check");
        if (statement.text(0) != "ok") return fault(ErrorKind::Failed, "database: integrity check: " + statement.text(0));
    }
    {
        Statement statement(db_, "PRAGMA foreign_key_check");
        if (!statement.valid()) return db_fault(db_, "foreign key check");
        if (statement.step() == SQLITE_ROW)
            return fault(ErrorKind::Failed, "database: foreign key violation in table " + statement.text(0));
    }
    const char* const invariants[][2] = {
        {"SELECT count(*) FROM vm WHERE id NOT IN (SELECT vm_id FROM vm_runtime)", "a VM without a runtime record"},
        {"SELECT count(*) FROM disk d WHERE position >= (SELECT count(*) FROM disk e WHERE e.vm_id = d.vm_id)",
         "disks not numbered 0..n-1"},
        {"SELECT count(*) FROM net d WHERE position >= (SELECT count(*) FROM net e WHERE e.vm_id = d.vm_id)",
         "network interfaces not numbered 0..n-1"},
        {"SELECT count(*) FROM vm WHERE boot_kind = 'disk' AND boot_disk >= (SELECT count(*) FROM disk WHERE vm_id = vm.id)",
         "a VM booting from a disk it does not have"},
    };
    for (const auto& [sql, what] : invariants) {
        Statement statement(db_, sql);
        if (!statement.valid() || statement.step() != SQLITE_ROW) return db_fault(db_, what);
        if (statement.integer(0) != 0) return fault(ErrorKind::Failed, std::string("database: ") + what);
    }
    return {};
}

}  // namespace atl::dom0
