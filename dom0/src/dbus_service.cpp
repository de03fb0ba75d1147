#include <atoll/dom0/dbus_service.h>

#include "log.h"
#include "task_group.h"

// Generated at build time from dom0/dbus/*.xml by sdbus-c++-xml2cpp.
#include "atoll/dom0/dbus/manager_adaptor.h"
#include "atoll/dom0/dbus/vm_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

namespace atl::dom0 {
namespace {

namespace generated = org::atoll::Atoll1;

sdbus::Error to_dbus_error(const Fault& error) {
    return sdbus::Error(std::string(kErrorPrefix) + error_kind_name(error.kind), make_valid_utf8(error.message));
}

}  // namespace

class VmObject;
class ManagerObject;

class DbusService::Impl final : public DaemonObserver {
public:
    explicit Impl(Daemon& d) : daemon(d) {}
    ~Impl() override {
        if (wake_fd >= 0) close(wake_fd);
    }

    Daemon& daemon;
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<ManagerObject> manager;
    std::map<std::string, std::unique_ptr<VmObject>> vm_objects;  // bus thread only
    int wake_fd = -1;
    std::atomic<bool> stop_requested{false};
    std::mutex queue_mutex;
    std::deque<std::function<void()>> queue;
    TaskGroup workers;

    // Runs `task` on the bus thread (sd-bus is not thread-safe: every message
    // leaves from there).
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(queue_mutex);
            queue.push_back(std::move(task));
        }
        wake();
    }

    void wake() {
        const uint64_t one = 1;
        (void)!write(wake_fd, &one, sizeof one);
    }

    // Runs what other threads posted; whether there was anything.
    bool run_queue() {
        std::deque<std::function<void()>> tasks;
        {
            std::lock_guard lock(queue_mutex);
            if (queue.empty()) return false;
            tasks.swap(queue);
        }
        for (auto& task : tasks) {
            try {
                task();
            } catch (const sdbus::Error& error) {
                log_error("D-Bus: " + error.getName() + ": " + error.getMessage());
            }
        }
        return true;
    }

    // Runs `work` on a worker thread and replies from the bus thread when it is
    // done. The worker hands its reference to the call back with the reply, so
    // the sd-bus message is only ever touched (even freed) on the bus thread.
    // `object`: the VM object the call came through; it stays registered until
    // the reply is out (sd-bus checks a reply against the object's vtable).
    void async_void(sdbus::Result<>&& result, std::function<Outcome<void>()> work, VmObject* object = nullptr) {
        auto reply = std::make_shared<sdbus::Result<>>(std::move(result));
        hold(object);
        workers.spawn([this, reply = std::move(reply), work = std::move(work), object]() mutable {
            auto outcome = std::make_shared<Outcome<void>>(work());
            post([this, reply = std::move(reply), outcome, object] {
                if (*outcome) reply->returnResults();
                else reply->returnError(to_dbus_error(outcome->error()));
                release(object);
            });
        });
    }

    template <class T>
    void async_value(sdbus::Result<T>&& result, std::function<Outcome<T>()> work, VmObject* object = nullptr) {
        auto reply = std::make_shared<sdbus::Result<T>>(std::move(result));
        hold(object);
        workers.spawn([this, reply = std::move(reply), work = std::move(work), object]() mutable {
            auto outcome = std::make_shared<Outcome<T>>(work());
            post([this, reply = std::move(reply), outcome, object] {
                if (*outcome) reply->returnResults(outcome->value());
                else reply->returnError(to_dbus_error(outcome->error()));
                release(object);
            });
        });
    }

    // Calls in flight through a VM object (bus thread only).
    void hold(VmObject* object);
    void release(VmObject* object);
    std::vector<std::unique_ptr<VmObject>> retired_objects;  // undefined, awaiting their last reply

    VmStatus status_or_throw(const std::string& uuid) {
        auto status = daemon.status(uuid);
        if (!status) throw to_dbus_error(fault(ErrorKind::NotFound, "VM " + uuid + " is no longer defined"));
        return std::move(*status);
    }

    VmInfo vm_or_throw(const std::string& uuid) {
        auto info = daemon.find(uuid);
        if (!info) throw to_dbus_error(fault(ErrorKind::NotFound, "VM " + uuid + " is no longer defined"));
        return *info;
    }

    void add_object(const VmInfo& vm);
    void remove_object(const VmInfo& vm);
    void object_changed(const VmInfo& vm, bool state_changed);

    // DaemonObserver: called with the daemon's lock held; only queue work.
    void vm_defined(const VmInfo& vm) override {
        post([this, vm] { add_object(vm); });
    }
    void vm_undefined(const VmInfo& vm) override {
        post([this, vm] { remove_object(vm); });
    }
    void vm_changed(const VmInfo& vm, bool state_changed) override {
        post([this, vm, state_changed] { object_changed(vm, state_changed); });
    }
};

class VmObject final : public sdbus::AdaptorInterfaces<generated::VM_adaptor, sdbus::ManagedObject_adaptor> {
public:
    VmObject(DbusService::Impl& service, const VmInfo& info)
        : AdaptorInterfaces(*service.connection, vm_object_path(info.definition.uuid)),
          service_(service),
          uuid_(info.definition.uuid),
          last_(info) {
        registerAdaptor();
    }
    ~VmObject() { unregisterAdaptor(); }

    void announce() { emitInterfacesAddedSignal({kVmInterface}); }
    void retire() {
        emitInterfacesRemovedSignal({kVmInterface});
        retired = true;
    }

    int calls_in_flight = 0;
    bool retired = false;

    // PropertiesChanged for what differs from the last announced state, and
    // StateChanged when the state or its reason changed.
    void changed(const VmInfo& info, bool state_changed) {
        std::vector<std::string> names;
        if (info.state != last_.state) names.push_back("State");
        if (info.reason != last_.reason) names.push_back("StateReason");
        if (info.pid != last_.pid) names.push_back("VmmPid");
        if (info.boot_count != last_.boot_count) names.push_back("BootCount");
        if (info.started_unix_us != last_.started_unix_us) names.push_back("StartedAt");
        if (info.console_socket != last_.console_socket) names.push_back("ConsoleSocket");
        if (info.audio != last_.audio) {
            const AudioState none, now = info.audio.value_or(none), before = last_.audio.value_or(none);
            if (info.audio.has_value() != last_.audio.has_value()) names.push_back("HasAudio");
            if (now.volume_percent != before.volume_percent) names.push_back("AudioVolume");
            if (now.muted != before.muted) names.push_back("AudioMuted");
            if (now.connected != before.connected) names.push_back("AudioConnected");
            if (now.underruns != before.underruns) names.push_back("AudioUnderruns");
            if (now.overruns != before.overruns) names.push_back("AudioOverruns");
            if (now.dropped_frames != before.dropped_frames) names.push_back("AudioDroppedFrames");
            if (now.capture_gaps != before.capture_gaps) names.push_back("AudioCaptureGaps");
        }
        if (info.vnc != last_.vnc) {
            names.push_back("VncAddress");
            names.push_back("VncTls");
        }
        const VmDefinition& now = info.definition;
        const VmDefinition& before = last_.definition;
        if (now.name != before.name) names.push_back("Name");
        if (now.vcpus != before.vcpus) names.push_back("VCPUs");
        if (now.memory_mib != before.memory_mib) names.push_back("MemoryMiB");
        if (now.autostart != before.autostart) names.push_back("Autostart");
        if (vm_definition_to_json(now) != vm_definition_to_json(before)) names.push_back("Config");
        if (restart_policy_text(now.restart) != restart_policy_text(before.restart)) names.push_back("RestartPolicy");
        last_ = info;
        if (!names.empty()) getObject().emitPropertiesChangedSignal(kVmInterface, names);
        if (state_changed) emitStateChanged(state_name(info.state), make_valid_utf8(info.reason));
    }

private:
    Daemon& daemon() { return service_.daemon; }
    VmInfo info() { return service_.vm_or_throw(uuid_); }
    VmStatus status() { return service_.status_or_throw(uuid_); }

    void Start(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.start(uuid); }, this);
    }
    void Shutdown(sdbus::Result<>&& result, uint32_t timeout_seconds, bool force) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_, timeout_seconds, force] {
            return daemon.shutdown(uuid, std::chrono::seconds(timeout_seconds), force);
        }, this);
    }
    void ForceStop(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.force_stop(uuid); }, this);
    }
    void Reboot(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.reboot(uuid); }, this);
    }
    void Pause(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.pause(uuid); }, this);
    }
    void Resume(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.resume(uuid); }, this);
    }
    void Redefine(sdbus::Result<>&& result, std::string config) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_, config = std::move(config)]() -> Outcome<void> {
            auto redefined = daemon.redefine(uuid, config);
            if (!redefined) return redefined.error();
            return {};
        }, this);
    }
    void SetAudioVolume(sdbus::Result<>&& result, uint32_t percent) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_, percent] {
            return daemon.set_audio_volume(uuid, percent);
        }, this);
    }
    void SetAudioMuted(sdbus::Result<>&& result, bool muted) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_, muted] {
            return daemon.set_audio_muted(uuid, muted);
        }, this);
    }
    void Undefine(sdbus::Result<>&& result) override {
        service_.async_void(std::move(result), [&daemon = daemon(), uuid = uuid_] { return daemon.undefine(uuid); }, this);
    }
    void OpenConsole(sdbus::Result<sdbus::UnixFd>&& result) override {
        service_.async_value<sdbus::UnixFd>(std::move(result),
                                            [&daemon = daemon(), uuid = uuid_]() -> Outcome<sdbus::UnixFd> {
                                                auto fd = daemon.open_console(uuid);
                                                if (!fd) return fd.error();
                                                return sdbus::UnixFd(*fd, sdbus::adopt_fd);
                                            }, this);
    }

    std::string Name() override { return info().definition.name; }
    std::string UUID() override { return uuid_; }
    std::string State() override { return state_name(status().state); }
    std::string StateReason() override { return make_valid_utf8(status().reason); }
    uint32_t VCPUs() override { return info().definition.vcpus; }
    uint64_t MemoryMiB() override { return info().definition.memory_mib; }
    std::string Config() override { return vm_definition_to_json(info().definition); }
    bool Autostart() override { return status().autostart; }
    void Autostart(const bool& value) override {
        if (auto set = daemon().set_autostart(uuid_, value); !set) throw to_dbus_error(set.error());
    }
    std::string RestartPolicy() override { return restart_policy_text(info().definition.restart); }
    std::string ConsoleSocket() override { return make_valid_utf8(status().console_socket); }
    uint32_t VmmPid() override { return static_cast<uint32_t>(status().pid); }
    uint32_t BootCount() override { return status().boot_count; }
    uint64_t StartedAt() override { return status().started_unix_us; }
    uint64_t CpuTimeNs() override { return process_cpu_time_ns(status().pid); }
    bool HasAudio() override { return status().audio.has_value(); }
    uint32_t AudioVolume() override { return status().audio.value_or(AudioState{}).volume_percent; }
    bool AudioMuted() override { return status().audio.value_or(AudioState{}).muted; }
    bool AudioConnected() override { return status().audio.value_or(AudioState{}).connected; }
    uint64_t AudioUnderruns() override { return status().audio.value_or(AudioState{}).underruns; }
    uint64_t AudioOverruns() override { return status().audio.value_or(AudioState{}).overruns; }
    uint64_t AudioDroppedFrames() override { return status().audio.value_or(AudioState{}).dropped_frames; }
    uint64_t AudioCaptureGaps() override { return status().audio.value_or(AudioState{}).capture_gaps; }
    std::string VncAddress() override {
        const auto vnc = status().vnc;
        return vnc ? make_valid_utf8(vnc_address_text(*vnc)) : std::string();
    }
    bool VncTls() override {
        const auto vnc = status().vnc;
        return vnc && vnc->tls;
    }

    DbusService::Impl& service_;
    const std::string uuid_;
    VmInfo last_;
};

class ManagerObject final : public sdbus::AdaptorInterfaces<generated::Manager_adaptor, sdbus::ObjectManager_adaptor> {
public:
    explicit ManagerObject(DbusService::Impl& service)
        : AdaptorInterfaces(*service.connection, kManagerPath), service_(service) {
        registerAdaptor();
    }
    ~ManagerObject() { unregisterAdaptor(); }

    void count_changed() { getObject().emitPropertiesChangedSignal(kManagerInterface, {"VMCount"}); }

private:
    Daemon& daemon() { return service_.daemon; }

    void DefineVM(sdbus::Result<sdbus::ObjectPath>&& result, std::string config) override {
        service_.async_value<sdbus::ObjectPath>(
            std::move(result), [&daemon = daemon(), config = std::move(config)]() -> Outcome<sdbus::ObjectPath> {
                auto defined = daemon.define(config);
                if (!defined) return defined.error();
                return sdbus::ObjectPath(vm_object_path(defined->definition.uuid));
            });
    }

    std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> ListVMs() override {
        std::vector<sdbus::Struct<std::string, std::string, std::string, sdbus::ObjectPath>> out;
        for (const auto& vm : daemon().list()) {
            out.emplace_back(vm.definition.name, vm.definition.uuid, std::string(state_name(vm.state)),
                             sdbus::ObjectPath(vm_object_path(vm.definition.uuid)));
        }
        return out;
    }

    sdbus::ObjectPath LookupByName(const std::string& name) override {
        if (!valid_vm_name(name))
            throw to_dbus_error(fault(ErrorKind::InvalidArgument, "name " + quote_text(name, 80, '\'') + " is not a valid VM name"));
        auto vm = daemon().find_by_name(name);
        if (!vm) throw to_dbus_error(fault(ErrorKind::NotFound, "no VM named " + quote_text(name, 80, '\'')));
        return sdbus::ObjectPath(vm_object_path(vm->definition.uuid));
    }

    sdbus::ObjectPath LookupByUUID(const std::string& uuid) override {
        auto canonical = canonical_uuid(uuid);
        if (!canonical) throw to_dbus_error(fault(ErrorKind::InvalidArgument, quote_text(uuid, 80, '\'') + " is not a UUID"));
        auto vm = daemon().find(*canonical);
        if (!vm) throw to_dbus_error(fault(ErrorKind::NotFound, "no VM with UUID " + *canonical));
        return sdbus::ObjectPath(vm_object_path(vm->definition.uuid));
    }

    std::string Version() override { return daemon().host_facts().version; }
    std::string HostName() override { return make_valid_utf8(daemon().host_facts().host_name); }
    uint32_t CpuCount() override { return daemon().host_facts().cpu_count; }
    uint64_t MemoryMiB() override { return daemon().host_facts().memory_mib; }
    bool KvmAvailable() override { return daemon().host_facts().kvm_available; }
    std::vector<std::string> StorageDirectories() override {
        std::vector<std::string> out;
        for (const auto& directory : daemon().options().storage_dirs) out.push_back(make_valid_utf8(directory));
        return out;
    }
    uint32_t VMCount() override { return static_cast<uint32_t>(daemon().list().size()); }

    DbusService::Impl& service_;
};

void DbusService::Impl::add_object(const VmInfo& vm) {
    const std::string& uuid = vm.definition.uuid;
    if (vm_objects.count(uuid)) return;
    auto object = std::make_unique<VmObject>(*this, vm);
    object->announce();
    vm_objects[uuid] = std::move(object);
    manager->emitVMDefined(vm.definition.name, sdbus::ObjectPath(vm_object_path(uuid)));
    manager->count_changed();
}

void DbusService::Impl::remove_object(const VmInfo& vm) {
    auto it = vm_objects.find(vm.definition.uuid);
    if (it == vm_objects.end()) return;
    it->second->retire();
    // Kept registered until the replies to calls made through it are out.
    if (it->second->calls_in_flight > 0) retired_objects.push_back(std::move(it->second));
    vm_objects.erase(it);
    manager->emitVMUndefined(vm.definition.name, sdbus::ObjectPath(vm_object_path(vm.definition.uuid)));
    manager->count_changed();
}

void DbusService::Impl::hold(VmObject* object) {
    if (object) ++object->calls_in_flight;
}

void DbusService::Impl::release(VmObject* object) {
    if (!object || --object->calls_in_flight > 0 || !object->retired) return;
    std::erase_if(retired_objects, [&](const auto& retired) { return retired.get() == object; });
}

void DbusService::Impl::object_changed(const VmInfo& vm, bool state_changed) {
    auto it = vm_objects.find(vm.definition.uuid);
    if (it != vm_objects.end()) it->second->changed(vm, state_changed);
}

DbusService::DbusService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DbusService::~DbusService() {
    impl_->daemon.set_observer(nullptr);
    impl_->workers.wait();
    impl_->queue.clear();  // replies to callers that will not hear them now
    impl_->vm_objects.clear();
    impl_->retired_objects.clear();
    impl_->manager.reset();
}

Outcome<std::unique_ptr<DbusService>> DbusService::create(Daemon& daemon, const BusOptions& bus) {
    auto impl = std::make_unique<Impl>(daemon);
    impl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl->wake_fd < 0) return fault(ErrorKind::Failed, "eventfd failed");
    try {
        switch (bus.bus) {
        case BusOptions::Bus::System: impl->connection = sdbus::createSystemBusConnection(); break;
        case BusOptions::Bus::Session: impl->connection = sdbus::createSessionBusConnection(); break;
        case BusOptions::Bus::Address:
            impl->connection = sdbus::createSessionBusConnectionWithAddress(bus.address);
            break;
        }
    } catch (const sdbus::Error& error) {
        return fault(ErrorKind::Failed, "cannot connect to the D-Bus bus: " + error.getMessage());
    }
    try {
        impl->manager = std::make_unique<ManagerObject>(*impl);
        // The objects of the VMs as they are now; changes from here on are queued
        // by the observer and applied in order on the bus thread.
        daemon.set_observer(impl.get());
        for (const auto& vm : daemon.list()) {
            impl->vm_objects[vm.definition.uuid] = std::make_unique<VmObject>(*impl, vm);
        }
        impl->connection->requestName(kBusName);
    } catch (const sdbus::Error& error) {
        daemon.set_observer(nullptr);
        return fault(error.getName() == "org.freedesktop.DBus.Error.FileExists" ? ErrorKind::Exists : ErrorKind::Failed,
                     "cannot serve " + std::string(kBusName) + ": " + error.getMessage());
    }
    return std::unique_ptr<DbusService>(new DbusService(std::move(impl)));
}

Outcome<void> DbusService::run() {
    auto& impl = *impl_;
    try {
        while (!impl.stop_requested.load()) {
            while (impl.connection->processPendingRequest()) {
                if (impl.stop_requested.load()) break;
            }
            // Replies sent from the queue may have made more work for sd-bus.
            if (impl.run_queue() && impl.connection->processPendingRequest()) continue;
            if (impl.stop_requested.load()) break;
            const auto poll_data = impl.connection->getEventLoopPollData();
            pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {impl.wake_fd, POLLIN, 0}};
            const int ready = poll(fds, 2, poll_data.getPollTimeout());
            if (ready < 0 && errno != EINTR) return fault(ErrorKind::Failed, "poll failed");
            if (fds[1].revents & POLLIN) {
                uint64_t value;
                (void)!read(impl.wake_fd, &value, sizeof value);
            }
        }
    } catch (const sdbus::Error& error) {
        return fault(ErrorKind::Failed, "D-Bus connection: " + error.getName() + ": " + error.getMessage());
    }
    return {};
}

void DbusService::stop() {
    impl_->stop_requested.store(true);
    impl_->wake();
}

}  // namespace atl::dom0
