// atolld's D-Bus API (dom0/dbus/*.xml): the name org.atoll.Atoll1, the manager
// object /org/atoll/Atoll1 and one object per VM, served on one thread. Slow
// methods run on worker threads and reply when done, so the bus thread always
// answers property reads and other calls at once.
#pragma once

#include <atoll/dom0/daemon.h>
#include <atoll/dom0/error.h>

#include <memory>
#include <string>

namespace atl::dom0 {

inline constexpr const char* kBusName = "org.atoll.Atoll1";
inline constexpr const char* kManagerPath = "/org/atoll/Atoll1";
inline constexpr const char* kManagerInterface = "org.atoll.Atoll1.Manager";
inline constexpr const char* kVmInterface = "org.atoll.Atoll1.VM";
inline constexpr const char* kErrorPrefix = "org.atoll.Atoll1.Error.";

struct BusOptions {
    enum class Bus { System, Session, Address };
    Bus bus = Bus::System;
    std::string address;  // Bus::Address: a D-Bus server address ("unix:path=...")
};

class DbusService {
public:
    // Connects, registers the objects of every VM the daemon knows and takes
    // the well-known name (Exists when another atolld has it).
    static Outcome<std::unique_ptr<DbusService>> create(Daemon& daemon, const BusOptions& bus);
    // Waits for the calls in flight (call Daemon::stop_operations first to cut their waits short).
    ~DbusService();

    // Serves until stop() (then returns success) or until the bus connection
    // fails; on the calling thread.
    Outcome<void> run();
    // Makes run() return. Async-signal-safe.
    void stop();

    class Impl;

private:
    explicit DbusService(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace atl::dom0
