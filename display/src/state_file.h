// Each VM's VNC address, for atolld and atollctl: one small JSON file per VM
// in the state directory (default $XDG_RUNTIME_DIR/atoll/display, or
// /run/atoll/display as root), present while the VM's display is served.
#pragma once

#include "vm_display.h"

#include <atoll/result.h>

#include <string>

namespace atl::display {

std::string state_file_path(const std::string& directory, const std::string& vm_name);
// Written to a temporary file and renamed, so readers never see half a file.
Result<void> write_state_file(const std::string& directory, const VmDisplay& vm);
void remove_state_file(const std::string& directory, const std::string& vm_name);

}  // namespace atl::display
