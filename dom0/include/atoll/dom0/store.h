// atolld's database: VM definitions and what atolld last knew of each VM's
// run, in one SQLite file (WAL, foreign keys, one transaction per change, a
// schema version with forward migrations). A kill -9 at any moment leaves it
// consistent: every change is all there or not at all.
#pragma once

#include <atoll/dom0/error.h>
#include <atoll/dom0/vm_definition.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace atl::dom0 {

// What atolld last recorded of a VM's run; reconciled with the processes it
// finds when it starts.
struct RuntimeRecord {
    VmState state = VmState::ShutOff;
    std::string reason;
    int64_t pid = 0;                // atoll-vmm, while active
    uint32_t boot_count = 0;
    uint64_t started_unix_us = 0;   // CLOCK_REALTIME of the last start; 0 when off
    uint32_t restart_count = 0;     // automatic restarts since the last Start call

    bool operator==(const RuntimeRecord&) const = default;
};

struct StoredVm {
    VmDefinition definition;
    RuntimeRecord runtime;
};

class Store {
public:
    static constexpr int kSchemaVersion = 2;

    // Opens (creating if needed) and migrates to `target_version` (tests pass an
    // older one to build an old database). A database newer than this atolld
    // knows is refused.
    static Outcome<std::unique_ptr<Store>> open(const std::string& path, int target_version = kSchemaVersion);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    int schema_version();

    // Each of these is one transaction. The UUID must be set.
    Outcome<void> insert(const VmDefinition& definition, const RuntimeRecord& runtime = {});
    // A new definition for the VM with d.uuid (its creation time kept).
    Outcome<void> replace(const VmDefinition& definition, const RuntimeRecord& runtime);
    Outcome<void> remove(const std::string& uuid);
    Outcome<void> set_autostart(const std::string& uuid, bool autostart);
    Outcome<void> set_runtime(const std::string& uuid, const RuntimeRecord& runtime);

    Outcome<std::vector<StoredVm>> load_all();  // sorted by name
    Outcome<std::optional<StoredVm>> load(const std::string& uuid);

    // PRAGMA integrity_check and foreign_key_check, plus Atoll's own invariants
    // (every VM has one runtime row, disks and nets numbered 0..n-1).
    Outcome<void> check_consistency();

private:
    explicit Store(sqlite3* db) : db_(db) {}
    Outcome<void> migrate(int target_version);
    Outcome<void> insert_rows(const VmDefinition& definition, const RuntimeRecord& runtime, int64_t created_unix_us);
    Outcome<std::vector<StoredVm>> load_where(const std::string& condition, const std::string& argument);

    std::mutex mutex_;
    sqlite3* db_;
};

}  // namespace atl::dom0
