// SPDX-License-Identifier: MIT
// Memory this process can fill without evicting what it needs: for the warning when a model's
// weights cannot all stay in memory (then every token re-reads evicted pages from disk).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pl {

// MemAvailable from /proc/meminfo text ("MemAvailable:   123456 kB"), in bytes.
std::optional<uint64_t> parse_meminfo_available(std::string_view text);
// cgroup memory.max (v2: "max" or bytes) or memory.limit_in_bytes (v1) text, in bytes; nullopt
// when unlimited ("max") or malformed.
std::optional<uint64_t> parse_cgroup_memory_max(std::string_view text);
// The smaller of MemAvailable and this process's cgroup memory limit (v2 memory.max, v1
// memory.limit_in_bytes); nullopt when neither is
// readable. MemAvailable counts reclaimable page cache, so a model file already cached counts as
// available: the check only fires when the weights truly do not fit.
std::optional<uint64_t> available_memory_bytes();

}  // namespace pl
