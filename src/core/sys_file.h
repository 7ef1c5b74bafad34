// SPDX-License-Identifier: MIT
// Small text files of /proc and /sys, and the pieces their parsers share (cpu_budget, mem_budget).
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pl {

// The whole text of a small file; nullopt when it cannot be opened.
std::optional<std::string> read_small_file(const std::string& path);

// The lines of a text (without their '\n').
std::vector<std::string_view> text_lines(std::string_view text);
// Whitespace-separated fields (spaces, tabs, newlines).
std::vector<std::string_view> text_fields(std::string_view text);

// A whole field as a number (false on anything else, trailing characters included).
template <typename T>
bool parse_field(std::string_view s, T& v) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

// This process's cgroup path for `controller` from /proc/self/cgroup text ("ID:CONTROLLERS:PATH"
// lines): the v1 hierarchy whose comma-separated list names the controller, or, for controller
// "", the v2 unified hierarchy ("0::PATH"). nullopt when there is none.
std::optional<std::string> cgroup_path(std::string_view proc_self_cgroup, std::string_view controller);

}  // namespace pl
