// Errors of atolld's operations: a kind that the D-Bus layer turns into a named
// error (org.atoll.Atoll1.Error.<Kind>) and a message for a person.
#pragma once

#include <atoll/result.h>

#include <string>
#include <utility>

namespace atl::dom0 {

enum class ErrorKind {
    InvalidArgument,  // the request itself is wrong: bad config, bad name, path outside storage
    NotFound,         // no such VM
    Exists,           // a VM with that name or UUID is already defined
    InvalidState,     // not possible in the VM's current state (or another operation is running)
    Timeout,          // the guest did not do what was asked in time
    Failed,           // the host could not do it (atoll-vmm failed, I/O error, database error)
};

// The last component of the D-Bus error name: "InvalidArgument", "NotFound", ...
const char* error_kind_name(ErrorKind kind);

struct Fault {
    ErrorKind kind = ErrorKind::Failed;
    std::string message;
};

inline Fault fault(ErrorKind kind, std::string message) { return Fault{kind, std::move(message)}; }

// atl::Result with a kind of error: Outcome<T> holds a T or a Fault.
template <class T>
using Outcome = Result<T, Fault>;

// Propagates a Fault to the caller (ATOLL_TRY works for any error type).
#define ATOLL_DOM0_TRY(expr) ATOLL_TRY(expr)

}  // namespace atl::dom0
