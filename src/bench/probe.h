// SPDX-License-Identifier: MIT
// The machine probe of `parallama bench`: CPU model and features, cores, cache sizes, measured
// memory read bandwidth and peak fp32 / int8 arithmetic rates per thread count. Every report
// carries it, so each figure can be shown as a fraction of its roofline measured in the same run.
#pragma once

#include "bench/stats.h"
#include "core/status.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pl::bench {

struct BandwidthPoint {
    int threads = 1;
    double best_gbps = 0;  // best of the run (probe, and re-measurements beside kernel rows): the roofline

    Stats gbps;            // the probe's runs
};

struct PeakPoint {
    int threads = 1;
    double fp32_gflops = 0;  // FMA chains, best of the runs
    double int8_gops = 0;    // int8 dot-product chains, best of the runs
};

struct MachineInfo {
    std::string vendor, brand, features;
    std::string isa;            // kernel level cpu_kernels() selected
    std::string dot_instr;      // instruction the int8 peak was measured with
    int cores = 1;              // omp_get_num_procs()
    int64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;  // per instance, 0 when unknown
    int64_t mem_bytes = 0;
    double loadavg_start = -1;  // 1-minute load average when the probe ran (-1 unknown)
    double others_busy_cores = -1;  // cores other processes kept busy just before the probe (-1 unknown)
    uint64_t bw_buffer_bytes = 0;  // size of the buffer the read loop streams
    std::vector<BandwidthPoint> bandwidth;  // one per probed thread count
    std::vector<PeakPoint> peak;
    // What in the probe's own readings makes the "% of" columns unreliable (probe_warnings).
    std::vector<std::string> warnings;

    // Best read bandwidth measured with `threads` threads (0 when not probed).
    double bw_gbps(int threads) const;
    // Arithmetic peak with `threads` threads, int8 dot products or fp32 FMA, in GOP/s (0 when
    // not probed).
    double peak_gops(int threads, bool int8) const;
};

// A read-bandwidth meter with its own buffer, for quick re-measurements beside results.
class ReadMeter {
public:
    // Allocates and touches `bytes` (rounded to 2 MiB); check ok().
    explicit ReadMeter(uint64_t bytes);
    ~ReadMeter();
    ReadMeter(const ReadMeter&) = delete;
    ReadMeter& operator=(const ReadMeter&) = delete;
    bool ok() const { return buf_ != nullptr; }
    uint64_t bytes() const { return bytes_; }
    // GB/s of each of `runs` streaming reads of the whole buffer with `threads` threads.
    std::vector<double> measure(int threads, int runs);
    // GB/s of one read of [offset, offset + bytes) (clamped to the buffer, whole 256-byte units).
    double measure_span(int threads, uint64_t offset, uint64_t bytes);

private:
    uint8_t* buf_ = nullptr;
    uint64_t bytes_ = 0;
};

// The 1-minute load average (/proc/loadavg), -1 when unknown: a busy machine explains noise.
double load_average();

struct ProbeOptions {
    std::vector<int> threads = {1};  // thread counts to measure (1 and all cores are added)
    uint64_t buffer_bytes = 1ull << 30;  // reduced when memory is short
    int runs = 6;                        // bandwidth runs per thread count (best is kept)
    double peak_time_s = 0.05;           // per arithmetic-peak run
};

// Readings that say the machine changed under the probe, one sentence each (empty when none):
// - a thread count whose best read is more than 1.25x its median: the bandwidth moved between
//   runs (seen on a shared VM: best 55.6, median 30.7 GB/s), and "% of bandwidth" is over the best;
// - a thread count t above one whose fp32 or int8 peak is under 5/8 of t times one thread's
//   (1.25x at 2 threads, 2.5x at 4): its threads shared cores (SMT, or another guest held one)
//   for the whole probe, so "% of peak" for that thread count is over a low figure.
std::vector<std::string> probe_warnings(const MachineInfo& m);

// Progress messages (what runs) go to `log` when set.
Result<MachineInfo> probe_machine(const ProbeOptions& o, const std::function<void(const std::string&)>& log = {});

}  // namespace pl::bench
