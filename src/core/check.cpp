// SPDX-License-Identifier: MIT
#include "core/check.h"

#include <cstdio>

namespace pl::detail {

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
    log_write(LogLevel::Error, fmt::format("{}:{}: check failed: {}: {}", file, line, cond, msg));
    std::fflush(stderr);
    std::abort();
}

}  // namespace pl::detail
