// atollctl: the command-line client of atolld. It speaks only D-Bus.
#pragma once

namespace atl::dom0 {

// atollctl's exit codes (documented in dom0/README.md).
enum CtlExit : int {
    kCtlOk = 0,
    kCtlFailed = 1,           // atolld could not do it (org.atoll.Atoll1.Error.Failed, or another error)
    kCtlUsage = 2,            // bad command line
    kCtlNotFound = 3,         // no such VM
    kCtlInvalidState = 4,     // not possible in the VM's state (or it is busy)
    kCtlInvalidArgument = 5,  // bad configuration, bad name, path not permitted, name taken
    kCtlUnreachable = 6,      // no bus, or atolld not running on it
    kCtlAccessDenied = 7,     // the bus policy refused the call
    kCtlTimeout = 8,          // the guest (or atolld) did not finish in time
};

int atollctl_main(int argc, char** argv);

}  // namespace atl::dom0
