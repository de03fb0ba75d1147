// atolld's view of atoll-display's state files: only a well-formed file for
// the right VM from a live display server counts, and changes are noticed.
#include "display_watch.h"

#include "temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>

namespace atl::dom0 {
namespace {

using testing::TempDir;

std::string state(const std::string& name, long pid, const std::string& vnc) {
    return R"({"vm_name": ")" + name + R"(", "vm_uuid": "", "pid": )" + std::to_string(pid) + R"(, "vnc": )" + vnc + "}";
}
const std::string kVnc = R"({"host": "127.0.0.1", "port": 5901, "tls": true, "password": false})";

TEST(DisplayStateTest, ReadsTheAddressOfALiveServer) {
    TempDir dir;
    dir.write("web.json", state("web", getpid(), kVnc));
    auto vnc = read_vnc_state(dir.path(), "web");
    ASSERT_TRUE(vnc);
    EXPECT_EQ(vnc_address_text(*vnc), "127.0.0.1:5901");
    EXPECT_TRUE(vnc->tls);
    EXPECT_FALSE(vnc->password);
}

TEST(DisplayStateTest, Ipv6HostsGetBrackets) {
    EXPECT_EQ(vnc_address_text({"::1", 5900, false, false}), "[::1]:5900");
}

TEST(DisplayStateTest, IgnoresWhatDoesNotDescribeALiveVncServerForThatVm) {
    TempDir dir;
    const long dead_pid = 4194304 + 1;  // above the kernel's pid_max limit
    const std::pair<const char*, std::string> bad[] = {
        {"no file", ""},
        {"not JSON", "vnc: 5900"},
        {"another VM's name", state("db", getpid(), kVnc)},
        {"a dead server", state("web", dead_pid, kVnc)},
        {"no VNC", state("web", getpid(), "null")},
        {"port 0", state("web", getpid(), R"({"host": "127.0.0.1", "port": 0})")},
        {"port too big", state("web", getpid(), R"({"host": "127.0.0.1", "port": 70000})")},
        {"negative port", state("web", getpid(), R"({"host": "127.0.0.1", "port": -1})")},
        {"host not a string", state("web", getpid(), R"({"host": 7, "port": 5900})")},
        {"empty host", state("web", getpid(), R"({"host": "", "port": 5900})")},
        {"a list", "[1, 2]"},
    };
    for (const auto& [what, text] : bad) {
        std::filesystem::remove(dir / "web.json");
        if (!text.empty()) dir.write("web.json", text);
        EXPECT_FALSE(read_vnc_state(dir.path(), "web")) << what;
    }
    EXPECT_FALSE(read_vnc_state("", "web"));
}

class Changes {
public:
    void add(const std::string& name) {
        std::lock_guard lock(mutex_);
        seen_.insert(name);
        changed_.notify_all();
    }
    bool wait_for(const std::string& name) {
        std::unique_lock lock(mutex_);
        const bool seen = changed_.wait_for(lock, std::chrono::seconds(5), [&] { return seen_.count(name) > 0; });
        seen_.erase(name);
        return seen;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::set<std::string> seen_;
};

TEST(DisplayStateWatcherTest, ReportsFilesThatAppearChangeAndGo) {
    TempDir dir;
    Changes changes;
    DisplayStateWatcher watcher(dir.path(), [&](const std::string& name) { changes.add(name); });
    EXPECT_TRUE(changes.wait_for("")) << "everything is looked at once when watching starts";
    dir.write("web.json", state("web", getpid(), kVnc));
    EXPECT_TRUE(changes.wait_for("web"));
    // atoll-display replaces its files by renaming.
    dir.write("db.json.tmp", state("db", getpid(), kVnc));
    std::filesystem::rename(dir / "db.json.tmp", dir / "db.json");
    EXPECT_TRUE(changes.wait_for("db"));
    std::filesystem::remove(dir / "web.json");
    EXPECT_TRUE(changes.wait_for("web"));
}

TEST(DisplayStateWatcherTest, WaitsForTheDirectoryToAppear) {
    TempDir dir;
    Changes changes;
    DisplayStateWatcher watcher(dir / "display", [&](const std::string& name) { changes.add(name); });
    std::filesystem::create_directories(dir / "display");
    EXPECT_TRUE(changes.wait_for(""));
    dir.write("display/web.json", state("web", getpid(), kVnc));
    EXPECT_TRUE(changes.wait_for("web"));
}

}  // namespace
}  // namespace atl::dom0
