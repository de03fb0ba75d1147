#include "state_file.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace atl::display {

std::string state_file_path(const std::string& directory, const std::string& vm_name) {
    // VM names are checked at hello: no '/', never "." or "..".
    return directory + "/" + vm_name + ".json";
}

Result<void> write_state_file(const std::string& directory, const VmDisplay& vm) {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) return make_error("state directory " + directory + ": " + error.message());
    nlohmann::json state{{"vm_name", vm.name()}, {"vm_uuid", vm.uuid()}, {"pid", getpid()}};
    if (auto address = vm.vnc_address())
        state["vnc"] = {{"host", address->host}, {"port", address->port}, {"tls", address->tls},
                        {"password", address->password}};
    else
        state["vnc"] = nullptr;
    const std::string path = state_file_path(directory, vm.name());
    const std::string temporary = path + ".tmp";
    {
        std::ofstream file(temporary, std::ios::trunc);
        file << state.dump(2) << '\n';
        if (!file) return make_error("state file " + temporary + ": cannot write");
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0)
        return make_error("state file " + path + ": " + strerror(errno));
    return {};
}

void remove_state_file(const std::string& directory, const std::string& vm_name) {
    unlink(state_file_path(directory, vm_name).c_str());
}

}  // namespace atl::display
