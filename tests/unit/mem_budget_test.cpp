// SPDX-License-Identifier: MIT
// The memory a model may fill (core/mem_budget.h): /proc/meminfo and cgroup v2 memory.max parsing.
#include "core/mem_budget.h"

#include <gtest/gtest.h>

namespace pl {
namespace {

TEST(MemBudget, MeminfoAvailable) {
    const char* t =
        "MemTotal:       24641232 kB\n"
        "MemFree:         1234567 kB\n"
        "MemAvailable:   20000000 kB\n"
        "Buffers:          123456 kB\n";
    EXPECT_EQ(parse_meminfo_available(t), uint64_t{20000000} * 1024);
    EXPECT_EQ(parse_meminfo_available("MemTotal: 1 kB\n"), std::nullopt);  // an old kernel without the field
    EXPECT_EQ(parse_meminfo_available("MemAvailable: lots kB\n"), std::nullopt);
    EXPECT_EQ(parse_meminfo_available("MemAvailable: 12 MB\n"), std::nullopt);
    EXPECT_EQ(parse_meminfo_available(""), std::nullopt);
}

TEST(MemBudget, CgroupMemoryMax) {
    EXPECT_EQ(parse_cgroup_memory_max("max\n"), std::nullopt);
    EXPECT_EQ(parse_cgroup_memory_max("8589934592\n"), uint64_t{8} << 30);
    EXPECT_EQ(parse_cgroup_memory_max(""), std::nullopt);
    EXPECT_EQ(parse_cgroup_memory_max("12k"), std::nullopt);
}

TEST(MemBudget, ThisMachineHasSomeMemoryAvailable) {
    const auto a = available_memory_bytes();
    ASSERT_TRUE(a.has_value()) << "no /proc/meminfo here";
    EXPECT_GT(*a, uint64_t{16} << 20);
}

}  // namespace
}  // namespace pl
