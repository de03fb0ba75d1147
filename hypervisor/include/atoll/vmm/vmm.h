// atoll-vmm: runs one VM until the guest powers off or fails.
#pragma once

#include <atoll/result.h>
#include <atoll/vmm/config.h>

namespace atl::vmm {

// atoll-vmm's exit codes (documented in hypervisor/README.md).
enum ExitCode : int {
    kExitPowerOff = 0,       // the guest powered off
    kExitBadInput = 1,       // bad command line, configuration, kernel, disk...
    kExitHostError = 2,      // the host cannot run the VM (KVM unusable, out of memory)
    kExitTripleFault = 3,    // the guest triple-faulted (a reset the guest did not ask for)
    kExitInternalError = 4,  // KVM could not run the guest (internal error, failed entry)
};

struct RunOutcome {
    ExitCode code = kExitPowerOff;
    std::string message;  // for failures: what happened, with the vCPU's registers
    // As in the control protocol's "exit" event: poweroff, stopped, triple-fault,
    // internal-error, host-error, bad-input.
    std::string reason;
};

struct RunOptions {
    std::string kvm_device = "/dev/kvm";
    // Where to serve the control protocol (hypervisor/docs/control-protocol.md); empty: none.
    std::string control_socket;
    // Where to record how the VM ended ({"code", "reason", "message"} as JSON,
    // written atomically just before exit), for a manager that was not
    // watching when it happened; empty: nowhere.
    std::string exit_file;
};

// Writes RunOptions::exit_file's record (nothing when `path` is empty).
void record_exit(const std::string& path, const RunOutcome& outcome);

// Builds the VM, runs it (rebuilding it on guest reboot) and returns how it ended.
RunOutcome run_vm(const VmConfig& config, const RunOptions& options = {});

}  // namespace atl::vmm
