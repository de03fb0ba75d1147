// The local-viewer API on D-Bus (sdbus-c++): one object per VM, serving the
// surface as a file descriptor plus geometry, damage and cursor as signals,
// and input as methods. Any number of viewers may watch one VM; each maps the
// surface itself, so pixels never cross the bus.
//
// Threads: methods run on sdbus-c++'s event loop thread and only read
// VmDisplay's locked state or queue input; signals are emitted from the link
// thread (sdbus-c++ serializes access to the bus).
#pragma once

#include "vm_display.h"

#include <atoll/result.h>

#include <memory>
#include <string>

namespace sdbus {
class IConnection;
class IObject;
}  // namespace sdbus

namespace atl::display {

class DbusVmObject;

class DbusService {
public:
    enum class Bus { Session, System };
    // Connects, owns org.atoll.Display1 and serves the manager object.
    static Result<std::unique_ptr<DbusService>> start(Bus bus);
    ~DbusService();

    // Link thread. The object lives until the returned sink is destroyed.
    Result<std::unique_ptr<DbusVmObject>> add(const std::shared_ptr<VmDisplay>& vm);

private:
    friend class DbusVmObject;
    DbusService();
    void forget(const std::string& name);

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IObject> manager_;
    struct Registry;
    std::shared_ptr<Registry> registry_;  // the VMs ListDisplays reports
};

class DbusVmObject final : public DisplaySink {
public:
    ~DbusVmObject() override;
    void surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) override;
    void damaged(uint32_t scanout, const std::vector<link::Rect>& rects) override;
    void cursor_changed(uint32_t scanout, const CursorState& cursor, bool shape_changed) override;
    void modes_changed(uint32_t scanout, uint32_t width, uint32_t height) override;

private:
    friend class DbusService;
    DbusVmObject(DbusService& service, std::string name);
    template <class Emit>
    void emit(const char* what, Emit&& emit_signal);

    DbusService& service_;
    const std::string name_;
    std::unique_ptr<sdbus::IObject> object_;
};

}  // namespace atl::display
