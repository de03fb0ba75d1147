// Errors of atolld's operations: a kind that the D-Bus layer turns into a named
// error (org.atoll.Atoll1.Error.<Kind>) and a message for a person.
#pragma once

#include <string>
#include <utility>
#include <variant>

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
class [[nodiscard]] Outcome {
public:
    Outcome(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Outcome(Fault error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Fault& error() const { return std::get<1>(state_); }

private:
    std::variant<T, Fault> state_;
};

template <>
class [[nodiscard]] Outcome<void> {
public:
    Outcome() = default;
    Outcome(Fault error) : error_(std::move(error)), failed_(true) {}
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Fault& error() const { return error_; }

private:
    Fault error_;
    bool failed_ = false;
};

// Propagates a Fault to the caller: `ATOLL_DOM0_TRY(expr);`
#define ATOLL_DOM0_TRY(expr)                                      \
    do {                                                          \
        auto atoll_dom0_try_ = (expr);                            \
        if (!atoll_dom0_try_) return atoll_dom0_try_.error();     \
    } while (0)

}  // namespace atl::dom0
