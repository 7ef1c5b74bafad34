// SPDX-License-Identifier: MIT
// `parallama bench compare old.json new.json`: matches rows by "id" and prints, per row, the
// speed ratio old_time / new_time (> 1 = faster) of the median time per operation.
//
// Noise rule: each run's relative spread is (max - min) / median of its timed samples; the
// combined noise of a pair is sqrt(spread_old^2 + spread_new^2), and the threshold is
// max(min_threshold (5%), combined noise). A row REGRESSES when new_median > old_median *
// (1 + threshold), and IMPROVES when new_median < old_median / (1 + threshold).
#pragma once

#include "core/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

struct CompareRow {
    std::string id;
    double old_median = 0, new_median = 0;  // seconds per operation
    double speed_ratio = 0;                 // old / new: > 1 is faster
    double threshold = 0;                   // relative, see above
    std::string verdict;                    // "ok", "REGRESSION", "improved"
};

struct CompareResult {
    std::vector<CompareRow> rows;
    std::vector<std::string> only_old, only_new;  // ids present in one report only
    std::vector<std::string> warnings;            // e.g. different CPUs
    int regressions = 0, improvements = 0;
};

Result<CompareResult> compare_reports(const nlohmann::json& old_rep, const nlohmann::json& new_rep, double min_threshold = 0.05);
std::string compare_markdown(const CompareResult& c);

}  // namespace pl::bench
