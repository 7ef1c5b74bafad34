// SPDX-License-Identifier: MIT
// How many threads to compute with when the user did not say (-t 0, the default).
//
// OpenMP barriers make a parallel region as slow as its slowest thread. When other processes keep
// some of our cores busy, one of our threads waits for a time slice at every barrier (hundreds per
// token), and libgomp's spin-waiting threads take CPU from the very thread they wait for. Measured
// on the 2-core VM with one busy process beside it (docs/performance.md): LLaMA-7B q3.5 decoded at
// 0.27 tok/s with 2 threads, 3.99 with 1. So the default is the cores we may run on (affinity and
// OMP_NUM_THREADS, capped by a cgroup CPU quota) minus the cores other processes keep busy,
// re-measured about once a second while a model runs, and applied between forward passes.
// An explicit -t is never changed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

namespace pl {

// cgroup v2 `cpu.max` ("max 100000" or "QUOTA PERIOD"): the cores the quota allows, rounded down
// (at least 1), or nullopt when unlimited or unreadable.
std::optional<int> parse_cgroup_cpu_max(std::string_view text);
// The quota of this process's cgroup (v2 cpu.max, else v1 cpu.cfs_quota_us / cpu.cfs_period_us).
std::optional<int> cgroup_cpu_limit();

// Busy and total jiffies summed over the given CPUs' lines of /proc/stat text ("cpuN user nice
// system idle iowait irq softirq steal ..."); busy = user + nice + system + irq + softirq.
struct CpuTimes {
    uint64_t busy = 0;
    uint64_t total = 0;
};
CpuTimes parse_proc_stat(std::string_view text, const std::vector<int>& cpus);
// utime + stime (jiffies) from /proc/<pid>/stat text (the command name may contain spaces).
std::optional<uint64_t> parse_proc_pid_cputime(std::string_view text);

// The thread count after a measurement: `others` = cores kept busy by other processes over the
// last interval, `base` = the most we may use, `current` = what we use now. Drops as soon as the
// free cores fall below the threads by 0.4 of a core, grows back only when 0.8 of a core more is
// free (hysteresis, so a flickering load does not resize the team every second).
int decide_threads(int base, int current, double others);

class ThreadGovernor {
public:
    // base: the most threads to use (>= 1). Takes the first sample now.
    explicit ThreadGovernor(int base, std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
    // Re-measures when `interval` has passed since the last sample (cheap otherwise; any thread,
    // concurrent callers skip); returns the thread count to use.
    int update();
    int threads() const { return threads_.load(std::memory_order_relaxed); }
    int base() const { return base_; }
    // Cores other processes kept busy over the last interval (-1 before the first measurement).
    double last_others() const { return others_; }

private:
    bool sample(CpuTimes& cpu, uint64_t& self) const;

    int base_;
    std::chrono::milliseconds interval_;
    std::vector<int> cpus_;  // this process's affinity set
    std::atomic<int> threads_;
    std::mutex mu_;
    std::chrono::steady_clock::time_point at_;
    CpuTimes cpu_{};
    uint64_t self_ = 0;
    double others_ = -1.0;  // unknown until the first measurement
    bool ok_ = false;  // /proc was readable at the first sample
};

// The process-wide governor that adapt_threads() consults; installed by the CLI for -t 0 in a
// single process (not under MPI, where the other ranks on a node are our own job).
void install_thread_governor(int base);
bool thread_governor_installed();
// Called between forward passes by the thread that runs them (omp_set_num_threads acts on the
// calling thread): re-measures when due and sets that thread's team size. No-op without a governor.
void adapt_threads();

}  // namespace pl
