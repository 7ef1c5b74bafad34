// SPDX-License-Identifier: MIT
#include "core/cpu_budget.h"

#include "core/log.h"
#include "core/sys_file.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace pl {
namespace {

std::vector<int> affinity_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

}  // namespace

std::optional<int> parse_cgroup_cpu_max(std::string_view text) {
    const auto f = text_fields(text);
    if (f.size() != 2 || f[0] == "max") return std::nullopt;
    int64_t quota = 0, period = 0;
    if (!parse_field(f[0], quota) || !parse_field(f[1], period) || quota <= 0 || period <= 0) return std::nullopt;
    return static_cast<int>(std::max<int64_t>(1, quota / period));
}

std::optional<int> cgroup_cpu_limit() {
    auto cg = read_small_file("/proc/self/cgroup");
    if (!cg) return std::nullopt;
    // v1: cpu.cfs_quota_us / cpu.cfs_period_us ("-1" = no limit, which the parser refuses).
    if (auto path = cgroup_path(*cg, "cpu"))
        for (const std::string dir : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
            auto q = read_small_file(dir + *path + "/cpu.cfs_quota_us");
            auto p = read_small_file(dir + *path + "/cpu.cfs_period_us");
            if (q && p) return parse_cgroup_cpu_max(*q + " " + *p);
        }
    // v2: cpu.max.
    if (auto path = cgroup_path(*cg, ""))
        if (auto t = read_small_file("/sys/fs/cgroup" + *path + "/cpu.max")) return parse_cgroup_cpu_max(*t);
    return std::nullopt;
}

CpuTimes parse_proc_stat(std::string_view text, const std::vector<int>& cpus) {
    CpuTimes t;
    for (std::string_view line : text_lines(text)) {
        if (line.size() < 4 || line.substr(0, 3) != "cpu" || line[3] == ' ') continue;  // per-CPU lines only
        const auto f = text_fields(line);
        int cpu = -1;
        if (f.size() < 8 || !parse_field(f[0].substr(3), cpu)) continue;
        if (!cpus.empty() && std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) continue;
        uint64_t v[8] = {};
        bool ok = true;
        for (int k = 0; k < 8; ++k) ok = ok && parse_field(f[static_cast<size_t>(k) + 1], v[k]);
        if (!ok) continue;
        // user nice system idle iowait irq softirq steal
        t.busy += v[0] + v[1] + v[2] + v[5] + v[6];
        t.total += v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    }
    return t;
}

std::optional<uint64_t> parse_proc_pid_cputime(std::string_view text) {
    // "pid (comm) state ppid ..." : fields after the last ')' start at field 3; utime is field 14.
    const size_t close = text.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    const auto f = text_fields(text.substr(close + 1));
    if (f.size() < 13) return std::nullopt;
    uint64_t ut = 0, st = 0;
    if (!parse_field(f[11], ut) || !parse_field(f[12], st)) return std::nullopt;
    return ut + st;
}

int decide_threads(int base, int current, double others) {
    base = std::max(1, base);
    current = std::clamp(current, 1, base);
    const double free = static_cast<double>(base) - std::max(0.0, others);
    if (free < current - 0.4) return std::clamp(static_cast<int>(std::floor(free + 0.4)), 1, base);
    if (free >= current + 0.8) return std::clamp(static_cast<int>(std::floor(free + 0.2)), 1, base);
    return current;
}

ThreadGovernor::ThreadGovernor(int base, std::chrono::milliseconds interval)
    : base_(std::max(1, base)), interval_(interval), cpus_(affinity_cpus()), threads_(std::max(1, base)) {
    at_ = std::chrono::steady_clock::now();
    ok_ = sample(cpu_, self_);
}

bool ThreadGovernor::sample(CpuTimes& cpu, uint64_t& self) const {
    auto stat = read_small_file("/proc/stat");
    auto mine = read_small_file("/proc/self/stat");
    if (!stat || !mine) return false;
    cpu = parse_proc_stat(*stat, cpus_);
    auto s = parse_proc_pid_cputime(*mine);
    if (!s || cpu.total == 0) return false;
    self = *s;
    return true;
}

int ThreadGovernor::update() {
    if (!ok_) return threads();
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return threads();
    const auto now = std::chrono::steady_clock::now();
    if (now - at_ < interval_) return threads();
    CpuTimes cpu;
    uint64_t self = 0;
    if (!sample(cpu, self)) return threads();
    const uint64_t dtotal = cpu.total - cpu_.total, dbusy = cpu.busy - cpu_.busy;
    if (dtotal == 0 || cpu.total < cpu_.total || cpu.busy < cpu_.busy) return threads();
    // Our own threads may run outside the affinity set's lines only if the set changed; clamp.
    const uint64_t dself = std::min<uint64_t>(self - std::min(self, self_), dbusy);
    const double ncpu = static_cast<double>(cpus_.empty() ? base_ : static_cast<int>(cpus_.size()));
    const double others = static_cast<double>(dbusy - dself) / static_cast<double>(dtotal) * ncpu;
    // Other processes on CPUs beyond our quota do not take ours: free = min(base, cpus - others).
    const double spare = std::max(0.0, ncpu - static_cast<double>(base_));
    others_ = std::max(0.0, others - spare);
    cpu_ = cpu;
    self_ = self;
    at_ = now;
    const int cur = threads();
    const int next = decide_threads(base_, cur, others_);
    if (next != cur) {
        PL_LOG_INFO("threads: {} -> {} (other processes keep {:.1f} of {} cores busy; -t N fixes the count)", cur, next,
                    others, static_cast<int>(ncpu));
        threads_.store(next, std::memory_order_relaxed);
    }
    return next;
}

namespace {
std::atomic<ThreadGovernor*> g_governor{nullptr};
}

void install_thread_governor(int base) {
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    ThreadGovernor* old = g_governor.load();
    if (old && old->base() == base) return;
    // Leaked on purpose (a few hundred bytes, once per process): callers on other threads may
    // still hold the pointer.
    g_governor.store(new ThreadGovernor(base));
}

bool thread_governor_installed() { return g_governor.load() != nullptr; }

void adapt_threads() {
    ThreadGovernor* g = g_governor.load(std::memory_order_acquire);
    if (!g || omp_in_parallel()) return;
    const int t = g->update();
    if (omp_get_max_threads() != t) omp_set_num_threads(t);
}

}  // namespace pl
