// SPDX-License-Identifier: MIT
// A progress line on stderr for long work (bytes done / total, rate, ETA). Redraws in place on a
// terminal, prints at most every 5% otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace pl::cli {

class ProgressBar {
public:
    explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(::isatty(2)) {}

    void update(uint64_t done, uint64_t total) {
        if (total == 0) return;
        const double frac = static_cast<double>(done) / static_cast<double>(total);
        const int pct = static_cast<int>(frac * 100.0);
        if (!tty_ && pct < last_pct_ + 5 && done != total) return;
        last_pct_ = pct;
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
        const double rate = t > 0 ? static_cast<double>(done) / t : 0.0;
        const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
        std::fprintf(stderr, "%s%s: %3d%% %8.1f / %.1f MiB  %6.1f MiB/s  ETA %4.0f s%s", tty_ ? "\r" : "", label_.c_str(),
                     pct, static_cast<double>(done) / 1048576.0, static_cast<double>(total) / 1048576.0, rate / 1048576.0,
                     eta, tty_ ? "" : "\n");
        std::fflush(stderr);
        drawn_ = true;
    }
    void finish() {
        if (drawn_ && tty_) std::fprintf(stderr, "\n");
        drawn_ = false;
    }

private:
    std::string label_;
    bool tty_;
    bool drawn_ = false;
    int last_pct_ = -100;
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace pl::cli
