// SPDX-License-Identifier: MIT
// Small text files of /proc and /sys (cpu_budget, mem_budget).
#pragma once

#include <optional>
#include <string>

namespace pl {

// The whole text of a small file; nullopt when it cannot be opened.
std::optional<std::string> read_small_file(const std::string& path);

}  // namespace pl
