// SPDX-License-Identifier: MIT
#include "core/mem_budget.h"

#include "core/sys_file.h"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <string>

namespace pl {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<uint64_t> parse_meminfo_available(std::string_view text) {
    constexpr std::string_view key = "MemAvailable:";
    size_t at = 0;
    while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (line.substr(0, key.size()) != key) continue;
        line = trim(line.substr(key.size()));
        uint64_t v = 0;
        const auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
        if (ec != std::errc()) return std::nullopt;
        const std::string_view unit = trim(line.substr(static_cast<size_t>(p - line.data())));
        if (unit == "kB") return v * 1024;
        if (unit.empty()) return v;
        return std::nullopt;
    }
    return std::nullopt;
}

std::optional<uint64_t> parse_cgroup_memory_max(std::string_view text) {
    text = trim(text);
    if (text.empty() || text == "max") return std::nullopt;
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
    return v;
}

std::optional<uint64_t> available_memory_bytes() {
    std::optional<uint64_t> avail;
    if (auto m = read_small_file("/proc/meminfo")) avail = parse_meminfo_available(*m);
    if (auto cg = read_small_file("/proc/self/cgroup")) {
        std::istringstream lines(*cg);
        for (std::string line; std::getline(lines, line);) {
            std::optional<std::string> t;
            if (line.rfind("0::", 0) == 0) {  // v2: "0::/path"
                t = read_small_file("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
            } else if (const size_t a = line.find(":memory:"); a != std::string::npos) {  // v1: "N:memory:/path"
                t = read_small_file("/sys/fs/cgroup/memory" + line.substr(a + 8) + "/memory.limit_in_bytes");
            }
            if (!t) continue;
            // v1 writes "no limit" as a page-rounded 2^63 - 1.
            if (auto lim = parse_cgroup_memory_max(*t); lim && *lim < (uint64_t{1} << 60))
                avail = avail ? std::min(*avail, *lim) : *lim;
        }
    }
    return avail;
}

}  // namespace pl
