// SPDX-License-Identifier: MIT
// `parallama bench compare old.json new.json`: matches rows by "id" and prints, per row, the
// speed ratio old_time / new_time (> 1 = faster) of the median time per operation, and flags
// the rows (and the build as a whole) that got slower beyond the noise measured on the pair.
//
// Why not the spread inside each run: on a shared machine a disturbance (another process on a
// core) lasts longer than one row's samples, so it moves a whole row between runs while its
// samples stay tight. Two recorded runs of one build (tests/bench_data/same_build_{a,b}.json)
// moved single rows by up to 20% (ln ratio 0.186) with 4-13% within-run spreads.
//
// The rule, with x = ln(new_median / old_median) per row:
//  1. Machine drift. Each report probes the read bandwidth per thread count (machine.bandwidth,
//     the roofline its % are taken of). For the rows at t threads, the probe's change
//     D = ln(old_bw / new_bw) may explain the rows' common shift m_t = median(x): the part
//     e_t = sign(m_t) * min(|D|, |m_t|), when D and m_t have the same sign, is removed:
//     a = x - e_t. The probe can excuse a common shift, never create one (full normalisation,
//     comparing % of roofline, added +3.5% to the recorded pair: its rows are not bandwidth-bound).
//     Without a probe in both reports, raw times are compared and a warning says so.
//  2. Between-run noise, measured on the pair (PairNoise): sigma = sqrt(mean a^2) over the rows
//     that did not get slower (a <= 0). A slowdown cannot make a row faster, so a regression,
//     in one row or in all, does not widen its own threshold. Fewer than kMinQuietRows such
//     rows (most rows got slower): 1.4826 * MAD(a) about the median. Mirrored for improvements.
//  3. A row REGRESSES when a > ln(1 + threshold), threshold = max(min_threshold (5%),
//     exp(kRowSigmas * sigma) - 1); it IMPROVES when a < -ln(1 + threshold of the faster side).
//  4. Build-wide: the median of a over all rows against kCommonSigmas standard errors of a
//     median (1.2533 * sigma / sqrt(n)), at least min_threshold: catches a slowdown of every
//     row that is smaller than one row's noise.
//  With fewer than PairNoise::kMinRows matched rows the noise cannot be measured from the pair:
//  each row uses the within-run rule max(min_threshold, hypot(spread_old, spread_new)), spread =
//  (max - min) / median, no build-wide verdict, and a warning.
#pragma once

#include "core/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

// Between-run noise of one direction (slower or faster), measured on the pair.
struct PairNoise {
    static constexpr double kRowSigmas = 4.0;     // a row's threshold
    static constexpr double kCommonSigmas = 3.0;  // the build-wide threshold, in standard errors
    static constexpr int kMinRows = 5;            // matched rows needed to measure the noise
    static constexpr int kMinQuietRows = 3;       // rows on the quiet side for the RMS estimate
    double sigma = 0;    // scale of ln(new / old) between runs
    int rows = 0;        // rows it was measured from (0: not measured, within-run rule)
    std::string source;  // how it was measured, for the output
};

// The probe's read bandwidth at one thread count in both reports, and what it explained.
struct MachineDrift {
    int threads = 0;
    double old_gbps = 0, new_gbps = 0;  // machine.bandwidth[].best_gbps
    double rows_shift = 0;              // median relative change of the rows' times (0.05 = 5% slower)
    double explained = 0;               // relative change removed from those rows (step 1)
};

struct CompareRow {
    std::string id;
    int threads = 0;
    double old_median = 0, new_median = 0;  // seconds per operation
    double speed_ratio = 0;                 // old / new: > 1 is faster
    double drift = 0;                       // relative slowdown explained by the machine
    double adjusted_ratio = 0;              // speed_ratio with the drift removed
    double threshold = 0;                   // relative slowdown that counts as a regression
    double improve_threshold = 0;           // relative speed-up that counts as an improvement
    std::string verdict;                    // "ok", "REGRESSION", "improved"
};

struct CompareResult {
    std::vector<CompareRow> rows;
    std::vector<std::string> only_old, only_new;  // ids present in one report only
    std::vector<std::string> warnings;            // different CPUs, a loaded machine, no probe, too few rows
    bool probe_normalised = false;                // step 1 ran (both reports have a probe)
    std::vector<MachineDrift> drift;              // per thread count, when probe_normalised
    PairNoise slower, faster;                     // noise behind the regression / improvement thresholds
    double common_shift = 0;                      // median relative slowdown of all rows after step 1
    double common_threshold = 0;                  // relative slowdown, step 4
    double common_improve_threshold = 0;          // relative speed-up, step 4 mirrored
    std::string common_verdict;                   // "ok", "REGRESSION", "improved"; "" with too few rows
    int regressions = 0, improvements = 0;        // rows
    // What `bench compare` exits 2 on: a row or the build as a whole got slower.
    bool regressed() const { return regressions > 0 || common_verdict == "REGRESSION"; }
};

// Fails when a report is not a parallama-bench report of kSchemaVersion or a row lacks a
// positive time_s {min, median, max}.
Result<CompareResult> compare_reports(const nlohmann::json& old_rep, const nlohmann::json& new_rep, double min_threshold = 0.05);
std::string compare_markdown(const CompareResult& c);

}  // namespace pl::bench
