// SPDX-License-Identifier: MIT
// PL_CHECK: always-on invariant check for programmer errors (never for user input, which gets a
// Status). Logs file:line and the formatted reason, flushes, aborts. PL_DCHECK: debug builds only.
#pragma once

#include "core/log.h"

#include <cstdlib>

namespace pl::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);
}

#define PL_CHECK(cond, ...)                                                                   \
    do {                                                                                      \
        if (!(cond)) [[unlikely]]                                                             \
            ::pl::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
    } while (0)

#ifdef NDEBUG
#define PL_DCHECK(cond, ...) \
    do {                     \
    } while (0)
#else
#define PL_DCHECK(cond, ...) PL_CHECK(cond, __VA_ARGS__)
#endif
