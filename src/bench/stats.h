// SPDX-License-Identifier: MIT
// Timing and statistics for `parallama bench`: warm-up, repeated timed samples, min / median /
// max and their relative spread. Nothing here allocates inside the timed region.
#pragma once

#include "core/status.h"

#include <chrono>
#include <functional>
#include <vector>

namespace pl::bench {

// Summary of repeated samples (seconds per operation, or any positive quantity).
struct Stats {
    double min = 0, median = 0, max = 0, mean = 0;
    int n = 0;
    // (max - min) / median: the noise measure `bench compare` uses (0 for a single sample).
    double spread() const { return median > 0 ? (max - min) / median : 0.0; }
};

// Summarizes samples; fails when there are none or one is not finite or not positive.
Result<Stats> summarize(std::vector<double> samples, const char* what);

struct TimingOptions {
    int warmup = 1;           // untimed calls before sampling (also used to calibrate)
    int repeat = 5;           // timed samples
    double min_time_s = 0.05; // each sample repeats the operation until at least this long
};

inline double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times `op` (one operation per call): warm-up calls, then `repeat` samples of k calls each,
// k chosen from the warm-up so that a sample lasts about min_time_s. Returns seconds per call.
Result<Stats> time_op(const std::function<void()>& op, const TimingOptions& t, const char* what);

}  // namespace pl::bench
