// SPDX-License-Identifier: MIT
// The default thread count (core/cpu_budget.h): parsers of /proc and cgroup files, the decision
// rule with its hysteresis, and the governor against a real busy process.
#include "core/cpu_budget.h"
#include "core/sys_file.h"

#include <gtest/gtest.h>

#include <csignal>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace pl {
namespace {

TEST(CpuBudget, CgroupCpuMax) {
    EXPECT_EQ(parse_cgroup_cpu_max("max 100000\n"), std::nullopt);
    EXPECT_EQ(parse_cgroup_cpu_max("200000 100000\n"), 2);
    EXPECT_EQ(parse_cgroup_cpu_max("250000 100000"), 2);  // 2.5 cores: 2 full threads
    EXPECT_EQ(parse_cgroup_cpu_max("50000 100000"), 1);   // under one core: still one thread
    EXPECT_EQ(parse_cgroup_cpu_max("1600000 100000"), 16);
    EXPECT_EQ(parse_cgroup_cpu_max(""), std::nullopt);
    EXPECT_EQ(parse_cgroup_cpu_max("abc 100000"), std::nullopt);
    EXPECT_EQ(parse_cgroup_cpu_max("100000 0"), std::nullopt);
    EXPECT_EQ(parse_cgroup_cpu_max("-1 100000"), std::nullopt);
    EXPECT_EQ(parse_cgroup_cpu_max("100000"), std::nullopt);
}

TEST(CpuBudget, CgroupPathOfAController) {
    const char* hybrid =
        "9:name=systemd:/\n"
        "4:memory:/process_api/1fd7\n"
        "2:cpu,cpuacct:/job\n"
        "0::/unified/x\n";
    EXPECT_EQ(cgroup_path(hybrid, "memory"), "/process_api/1fd7");
    EXPECT_EQ(cgroup_path(hybrid, "cpu"), "/job");
    EXPECT_EQ(cgroup_path(hybrid, "cpuacct"), "/job");
    EXPECT_EQ(cgroup_path(hybrid, ""), "/unified/x");
    EXPECT_EQ(cgroup_path(hybrid, "pids"), std::nullopt);
    EXPECT_EQ(cgroup_path(hybrid, "cpus"), std::nullopt);  // whole names only
    EXPECT_EQ(cgroup_path("0::/\n", "memory"), std::nullopt);
    EXPECT_EQ(cgroup_path("0::/\n", ""), "/");
    EXPECT_EQ(cgroup_path("garbage\n", ""), std::nullopt);
}

TEST(CpuBudget, ProcStatSumsTheChosenCpus) {
    const char* stat =
        "cpu  30 0 10 500 5 1 1 2 0 0\n"
        "cpu0 10 0 5 250 2 1 0 1 0 0\n"
        "cpu1 20 0 5 250 3 0 1 1 0 0\n"
        "intr 12345 0 0\n"
        "ctxt 999\n";
    const CpuTimes both = parse_proc_stat(stat, {0, 1});
    EXPECT_EQ(both.busy, 10u + 5 + 1 + 20 + 5 + 1);  // user + nice + system + irq + softirq
    EXPECT_EQ(both.total, 269u + 280);               // the eight first fields
    const CpuTimes one = parse_proc_stat(stat, {1});
    EXPECT_EQ(one.busy, 26u);
    EXPECT_EQ(one.total, 280u);
    EXPECT_EQ(parse_proc_stat(stat, {}).busy, both.busy);  // empty set: every CPU line
    EXPECT_EQ(parse_proc_stat("garbage\ncpu7 x y\n", {7}).total, 0u);
}

TEST(CpuBudget, ProcPidStatCpuTime) {
    // utime (field 14) = 123, stime (field 15) = 45; the command name has spaces and ')'.
    const char* s = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 3 0 1000 2000 300";
    EXPECT_EQ(parse_proc_pid_cputime(s), 168u);
    EXPECT_EQ(parse_proc_pid_cputime("4242 (x) S 1 2"), std::nullopt);
    EXPECT_EQ(parse_proc_pid_cputime("no paren here"), std::nullopt);
}

TEST(CpuBudget, DecideThreadsDropsFastAndGrowsBackSlowly) {
    // 2 cores, one busy process beside us: drop to 1; stay there while it runs.
    EXPECT_EQ(decide_threads(2, 2, 1.0), 1);
    EXPECT_EQ(decide_threads(2, 1, 1.0), 1);
    EXPECT_EQ(decide_threads(2, 1, 0.5), 1);  // half a core free is not enough to grow
    EXPECT_EQ(decide_threads(2, 1, 0.1), 2);  // it went away
    EXPECT_EQ(decide_threads(2, 2, 0.3), 2);  // light load: keep both
    EXPECT_EQ(decide_threads(2, 2, 0.5), 1);
    // Never below 1 or above base, whatever the measurement.
    EXPECT_EQ(decide_threads(2, 2, 5.0), 1);
    EXPECT_EQ(decide_threads(2, 2, -1.0), 2);
    EXPECT_EQ(decide_threads(1, 1, 0.9), 1);
    EXPECT_EQ(decide_threads(16, 16, 3.2), 13);
    EXPECT_EQ(decide_threads(16, 13, 3.0), 13);  // hysteresis: 13 free is not 0.8 above 13
    EXPECT_EQ(decide_threads(16, 13, 1.0), 15);
    EXPECT_EQ(decide_threads(4, 9, 0.0), 4);  // a current count above base is clamped first
}

TEST(CpuBudget, GovernorDropsWhileAnotherProcessSpins) {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores < 2) GTEST_SKIP() << "needs at least 2 cores";
    const int base = static_cast<int>(cores);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // a busy process that is not us (killed below)
        volatile uint64_t x = 0;
        for (;;) x = x + 1;
    }
    ThreadGovernor g(base, std::chrono::milliseconds(300));
    EXPECT_EQ(g.update(), base);  // not due yet: no change
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    const int t = g.update();
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    EXPECT_LT(t, base) << "others measured " << g.last_others();
    EXPECT_GE(g.last_others(), 0.6);
    EXPECT_GE(t, 1);
}

}  // namespace
}  // namespace pl
