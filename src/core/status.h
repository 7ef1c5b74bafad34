// SPDX-License-Identifier: MIT
// Expected failures (bad files, bad options, unsupported models) travel as pl::Status or
// pl::Result<T>, a small std::expected-shaped type. Messages name the file, field and numbers.
// Invariant violations use PL_CHECK (core/check.h) instead; user input must never reach one.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pl {

class [[nodiscard]] Status {
public:
    Status() = default;
    static Status ok() { return Status(); }
    static Status error(std::string message) {
        Status s;
        s.message_ = std::move(message);
        s.failed_ = true;
        return s;
    }
    bool is_ok() const { return !failed_; }
    explicit operator bool() const { return !failed_; }
    const std::string& message() const { return message_; }

    // Prepends context: "reading model.gguf: " + message.
    Status with_context(std::string_view ctx) const {
        if (!failed_) return *this;
        return error(fmt::format("{}: {}", ctx, message_));
    }

private:
    std::string message_;
    bool failed_ = false;
};

// A formatted error: return pl::err("tensor '{}': {} bytes past end of file", name, n);
template <typename... Args>
Status err(fmt::format_string<Args...> f, Args&&... args) {
    return Status::error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}              // NOLINT: implicit by design
    Result(Status status) : v_(std::move(status)) {}       // NOLINT: must be an error
    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    Status status() const { return has_value() ? Status::ok() : std::get<1>(v_); }
    const std::string& error_message() const {
        static const std::string empty;
        return has_value() ? empty : std::get<1>(v_).message();
    }

private:
    std::variant<T, Status> v_;
};

}  // namespace pl

#define PL_CONCAT_INNER_(a, b) a##b
#define PL_CONCAT_(a, b) PL_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) failed.
#define PL_TRY(expr)                                    \
    do {                                                \
        ::pl::Status pl_try_status_ = (expr);           \
        if (!pl_try_status_.is_ok()) return pl_try_status_; \
    } while (0)

// `PL_ASSIGN_OR_RETURN(auto x, make_x())` declares x from a Result or returns its Status.
#define PL_ASSIGN_OR_RETURN(lhs, rexpr) PL_ASSIGN_OR_RETURN_IMPL_(PL_CONCAT_(pl_res_, __LINE__), lhs, rexpr)
#define PL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
    auto tmp = (rexpr);                            \
    if (!tmp.has_value()) return tmp.status();     \
    lhs = std::move(tmp).value()
