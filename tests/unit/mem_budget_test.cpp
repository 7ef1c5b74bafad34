// SPDX-License-Identifier: MIT
// The memory a model may fill (core/mem_budget.h): /proc/meminfo and cgroup v2 memory.max parsing;
// huge-page buffers and the --mmap auto rule (core/huge_pages.h, model/llama.h).
#include "core/huge_pages.h"
#include "core/mem_budget.h"
#include "model/llama.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>

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

TEST(HugePages, ThpModeIsTheBracketedWord) {
    EXPECT_EQ(parse_thp_mode("always [madvise] never\n"), "madvise");
    EXPECT_EQ(parse_thp_mode("[always] madvise never\n"), "always");
    EXPECT_EQ(parse_thp_mode("always madvise [never]\n"), "never");
    EXPECT_EQ(parse_thp_mode("always madvise never\n"), std::nullopt);
    EXPECT_EQ(parse_thp_mode("[sometimes]"), std::nullopt);
    EXPECT_EQ(parse_thp_mode("[madvise"), std::nullopt);
}

TEST(HugePages, BufferIsAlignedWritableAndMovable) {
    auto b = HugeBuffer::allocate((size_t{3} << 20) + 5);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % (size_t{2} << 20), 0u);
    b->data()[0] = 7;
    b->data()[b->size() - 1] = 9;
    HugeBuffer moved = std::move(*b);
    EXPECT_EQ(b->data(), nullptr);
    EXPECT_EQ(moved.data()[0], 7);
    EXPECT_EQ(moved.data()[moved.size() - 1], 9);
    auto empty = HugeBuffer::allocate(0);
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(empty->data(), nullptr);
    EXPECT_FALSE(HugeBuffer::allocate(SIZE_MAX - 1).has_value());
}

TEST(HugePages, LocalProcessCountFromMpiEnvironment) {
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    unsetenv("MPI_LOCALNRANKS");
    EXPECT_EQ(local_process_count(), 1);
    setenv("MPI_LOCALNRANKS", "3", 1);
    EXPECT_EQ(local_process_count(), 3);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    EXPECT_EQ(local_process_count(), 4);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "lots", 1);
    EXPECT_EQ(local_process_count(), 3);  // malformed: the next variable
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    unsetenv("MPI_LOCALNRANKS");
}

TEST(HugePages, AutoCopiesWhenAllLocalCopiesFitInHalfTheMemory) {
    const uint64_t gib = uint64_t{1} << 30;
    EXPECT_TRUE(should_copy_weights(MmapMode::Auto, 3 * gib, 20 * gib, 1, true));
    EXPECT_FALSE(should_copy_weights(MmapMode::Auto, 11 * gib, 20 * gib, 1, true));  // over half
    EXPECT_TRUE(should_copy_weights(MmapMode::Auto, 10 * gib, 20 * gib, 1, true));   // exactly half
    EXPECT_FALSE(should_copy_weights(MmapMode::Auto, 3 * gib, 20 * gib, 4, true));   // 4 ranks, 12 GiB
    EXPECT_FALSE(should_copy_weights(MmapMode::Auto, 3 * gib, 20 * gib, 1, false));  // no huge pages
    EXPECT_FALSE(should_copy_weights(MmapMode::Auto, 3 * gib, std::nullopt, 1, true));
    EXPECT_FALSE(should_copy_weights(MmapMode::Auto, 0, 20 * gib, 1, true));
    EXPECT_TRUE(should_copy_weights(MmapMode::Off, 30 * gib, 20 * gib, 4, false));  // asked for
    EXPECT_FALSE(should_copy_weights(MmapMode::On, 1, 20 * gib, 1, true));
    EXPECT_EQ(parse_mmap_mode("off"), MmapMode::Off);
    EXPECT_EQ(parse_mmap_mode("on"), MmapMode::On);
    EXPECT_EQ(parse_mmap_mode("auto"), MmapMode::Auto);
    EXPECT_EQ(parse_mmap_mode("yes"), std::nullopt);
    EXPECT_STREQ(mmap_mode_name(MmapMode::Off), "off");
}

TEST(MemBudget, ThisMachineHasSomeMemoryAvailable) {
    const auto a = available_memory_bytes();
    ASSERT_TRUE(a.has_value()) << "no /proc/meminfo here";
    EXPECT_GT(*a, uint64_t{16} << 20);
}

}  // namespace
}  // namespace pl
