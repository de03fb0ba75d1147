// The local-viewer API of atoll-display on D-Bus (display/README.md, "The
// D-Bus API"; introspection in display/dbus/org.atoll.Display1.xml): names a
// viewer such as the Qt console needs to find a VM's display.
#pragma once

#include <string>
#include <string_view>

namespace atl::display::dbus {

inline constexpr char kBusName[] = "org.atoll.Display1";
inline constexpr char kManagerPath[] = "/org/atoll/Display1";
inline constexpr char kManagerInterface[] = "org.atoll.Display1.Manager";
inline constexpr char kDisplayInterface[] = "org.atoll.Display1.Display";
inline constexpr char kErrorNoSurface[] = "org.atoll.Display1.Error.NoSurface";
inline constexpr char kErrorInvalidArgument[] = "org.atoll.Display1.Error.InvalidArgument";
inline constexpr char kErrorGone[] = "org.atoll.Display1.Error.Gone";

// "/org/atoll/Display1/vm/" + the VM name with every byte outside
// [A-Za-z0-9] written as _XX (two lower-case hex digits): "web-1" becomes
// "/org/atoll/Display1/vm/web_2d1".
inline std::string object_path(std::string_view vm_name) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string path = std::string(kManagerPath) + "/vm/";
    for (char c : vm_name) {
        const auto byte = static_cast<unsigned char>(c);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            path += c;
        } else {
            path += '_';
            path += kHex[byte >> 4];
            path += kHex[byte & 15];
        }
    }
    return path;
}

}  // namespace atl::display::dbus
