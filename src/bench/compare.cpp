// SPDX-License-Identifier: MIT
#include "bench/compare.h"

#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace pl::bench {
namespace {

using nlohmann::json;

Status check_report(const json& r, const char* which) {
    if (!r.is_object() || r.value("schema", "") != kSchemaName) return err("{} report: not a parallama-bench report", which);
    if (!r.contains("version") || !r["version"].is_number_integer() || r["version"].get<int>() < kSchemaOldestComparable ||
        r["version"].get<int>() > kSchemaVersion)
        return err("{} report: schema version {} is not in [{}, {}]", which, r.contains("version") ? r["version"].dump() : "missing",
                   kSchemaOldestComparable, kSchemaVersion);
    if (!r.contains("results") || !r["results"].is_array()) return err("{} report: no results array", which);
    for (const auto& row : r["results"]) {
        if (!row.is_object() || !row.contains("id") || !row["id"].is_string() || !row.contains("time_s") || !row["time_s"].is_object())
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

std::string machine_cpu(const json& r) {
    return r.contains("machine") && r["machine"].is_object() ? r["machine"].value("cpu", "") : "";
}

// threads -> best read bandwidth (GB/s) of the report's probe; empty when it has none.
std::map<int, double> probe_bandwidth(const json& r) {
    std::map<int, double> bw;
    if (!r.contains("machine") || !r["machine"].is_object()) return bw;
    const json& m = r["machine"];
    if (!m.contains("bandwidth") || !m["bandwidth"].is_array()) return bw;
    for (const auto& b : m["bandwidth"]) {
        if (!b.is_object() || !b.contains("threads") || !b["threads"].is_number_integer() || !b.contains("best_gbps") ||
            !b["best_gbps"].is_number())
            continue;
        const double g = b["best_gbps"].get<double>();
        if (std::isfinite(g) && g > 0) bw[b["threads"].get<int>()] = g;
    }
    return bw;
}

// A warning when the report ran with at least as many runnable processes as cores (its load
// average at start or end): its times then include waiting for a core, not only the code.
void check_load(const json& r, const char* which, std::vector<std::string>& warnings) {
    if (!r.contains("machine") || !r["machine"].is_object()) return;
    const json& m = r["machine"];
    const int cores = m.contains("cores") && m["cores"].is_number_integer() ? m["cores"].get<int>() : 0;
    double load = -1;
    for (const json* v : {m.contains("loadavg_start") ? &m["loadavg_start"] : nullptr, r.contains("loadavg_end") ? &r["loadavg_end"] : nullptr})
        if (v && v->is_number()) load = std::max(load, v->get<double>());
    if (cores > 0 && load >= cores)
        warnings.push_back(fmt::format("the {} report ran at a load average of {:.2f} on {} cores: other processes competed for the CPU", which, load, cores));
}

double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// Step 2 of the rule (compare.h) for one direction: sign +1 measures the noise behind the
// regression threshold from the rows that did not get slower, -1 the mirror image.
PairNoise measure_noise(const std::vector<double>& a, int sign) {
    PairNoise n;
    double sum2 = 0;
    int quiet = 0;
    for (double x : a)
        if (sign * x <= 0) sum2 += x * x, ++quiet;
    if (quiet >= PairNoise::kMinQuietRows) {
        n.sigma = std::sqrt(sum2 / quiet);
        n.rows = quiet;
        n.source = fmt::format("RMS of the {} rows that did not get {}", quiet, sign > 0 ? "slower" : "faster");
        return n;
    }
    const double m = median_of(a);
    std::vector<double> dev;
    for (double x : a) dev.push_back(std::abs(x - m));
    n.sigma = 1.4826 * median_of(dev);
    n.rows = static_cast<int>(a.size());
    n.source = fmt::format("1.4826 x MAD of all {} rows about their median (only {} did not get {})", a.size(), quiet,
                           sign > 0 ? "slower" : "faster");
    return n;
}

std::string pct(double rel) { return fmt::format("{:+.1f}%", 100.0 * rel); }

}  // namespace

Result<CompareResult> compare_reports(const json& o, const json& n, double min_threshold) {
    PL_TRY(check_report(o, "old"));
    PL_TRY(check_report(n, "new"));
    CompareResult c;
    const std::string cpu_o = machine_cpu(o), cpu_n = machine_cpu(n);
    if (cpu_o != cpu_n) c.warnings.push_back(fmt::format("different CPUs: '{}' vs '{}'", cpu_o, cpu_n));
    check_load(o, "old", c.warnings);
    check_load(n, "new", c.warnings);
    std::map<std::string, const json*> old_rows;
    for (const auto& r : o["results"]) old_rows[r["id"].get<std::string>()] = &r;
    std::map<std::string, bool> seen;
    std::vector<double> x;       // ln(new / old) per matched row
    std::vector<double> within;  // hypot of the two within-run spreads per matched row
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
        row.threads = r.contains("threads") && r["threads"].is_number_integer() ? r["threads"].get<int>() : 0;
        row.old_median = to["median"].get<double>();
        row.new_median = tn["median"].get<double>();
        row.speed_ratio = row.old_median / row.new_median;
        x.push_back(std::log(row.new_median / row.old_median));
        within.push_back(std::hypot(spread(to), spread(tn)));
        c.rows.push_back(row);
    }
    for (const auto& [id, _] : old_rows)
        if (!seen.count(id)) c.only_old.push_back(id);

    // Step 1: machine drift per thread count, from the two probes.
    std::vector<double> a = x;
    const auto bw_o = probe_bandwidth(o), bw_n = probe_bandwidth(n);
    c.probe_normalised = !bw_o.empty() && !bw_n.empty();
    if (!c.probe_normalised) {
        c.warnings.push_back(fmt::format("{} has no bandwidth probe: raw times compared, drift of the machine between the runs not accounted for",
                                         bw_o.empty() && bw_n.empty() ? "neither report" : bw_o.empty() ? "the old report" : "the new report"));
    } else {
        std::map<int, std::vector<size_t>> by_threads;
        for (size_t i = 0; i < c.rows.size(); ++i) by_threads[c.rows[i].threads].push_back(i);
        for (const auto& [t, idx] : by_threads) {
            auto io = bw_o.find(t), in = bw_n.find(t);
            if (io == bw_o.end() || in == bw_n.end()) {
                c.warnings.push_back(fmt::format("no bandwidth probe at {} thread(s) in both reports: {} row(s) compared by raw times", t, idx.size()));
                continue;
            }
            std::vector<double> xs;
            for (size_t i : idx) xs.push_back(x[i]);
            const double m = median_of(xs), d = std::log(io->second / in->second);
            const double e = d * m > 0 ? std::copysign(std::min(std::abs(d), std::abs(m)), m) : 0.0;
            for (size_t i : idx) {
                a[i] = x[i] - e;
                c.rows[i].drift = std::expm1(e);
            }
            c.drift.push_back({t, io->second, in->second, std::expm1(m), std::expm1(e)});
        }
    }
    for (size_t i = 0; i < c.rows.size(); ++i) c.rows[i].adjusted_ratio = std::exp(-a[i]);

    // Steps 2-4.
    const int nrows = static_cast<int>(c.rows.size());
    if (nrows < PairNoise::kMinRows) {
        if (nrows > 0)
            c.warnings.push_back(fmt::format("only {} row(s) matched (< {}): the noise between runs cannot be measured from the pair; thresholds from the spreads "
                                             "within each run, which miss drift between runs",
                                             nrows, PairNoise::kMinRows));
        for (size_t i = 0; i < c.rows.size(); ++i) c.rows[i].threshold = c.rows[i].improve_threshold = std::max(min_threshold, within[i]);
        c.slower.source = c.faster.source = "within-run spreads";
    } else {
        c.slower = measure_noise(a, +1);
        c.faster = measure_noise(a, -1);
        const double thr_slow = std::max(min_threshold, std::expm1(PairNoise::kRowSigmas * c.slower.sigma));
        const double thr_fast = std::max(min_threshold, std::expm1(PairNoise::kRowSigmas * c.faster.sigma));
        for (auto& r : c.rows) r.threshold = thr_slow, r.improve_threshold = thr_fast;
        const double m = median_of(a), root_n = std::sqrt(static_cast<double>(nrows));
        c.common_shift = std::expm1(m);
        c.common_threshold = std::max(min_threshold, std::expm1(PairNoise::kCommonSigmas * 1.2533 * c.slower.sigma / root_n));
        c.common_improve_threshold = std::max(min_threshold, std::expm1(PairNoise::kCommonSigmas * 1.2533 * c.faster.sigma / root_n));
        c.common_verdict = m > std::log1p(c.common_threshold)           ? "REGRESSION"
                           : m < -std::log1p(c.common_improve_threshold) ? "improved"
                                                                          : "ok";
    }
    for (size_t i = 0; i < c.rows.size(); ++i) {
        CompareRow& r = c.rows[i];
        if (a[i] > std::log1p(r.threshold)) {
            r.verdict = "REGRESSION";
            ++c.regressions;
        } else if (a[i] < -std::log1p(r.improve_threshold)) {
            r.verdict = "improved";
            ++c.improvements;
        } else {
            r.verdict = "ok";
        }
    }
    return c;
}

std::string compare_markdown(const CompareResult& c) {
    std::string md;
    if (c.probe_normalised) {
        md += "compared: median time per operation, with the machine's drift between the runs (read bandwidth probed in each report) removed where it "
              "explains the rows' common shift\n";
        for (const auto& d : c.drift)
            md += fmt::format("machine, {} thread(s): read bandwidth {:.1f} -> {:.1f} GB/s ({} time), rows' median {}, explained {}\n", d.threads,
                              d.old_gbps, d.new_gbps, pct(d.old_gbps / d.new_gbps - 1), pct(d.rows_shift), pct(d.explained));
    } else {
        md += "compared: raw median time per operation (no bandwidth probe in both reports)\n";
    }
    if (c.slower.rows > 0)
        md += fmt::format("noise between the runs, measured on this pair: {:.1f}% ({}) for slowdowns, {:.1f}% ({}) for speed-ups; a row is flagged beyond "
                          "max(floor, {:.0f} x noise)\n",
                          100.0 * c.slower.sigma, c.slower.source, 100.0 * c.faster.sigma, c.faster.source, PairNoise::kRowSigmas);
    else
        md += "noise: within-run spreads only (too few rows to measure the noise between runs)\n";
    md += "\n| row | old ms | new ms | speed new/old | machine drift | speed vs machine | threshold slower / faster | verdict |\n";
    md += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
    for (const auto& r : c.rows)
        md += fmt::format("| {} | {:.4f} | {:.4f} | {:.3f}x | {} | {:.3f}x | {:.1f}% / {:.1f}% | {} |\n", r.id, r.old_median * 1e3, r.new_median * 1e3,
                          r.speed_ratio, pct(r.drift), r.adjusted_ratio, 100.0 * r.threshold, 100.0 * r.improve_threshold, r.verdict);
    for (const auto& id : c.only_old) md += fmt::format("\nonly in old: {}", id);
    for (const auto& id : c.only_new) md += fmt::format("\nonly in new: {}", id);
    for (const auto& w : c.warnings) md += fmt::format("\nwarning: {}", w);
    if (!c.common_verdict.empty())
        md += fmt::format("\nbuild-wide: median change of the rows' times {} (thresholds {:.1f}% slower / {:.1f}% faster: {:.0f} standard errors of the "
                          "median, at least the floor): {}",
                          pct(c.common_shift), 100.0 * c.common_threshold, 100.0 * c.common_improve_threshold, PairNoise::kCommonSigmas,
                          c.common_verdict);
    md += fmt::format("\n{} rows compared: {} regression(s), {} improvement(s)\n", c.rows.size(), c.regressions, c.improvements);
    return md;
}

}  // namespace pl::bench
