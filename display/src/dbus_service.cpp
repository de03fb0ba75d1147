#include "dbus_service.h"

#include <atoll/display/dbus_api.h>
#include <atoll/display/keysym.h>

#include <linux/input-event-codes.h>
#include <sdbus-c++/sdbus-c++.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <tuple>

namespace atl::display {

using namespace atl::display::dbus;

struct DbusService::Registry {
    std::mutex mutex;
    std::map<std::string, std::pair<std::string, std::string>> displays;  // name -> (uuid, path)
};

namespace {

using RectStruct = sdbus::Struct<uint32_t, uint32_t, uint32_t, uint32_t>;
using SurfaceReply = std::tuple<sdbus::UnixFd, uint32_t, uint32_t, uint32_t, uint64_t, std::string, uint64_t>;
using CursorReply = std::tuple<bool, int32_t, int32_t, uint32_t, uint32_t, uint32_t, uint32_t, std::vector<uint8_t>>;

// Keyboard keys: KEY_ESC up to the mouse and joystick buttons (BTN_MISC),
// and KEY_OK up to BTN_TRIGGER_HAPPY (input-event-codes.h). atoll-vmm's
// keyboard has exactly these and ignores anything else; a caller is told.
bool keyboard_key(uint32_t code) {
    return (code >= KEY_ESC && code < BTN_MISC) || (code >= KEY_OK && code < BTN_TRIGGER_HAPPY);
}

void log_line(const std::string& message) { fprintf(stderr, "atoll-display: dbus: %s\n", message.c_str()); }

std::shared_ptr<VmDisplay> lock_vm(const std::weak_ptr<VmDisplay>& weak) {
    auto vm = weak.lock();
    if (!vm) throw sdbus::Error(kErrorGone, "the VM's display is gone");
    return vm;
}

void check_scanout(const VmDisplay& vm, uint32_t scanout) {
    if (scanout >= vm.scanout_count())
        throw sdbus::Error(kErrorInvalidArgument, "scanout " + std::to_string(scanout) + " of " +
                                                      std::to_string(vm.scanout_count()));
}

void register_display_interface(sdbus::IObject& object, const std::shared_ptr<VmDisplay>& vm) {
    const std::weak_ptr<VmDisplay> weak = vm;
    const char* interface = kDisplayInterface;

    object.registerProperty("Name").onInterface(interface).withGetter([name = vm->name()] { return name; });
    object.registerProperty("Uuid").onInterface(interface).withGetter([uuid = vm->uuid()] { return uuid; });
    object.registerProperty("Scanouts").onInterface(interface).withGetter([count = vm->scanout_count()] {
        return count;
    });
    // The VNC server's address; empty host and port 0 without one.
    object.registerProperty("VncHost").onInterface(interface).withGetter([weak] {
        auto vm = weak.lock();
        auto address = vm ? vm->vnc_address() : std::nullopt;
        return address ? address->host : std::string();
    });
    object.registerProperty("VncPort").onInterface(interface).withGetter([weak] {
        auto vm = weak.lock();
        auto address = vm ? vm->vnc_address() : std::nullopt;
        return address ? address->port : uint16_t{0};
    });
    object.registerProperty("VncTls").onInterface(interface).withGetter([weak] {
        auto vm = weak.lock();
        auto address = vm ? vm->vnc_address() : std::nullopt;
        return address ? address->tls : false;
    });

    object.registerMethod("GetSurface")
        .onInterface(interface)
        .withInputParamNames("scanout")
        .withOutputParamNames("fd", "width", "height", "stride", "offset", "format", "serial")
        .implementedAs([weak](uint32_t scanout) -> SurfaceReply {
            auto vm = lock_vm(weak);
            check_scanout(*vm, scanout);
            auto surface = vm->scanout(scanout).surface;
            if (!surface) throw sdbus::Error(kErrorNoSurface, "scanout " + std::to_string(scanout) + " is off");
            // UnixFd duplicates: every viewer gets a descriptor of its own.
            return {sdbus::UnixFd(surface->read_only_fd()), surface->width(), surface->height(), surface->stride(),
                    surface->description().offset, std::string("XRGB8888"), surface->serial()};
        });
    object.registerMethod("GetCursor")
        .onInterface(interface)
        .withInputParamNames("scanout")
        .withOutputParamNames("visible", "x", "y", "hot_x", "hot_y", "width", "height", "pixels")
        .implementedAs([weak](uint32_t scanout) -> CursorReply {
            auto vm = lock_vm(weak);
            check_scanout(*vm, scanout);
            const CursorState cursor = vm->scanout(scanout).cursor;
            std::vector<uint8_t> pixels;
            uint32_t hot_x = 0, hot_y = 0, width = 0, height = 0;
            if (cursor.image) {
                hot_x = cursor.image->hot_x;
                hot_y = cursor.image->hot_y;
                width = cursor.image->width;
                height = cursor.image->height;
                pixels.reserve(cursor.image->argb.size() * 4);
                for (uint32_t argb : cursor.image->argb)
                    for (int shift = 0; shift < 32; shift += 8) pixels.push_back(static_cast<uint8_t>(argb >> shift));
            }
            return {cursor.visible && cursor.image, cursor.x, cursor.y, hot_x, hot_y, width, height, pixels};
        });
    object.registerMethod("SendKey")
        .onInterface(interface)
        .withInputParamNames("code", "pressed")
        .implementedAs([weak](uint32_t code, bool pressed) {
            if (!keyboard_key(code))
                throw sdbus::Error(kErrorInvalidArgument, "not a keyboard key code (1..255 or 352..703)");
            lock_vm(weak)->input()->key(static_cast<uint16_t>(code), pressed);
        });
    object.registerMethod("SendKeysym")
        .onInterface(interface)
        .withInputParamNames("keysym", "pressed")
        .withOutputParamNames("code")
        .implementedAs([weak](uint32_t keysym, bool pressed) -> uint32_t {
            const uint16_t code = linux_key_from_keysym(keysym);
            if (code != 0) lock_vm(weak)->input()->key(code, pressed);
            return code;  // 0: no key for this keysym, nothing sent
        });
    object.registerMethod("SendPointer")
        .onInterface(interface)
        .withInputParamNames("x", "y", "buttons")
        .implementedAs([weak](uint32_t x, uint32_t y, uint32_t buttons) {
            if (x > link::kPointerMax || y > link::kPointerMax || buttons > 7)
                throw sdbus::Error(kErrorInvalidArgument, "x and y are 0..32767, buttons 0..7");
            lock_vm(weak)->input()->pointer(x, y, buttons);
        });
    object.registerMethod("SendWheel")
        .onInterface(interface)
        .withInputParamNames("dy")
        .implementedAs([weak](int32_t dy) {
            if (dy < -120 || dy > 120) throw sdbus::Error(kErrorInvalidArgument, "dy is -120..120");
            lock_vm(weak)->input()->wheel(dy);
        });
    object.registerMethod("SendMotion")
        .onInterface(interface)
        .withInputParamNames("dx", "dy", "buttons")
        .implementedAs([weak](int32_t dx, int32_t dy, uint32_t buttons) {
            if (dx < -32768 || dx > 32767 || dy < -32768 || dy > 32767 || buttons > 7)
                throw sdbus::Error(kErrorInvalidArgument, "dx and dy are -32768..32767, buttons 0..7");
            lock_vm(weak)->input()->motion(dx, dy, buttons);
        });
    object.registerMethod("RequestResize")
        .onInterface(interface)
        .withInputParamNames("scanout", "width", "height")
        .implementedAs([weak](uint32_t scanout, uint32_t width, uint32_t height) {
            auto vm = lock_vm(weak);
            check_scanout(*vm, scanout);
            if (width < link::kMinResizeSide || width > link::kMaxResizeSide || height < link::kMinResizeSide ||
                height > link::kMaxResizeSide)
                throw sdbus::Error(kErrorInvalidArgument, "width and height are 64..8192");
            vm->input()->resize(scanout, width, height);
        });

    object.registerSignal("SurfaceChanged")
        .onInterface(interface)
        .withParameters<uint32_t, uint32_t, uint32_t, uint32_t, uint64_t>("scanout", "width", "height", "stride",
                                                                          "serial");
    object.registerSignal("SurfaceDisabled").onInterface(interface).withParameters<uint32_t>("scanout");
    object.registerSignal("Damage").onInterface(interface).withParameters<uint32_t, std::vector<RectStruct>>(
        "scanout", "rects");
    object.registerSignal("CursorChanged")
        .onInterface(interface)
        .withParameters<uint32_t, bool, int32_t, int32_t, bool>("scanout", "visible", "x", "y", "shape_changed");
    object.registerSignal("ModesChanged")
        .onInterface(interface)
        .withParameters<uint32_t, uint32_t, uint32_t>("scanout", "preferred_width", "preferred_height");
}

}  // namespace

DbusService::DbusService() = default;

DbusVmObject::DbusVmObject(DbusService& service, std::string name) : service_(service), name_(std::move(name)) {}

Result<std::unique_ptr<DbusService>> DbusService::start(Bus bus) {
    std::unique_ptr<DbusService> service(new DbusService());
    service->registry_ = std::make_shared<Registry>();
    try {
        service->connection_ = bus == Bus::System ? sdbus::createSystemBusConnection(kBusName)
                                                  : sdbus::createSessionBusConnection(kBusName);
        service->manager_ = sdbus::createObject(*service->connection_, kManagerPath);
        std::weak_ptr<Registry> registry = service->registry_;
        service->manager_->registerMethod("ListDisplays")
            .onInterface(kManagerInterface)
            .withOutputParamNames("displays")
            .implementedAs([registry] {
                std::vector<sdbus::Struct<std::string, std::string, sdbus::ObjectPath>> displays;
                if (auto locked = registry.lock()) {
                    std::lock_guard lock(locked->mutex);
                    for (const auto& [name, entry] : locked->displays)
                        displays.emplace_back(name, entry.first, sdbus::ObjectPath(entry.second));
                }
                return displays;
            });
        service->manager_->registerSignal("DisplayAdded")
            .onInterface(kManagerInterface)
            .withParameters<std::string, sdbus::ObjectPath>("name", "path");
        service->manager_->registerSignal("DisplayRemoved")
            .onInterface(kManagerInterface)
            .withParameters<std::string, sdbus::ObjectPath>("name", "path");
        // org.freedesktop.DBus.ObjectManager, for viewers that prefer it.
        service->manager_->addObjectManager();
        service->manager_->finishRegistration();
        service->connection_->enterEventLoopAsync();
    } catch (const sdbus::Error& error) {
        return make_error(std::string("D-Bus (") + (bus == Bus::System ? "system" : "session") + " bus, name " +
                          kBusName + "): " + error.getMessage());
    }
    return service;
}

DbusService::~DbusService() {
    try {
        if (connection_) connection_->leaveEventLoop();
        manager_.reset();
    } catch (const sdbus::Error& error) {
        log_line("closing: " + error.getMessage());
    }
}

Result<std::unique_ptr<DbusVmObject>> DbusService::add(const std::shared_ptr<VmDisplay>& vm) {
    const std::string path = object_path(vm->name());
    std::unique_ptr<DbusVmObject> sink(new DbusVmObject(*this, vm->name()));
    try {
        sink->object_ = sdbus::createObject(*connection_, path);
        register_display_interface(*sink->object_, vm);
        sink->object_->finishRegistration();
        {
            std::lock_guard lock(registry_->mutex);
            registry_->displays[vm->name()] = {vm->uuid(), path};
        }
        sink->object_->emitInterfacesAddedSignal();
        manager_->emitSignal("DisplayAdded")
            .onInterface(kManagerInterface)
            .withArguments(vm->name(), sdbus::ObjectPath(path));
    } catch (const sdbus::Error& error) {
        sink->object_.reset();  // never announced: nothing to take back
        forget(vm->name());
        return make_error("D-Bus object " + path + ": " + error.getMessage());
    }
    return sink;
}

void DbusService::forget(const std::string& name) {
    std::lock_guard lock(registry_->mutex);
    registry_->displays.erase(name);
}

DbusVmObject::~DbusVmObject() {
    service_.forget(name_);
    if (!object_) return;
    const std::string path = object_->getObjectPath();
    try {
        object_->emitInterfacesRemovedSignal();
    } catch (const sdbus::Error& error) {
        log_line(name_ + ": " + error.getMessage());
    }
    // Unregisters (after a method of this object running on the D-Bus thread
    // returns), so that a viewer told of the removal finds the object gone.
    object_.reset();
    try {
        service_.manager_->emitSignal("DisplayRemoved")
            .onInterface(kManagerInterface)
            .withArguments(name_, sdbus::ObjectPath(path));
    } catch (const sdbus::Error& error) {
        log_line(name_ + ": " + error.getMessage());
    }
}

template <class Emit>
void DbusVmObject::emit(const char* what, Emit&& emit_signal) {
    try {
        emit_signal(*object_);
    } catch (const sdbus::Error& error) {
        log_line(name_ + ": " + what + ": " + error.getMessage());
    }
}

void DbusVmObject::surface_changed(uint32_t scanout, const std::shared_ptr<SurfaceMapping>& surface) {
    emit("SurfaceChanged", [&](sdbus::IObject& object) {
        if (surface)
            object.emitSignal("SurfaceChanged")
                .onInterface(kDisplayInterface)
                .withArguments(scanout, surface->width(), surface->height(), surface->stride(), surface->serial());
        else
            object.emitSignal("SurfaceDisabled").onInterface(kDisplayInterface).withArguments(scanout);
    });
}

void DbusVmObject::damaged(uint32_t scanout, const std::vector<link::Rect>& rects) {
    std::vector<RectStruct> structs;
    structs.reserve(rects.size());
    for (const auto& rect : rects) structs.emplace_back(rect.x, rect.y, rect.width, rect.height);
    emit("Damage", [&](sdbus::IObject& object) {
        object.emitSignal("Damage").onInterface(kDisplayInterface).withArguments(scanout, structs);
    });
}

void DbusVmObject::cursor_changed(uint32_t scanout, const CursorState& cursor, bool shape_changed) {
    emit("CursorChanged", [&](sdbus::IObject& object) {
        object.emitSignal("CursorChanged")
            .onInterface(kDisplayInterface)
            .withArguments(scanout, cursor.visible && cursor.image != nullptr, cursor.x, cursor.y, shape_changed);
    });
}

void DbusVmObject::modes_changed(uint32_t scanout, uint32_t width, uint32_t height) {
    emit("ModesChanged", [&](sdbus::IObject& object) {
        object.emitSignal("ModesChanged").onInterface(kDisplayInterface).withArguments(scanout, width, height);
    });
}

}  // namespace atl::display
