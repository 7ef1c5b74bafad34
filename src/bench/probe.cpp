// SPDX-License-Identifier: MIT
#include "bench/probe.h"

#include "bench/probe_kernels.h"
#include "core/cpu_budget.h"
#include "core/cpu_features.h"
#include "core/log.h"
#include "kernels/cpu/kernels.h"

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

namespace pl::bench {
namespace {

// Keeps results of the probe loops alive (so the compiler cannot drop them).
volatile uint64_t g_sink_u64 = 0;
volatile float g_sink_f32 = 0;

uint64_t read_scalar(const void* p, size_t n) {
    const auto* w = static_cast<const uint64_t*>(p);
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n / 8; i += 4) {
        a0 ^= w[i];
        a1 ^= w[i + 1];
        a2 ^= w[i + 2];
        a3 ^= w[i + 3];
    }
    return a0 | a1 | a2 | a3;
}

float fma_scalar(int64_t iters) {
    float acc[8];
    for (int c = 0; c < 8; ++c) acc[c] = 0.001f * static_cast<float>(c);
    for (int64_t i = 0; i < iters; ++i)
        for (float& a : acc) a = a * 0.999999f + 1e-7f;
    float s = 0;
    for (float a : acc) s += a;
    return s;
}

float dot_scalar(int64_t iters) {
    int32_t acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int64_t i = 0; i < iters; ++i)
        for (int32_t& a : acc) a += static_cast<int8_t>(a) * -2;
    int64_t s = 0;
    for (int32_t a : acc) s += a;
    return static_cast<float>(s);
}

// Cache size from /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size} (what lscpu shows;
// sysconf can be wrong under virtualisation), else sysconf, else 0.
int64_t sys_cache(int name, const char* level_type) {
    for (int i = 0; i < 8; ++i) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::ifstream lf(dir + "level"), tf(dir + "type"), sf(dir + "size");
        std::string level, type, size;
        if (!(lf >> level) || !(tf >> type) || !(sf >> size)) continue;
        if (level + type != level_type) continue;
        int64_t n = std::atoll(size.c_str());
        if (size.back() == 'K') n <<= 10;
        if (size.back() == 'M') n <<= 20;
        return n;
    }
    const long v = sysconf(name);
    return v > 0 ? v : 0;
}

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

}  // namespace

ReadMeter::ReadMeter(uint64_t bytes) {
    bytes_ = std::max<uint64_t>(1u << 21, bytes / (1u << 21) * (1u << 21));
    buf_ = static_cast<uint8_t*>(std::aligned_alloc(1u << 21, bytes_));
    if (!buf_) return;
    madvise(buf_, bytes_, MADV_HUGEPAGE);
    uint8_t* p = buf_;
    const int64_t pages = static_cast<int64_t>(bytes_ >> 12);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < pages; ++i)
        for (int j = 0; j < 4096; j += 64) p[(i << 12) + j] = static_cast<uint8_t>(i * 31 + j);
}

ReadMeter::~ReadMeter() { std::free(buf_); }

double ReadMeter::measure_span(int threads, uint64_t offset, uint64_t bytes) {
    const ProbeKernels pk = probe_kernels_for(cpu_kernels().isa);
    offset = std::min(offset, bytes_) / 256 * 256;
    bytes = std::min(bytes, bytes_ - offset) / 256 * 256;
    if (bytes == 0) return 0.0;
    const uint8_t* p = buf_ + offset;
    uint64_t acc = 0;
    const double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(^ : acc)
    {
        const int nt = omp_get_num_threads(), it = omp_get_thread_num();
        const uint64_t chunk = bytes / static_cast<uint64_t>(nt) / 256 * 256;
        const uint64_t len = it == nt - 1 ? bytes - chunk * static_cast<uint64_t>(it) : chunk;
        acc ^= pk.read(p + chunk * static_cast<uint64_t>(it), len);
    }
    const double dt = now_s() - t0;
    g_sink_u64 = g_sink_u64 + acc;
    return static_cast<double>(bytes) / dt * 1e-9;
}

std::vector<double> ReadMeter::measure(int threads, int runs) {
    std::vector<double> gbps;
    for (int r = 0; r < runs; ++r) gbps.push_back(measure_span(threads, 0, bytes_));
    return gbps;
}

double load_average() {
    std::ifstream f("/proc/loadavg");
    double l = -1;
    return (f >> l) ? l : -1.0;
}

ProbeKernels probe_kernels_for(Isa isa) {
    ProbeKernels k;
    k.read = read_scalar;
    k.fma_f32 = fma_scalar;
    k.fma_flops_per_iter = 8 * 2;
    k.dot_i8 = dot_scalar;
    k.dot_ops_per_iter = 8 * 2;
    k.dot_instr = "scalar";
    if (isa >= Isa::Avx2) install_probe_avx2(k);
    if (isa >= Isa::Avx512) install_probe_avx512(k);
    k.isa = isa;
    return k;
}

double MachineInfo::bw_gbps(int threads) const {
    for (const auto& b : bandwidth)
        if (b.threads == threads) return b.best_gbps;
    return 0;
}

double MachineInfo::peak_gops(int threads, bool int8) const {
    for (const auto& p : peak)
        if (p.threads == threads) return int8 ? p.int8_gops : p.fp32_gflops;
    return 0;
}

Result<MachineInfo> probe_machine(const ProbeOptions& o, const std::function<void(const std::string&)>& log) {
    const CpuFeatures& f = cpu_features();
    MachineInfo m;
    m.vendor = f.vendor;
    m.brand = f.brand;
    m.features = f.to_string();
    const CpuKernels& kern = cpu_kernels();
    m.isa = isa_name(kern.isa);
    const ProbeKernels pk = probe_kernels_for(kern.isa);
    m.dot_instr = pk.dot_instr;
    m.cores = omp_get_num_procs();
    m.l1d_bytes = sys_cache(_SC_LEVEL1_DCACHE_SIZE, "1Data");
    m.l2_bytes = sys_cache(_SC_LEVEL2_CACHE_SIZE, "2Unified");
    m.l3_bytes = sys_cache(_SC_LEVEL3_CACHE_SIZE, "3Unified");
    m.mem_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    m.loadavg_start = load_average();
    {
        // What else is running right now, in cores: a load average lags by a minute, this does not.
        ThreadGovernor g(m.cores, std::chrono::milliseconds(250));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        g.update();
        m.others_busy_cores = g.last_others();
        if (m.others_busy_cores >= 0.3)
            PL_LOG_WARN("bench: other processes kept {:.1f} of {} cores busy just before the run: figures will be low and noisy "
                        "(scripts/bench-prio.sh runs a benchmark ahead of them; docs/benchmarks.md)",
                        m.others_busy_cores, m.cores);
    }

    std::set<int> ts(o.threads.begin(), o.threads.end());
    ts.insert(1);
    ts.insert(m.cores);

    // The buffer must dwarf the last-level cache; shrink it only when memory is short.
    uint64_t bytes = o.buffer_bytes;
    const long avail = sysconf(_SC_AVPHYS_PAGES) * sysconf(_SC_PAGESIZE);
    while (bytes > (64ull << 20) && avail > 0 && bytes * 4 > static_cast<uint64_t>(avail)) bytes /= 2;
    bytes = std::max<uint64_t>(1u << 21, bytes / (1u << 21) * (1u << 21));
    m.bw_buffer_bytes = bytes;
    if (log) log(fmt::format("probe: memory read bandwidth ({} MiB buffer, {} runs per thread count)", bytes >> 20, o.runs));
    {
        ReadMeter meter(bytes);
        if (!meter.ok()) return err("probe: cannot allocate {} MiB for the bandwidth test", bytes >> 20);
        for (int t : ts) {
            auto st = summarize(meter.measure(t, o.runs), "memory bandwidth");
            if (!st) return st.status();
            m.bandwidth.push_back({t, st->max, *st});
            if (log) log(fmt::format("probe: read bandwidth {} thread(s): {:.1f} GB/s (best of {})", t, st->max, o.runs));
        }
    }

    // Arithmetic peaks: calibrate the iteration count on one thread, then run it on t threads.
    auto peak = [&](PeakFn fn, double per_iter, int t) {
        int64_t iters = 1 << 16;
        for (;;) {
            const double t0 = now_s();
            g_sink_f32 = g_sink_f32 + fn(iters);
            const double dt = now_s() - t0;
            if (dt > o.peak_time_s / 4 || iters > (int64_t{1} << 40)) {
                iters = static_cast<int64_t>(static_cast<double>(iters) * o.peak_time_s / dt) + 1;
                break;
            }
            iters *= 4;
        }
        // Best of 7: on a shared VM a run that loses one of its threads to another guest for a
        // few ms reads half the peak (seen: 469 instead of 903 GOP/s with 2 threads in one of
        // five probes when this took the best of 3), and model rows divide by this figure.
        constexpr int kPeakRuns = 7;
        double best = 0;
        for (int r = 0; r < kPeakRuns; ++r) {
            float s = 0;
            const double t0 = now_s();
#pragma omp parallel num_threads(t) reduction(+ : s)
            s += fn(iters);
            const double dt = now_s() - t0;
            g_sink_f32 = g_sink_f32 + s;
            best = std::max(best, static_cast<double>(iters) * per_iter * t / dt * 1e-9);
        }
        return best;
    };
    for (int t : ts) {
        PeakPoint pp;
        pp.threads = t;
        pp.fp32_gflops = peak(pk.fma_f32, pk.fma_flops_per_iter, t);
        pp.int8_gops = peak(pk.dot_i8, pk.dot_ops_per_iter, t);
        if (!std::isfinite(pp.fp32_gflops) || !std::isfinite(pp.int8_gops) || pp.fp32_gflops <= 0 || pp.int8_gops <= 0)
            return err("probe: non-finite arithmetic peak with {} threads", t);
        m.peak.push_back(pp);
        if (log) log(fmt::format("probe: peak {} thread(s): fp32 {:.0f} GFLOP/s, int8 {:.0f} GOP/s ({})", t, pp.fp32_gflops, pp.int8_gops, pk.dot_instr));
    }
    m.warnings = probe_warnings(m);
    for (const auto& w : m.warnings) PL_LOG_WARN("bench: {}", w);
    return m;
}

std::vector<std::string> probe_warnings(const MachineInfo& m) {
    constexpr double kRatio = 1.25, kPeakScaling = 0.625;
    std::vector<std::string> out;
    for (const auto& b : m.bandwidth)
        if (b.gbps.n >= 2 && b.gbps.median > 0 && b.gbps.max > kRatio * b.gbps.median)
            out.push_back(fmt::format("the read bandwidth with {} thread(s) moved between the probe's runs (best {:.1f}, median {:.1f} "
                                      "GB/s): '% of bandwidth' is taken over the best; for kernel rows '% paired' (a read just "
                                      "before the row) is the steadier figure",
                                      b.threads, b.gbps.max, b.gbps.median));
    const double one_fp32 = m.peak_gops(1, false), one_int8 = m.peak_gops(1, true);  // 0 when 1 thread was not probed
    for (const auto& p : m.peak) {
        if (p.threads <= 1) continue;
        // Under 5/8 of linear scaling: 1.25x one thread's at 2 threads, 2.5x at 4.
        const double least = kPeakScaling * p.threads;
        const bool fp32 = p.fp32_gflops < least * one_fp32, int8 = p.int8_gops < least * one_int8;
        if (!fp32 && !int8) continue;
        out.push_back(fmt::format("the {}-thread arithmetic peak ({}) is under {:.2f}x one thread's: its threads shared cores "
                                  "during the whole probe (SMT, or another guest or process held one), so '% of peak' at {} "
                                  "threads is over a low figure",
                                  p.threads,
                                  int8 ? fmt::format("int8 {:.0f} against {:.0f} GOP/s", p.int8_gops, one_int8)
                                       : fmt::format("fp32 {:.0f} against {:.0f} GFLOP/s", p.fp32_gflops, one_fp32),
                                  least, p.threads));
    }
    return out;
}

}  // namespace pl::bench
