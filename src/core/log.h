// SPDX-License-Identifier: MIT
// One logging entry point. Lines look like "[I 12.345s] message" (with " r1/4" under MPI).
// Verbosity comes from PARALLAMA_LOG=debug|info|warn|error or set_log_level(). Library code never
// prints to stdout; logs go to stderr. Kernels never log.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace pl {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
// Set by the MPI layer so lines carry "r<rank>/<size>".
void set_log_rank(int rank, int size);
void log_write(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
    if (level < log_level()) return;
    log_write(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace pl

#define PL_LOG_DEBUG(...) ::pl::log(::pl::LogLevel::Debug, __VA_ARGS__)
#define PL_LOG_INFO(...) ::pl::log(::pl::LogLevel::Info, __VA_ARGS__)
#define PL_LOG_WARN(...) ::pl::log(::pl::LogLevel::Warn, __VA_ARGS__)
#define PL_LOG_ERROR(...) ::pl::log(::pl::LogLevel::Error, __VA_ARGS__)
