// SPDX-License-Identifier: MIT
#include "core/mem_budget.h"

#include "core/sys_file.h"

#include <algorithm>
#include <string>

namespace pl {

std::optional<uint64_t> parse_meminfo_available(std::string_view text) {
    for (std::string_view line : text_lines(text)) {
        const auto f = text_fields(line);
        if (f.empty() || f[0] != "MemAvailable:") continue;
        uint64_t v = 0;
        if (f.size() < 2 || f.size() > 3 || !parse_field(f[1], v)) return std::nullopt;
        if (f.size() == 2) return v;
        return f[2] == "kB" ? std::optional<uint64_t>(v * 1024) : std::nullopt;
    }
    return std::nullopt;
}

std::optional<uint64_t> parse_cgroup_memory_max(std::string_view text) {
    const auto f = text_fields(text);
    uint64_t v = 0;
    if (f.size() != 1 || !parse_field(f[0], v)) return std::nullopt;  // "max", empty or malformed
    return v;
}

std::optional<uint64_t> available_memory_bytes() {
    std::optional<uint64_t> avail;
    if (auto m = read_small_file("/proc/meminfo")) avail = parse_meminfo_available(*m);
    if (auto cg = read_small_file("/proc/self/cgroup")) {
        std::optional<std::string> limits[2];
        if (auto path = cgroup_path(*cg, "")) limits[0] = read_small_file("/sys/fs/cgroup" + *path + "/memory.max");
        if (auto path = cgroup_path(*cg, "memory"))
            limits[1] = read_small_file("/sys/fs/cgroup/memory" + *path + "/memory.limit_in_bytes");
        for (const auto& t : limits) {
            if (!t) continue;
            // v1 writes "no limit" as a page-rounded 2^63 - 1.
            if (auto lim = parse_cgroup_memory_max(*t); lim && *lim < (uint64_t{1} << 60))
                avail = avail ? std::min(*avail, *lim) : *lim;
        }
    }
    return avail;
}

}  // namespace pl
