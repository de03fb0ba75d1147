// A small result type for errors at module boundaries (std::expected is C++23).
// The error is a message by default; a component whose callers branch on the
// kind of failure (dom0's D-Bus errors) passes an error type of its own.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace atl {

struct Error {
    std::string message;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

template <class T, class E = Error>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const E& error() const { return std::get<1>(state_); }

private:
    std::variant<T, E> state_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
public:
    Result() = default;
    Result(E error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const E& error() const { return error_; }

private:
    E error_;
    bool failed_ = false;
};

// Propagates an error to the caller: `ATOLL_TRY(expr);`
#define ATOLL_TRY(expr)                                   \
    do {                                                  \
        auto atoll_try_result_ = (expr);                  \
        if (!atoll_try_result_) return atoll_try_result_.error(); \
    } while (0)

}  // namespace atl
