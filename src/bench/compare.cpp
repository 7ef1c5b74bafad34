// SPDX-License-Identifier: MIT
#include "bench/compare.h"

#include "bench/report.h"

#include <cmath>
#include <map>

namespace pl::bench {
namespace {

using nlohmann::json;

Status check_report(const json& r, const char* which) {
    if (!r.is_object() || r.value("schema", "") != kSchemaName) return err("{} report: not a parallama-bench report", which);
    if (!r.contains("version") || !r["version"].is_number_integer() || r["version"].get<int>() != kSchemaVersion)
        return err("{} report: schema version {} is not {}", which, r.contains("version") ? r["version"].dump() : "missing", kSchemaVersion);
    if (!r.contains("results") || !r["results"].is_array()) return err("{} report: no results array", which);
    for (const auto& row : r["results"]) {
        if (!row.contains("id") || !row["id"].is_string() || !row.contains("time_s") || !row["time_s"].is_object())
            return err("{} report: a row without id or time_s", which);
        for (const char* k : {"min", "median", "max"}) {
            const json& t = row["time_s"];
            if (!t.contains(k) || !t[k].is_number() || !std::isfinite(t[k].get<double>()) || t[k].get<double>() <= 0)
                return err("{} report: row {}: time_s.{} missing or not positive", which, row["id"].get<std::string>(), k);
        }
    }
    return Status::ok();
}

double spread(const json& t) {
    const double med = t["median"].get<double>();
    return (t["max"].get<double>() - t["min"].get<double>()) / med;
}

}  // namespace

Result<CompareResult> compare_reports(const json& o, const json& n, double min_threshold) {
    PL_TRY(check_report(o, "old"));
    PL_TRY(check_report(n, "new"));
    CompareResult c;
    const std::string cpu_o = o["machine"].value("cpu", ""), cpu_n = n["machine"].value("cpu", "");
    if (cpu_o != cpu_n) c.warnings.push_back(fmt::format("different CPUs: '{}' vs '{}'", cpu_o, cpu_n));
    std::map<std::string, const json*> old_rows;
    for (const auto& r : o["results"]) old_rows[r["id"].get<std::string>()] = &r;
    std::map<std::string, bool> seen;
    for (const auto& r : n["results"]) {
        const std::string id = r["id"];
        auto it = old_rows.find(id);
        if (it == old_rows.end()) {
            c.only_new.push_back(id);
            continue;
        }
        seen[id] = true;
        const json& to = (*it->second)["time_s"];
        const json& tn = r["time_s"];
        CompareRow row;
        row.id = id;
        row.old_median = to["median"].get<double>();
        row.new_median = tn["median"].get<double>();
        row.speed_ratio = row.old_median / row.new_median;
        row.threshold = std::max(min_threshold, std::hypot(spread(to), spread(tn)));
        if (row.new_median > row.old_median * (1 + row.threshold)) {
            row.verdict = "REGRESSION";
            ++c.regressions;
        } else if (row.new_median * (1 + row.threshold) < row.old_median) {
            row.verdict = "improved";
            ++c.improvements;
        } else {
            row.verdict = "ok";
        }
        c.rows.push_back(row);
    }
    for (const auto& [id, _] : old_rows)
        if (!seen.count(id)) c.only_old.push_back(id);
    return c;
}

std::string compare_markdown(const CompareResult& c) {
    std::string md = "| row | old ms | new ms | speed new/old | noise threshold | verdict |\n| --- | ---: | ---: | ---: | ---: | --- |\n";
    for (const auto& r : c.rows)
        md += fmt::format("| {} | {:.4f} | {:.4f} | {:.3f}x | {:.1f}% | {} |\n", r.id, r.old_median * 1e3, r.new_median * 1e3, r.speed_ratio,
                          100.0 * r.threshold, r.verdict);
    for (const auto& id : c.only_old) md += fmt::format("\nonly in old: {}", id);
    for (const auto& id : c.only_new) md += fmt::format("\nonly in new: {}", id);
    for (const auto& w : c.warnings) md += fmt::format("\nwarning: {}", w);
    md += fmt::format("\n{} rows compared: {} regression(s), {} improvement(s)\n", c.rows.size(), c.regressions, c.improvements);
    return md;
}

}  // namespace pl::bench
