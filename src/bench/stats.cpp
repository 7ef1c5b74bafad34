// SPDX-License-Identifier: MIT
#include "bench/stats.h"

#include <algorithm>
#include <cmath>

namespace pl::bench {

Result<Stats> summarize(std::vector<double> v, const char* what) {
    if (v.empty()) return err("{}: no samples", what);
    for (double x : v)
        if (!std::isfinite(x) || x <= 0) return err("{}: non-finite or non-positive sample {}", what, x);
    std::sort(v.begin(), v.end());
    Stats s;
    s.n = static_cast<int>(v.size());
    s.min = v.front();
    s.max = v.back();
    const size_t h = v.size() / 2;
    s.median = v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    return s;
}

Result<Stats> time_op(const std::function<void()>& op, const TimingOptions& t, const char* what) {
    // Warm-up (at least one call, which also calibrates the calls per sample).
    double per_call = 0;
    for (int i = 0; i < std::max(1, t.warmup); ++i) {
        const double t0 = now_s();
        op();
        per_call = now_s() - t0;
    }
    if (!std::isfinite(per_call)) return err("{}: non-finite warm-up time", what);
    int64_t k = 1;
    if (per_call > 0 && per_call < t.min_time_s)
        k = std::min<int64_t>(1000000, static_cast<int64_t>(std::ceil(t.min_time_s / per_call)));
    std::vector<double> samples;
    samples.reserve(static_cast<size_t>(t.repeat));
    for (int r = 0; r < std::max(1, t.repeat); ++r) {
        const double t0 = now_s();
        for (int64_t i = 0; i < k; ++i) op();
        samples.push_back((now_s() - t0) / static_cast<double>(k));
    }
    return summarize(std::move(samples), what);
}

}  // namespace pl::bench
