// SPDX-License-Identifier: MIT
// `parallama bench compare`: the noise rule (src/bench/compare.h) on hand-made rows, and on two
// recorded real runs of the same build (tests/bench_data/same_build_{a,b}.json, 12 kernel rows
// each, recorded back to back on the shared 2-core VM): no regression between them, and a
// planted 20% slowdown is flagged in one row, in one format and in every row. No timing happens
// here.
#include "bench/compare.h"
#include "bench/json_schema.h"
#include "bench/report.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

namespace pl::bench {
namespace {

using nlohmann::json;

json load(const std::string& rel) {
    std::ifstream f(std::string(PL_SOURCE_DIR) + "/" + rel);
    EXPECT_TRUE(f.good()) << rel;
    return json::parse(f);
}

json recorded_a() { return load("tests/bench_data/same_build_a.json"); }
json recorded_b() { return load("tests/bench_data/same_build_b.json"); }

json row(const std::string& id, double min, double med, double max, int threads = 1) {
    return {{"id", id}, {"threads", threads}, {"time_s", {{"min", min}, {"median", med}, {"max", max}}}};
}

// A report of `rows`; with bw_gbps > 0 it carries a probe of that read bandwidth at 1 thread.
json report(std::vector<json> rows, double bw_gbps = 0) {
    json m = {{"cpu", "x"}};
    if (bw_gbps > 0) m["bandwidth"] = json::array({{{"threads", 1}, {"best_gbps", bw_gbps}}});
    return {{"schema", kSchemaName}, {"version", kSchemaVersion}, {"machine", m}, {"results", rows}};
}

// Every time_s statistic multiplied by `f` (a slower build when f > 1), in the rows `pick` selects.
template <typename Pick>
json scaled_if(json rep, double f, Pick pick) {
    for (auto& r : rep["results"])
        if (pick(r["id"].get<std::string>()))
            for (const char* k : {"min", "median", "max", "mean"})
                if (r["time_s"].contains(k)) r["time_s"][k] = r["time_s"][k].get<double>() * f;
    return rep;
}
json scaled(json rep, double f) {
    return scaled_if(std::move(rep), f, [](const std::string&) { return true; });
}

std::vector<std::string> flagged(const CompareResult& c) {
    std::vector<std::string> ids;
    for (const auto& r : c.rows)
        if (r.verdict == "REGRESSION") ids.push_back(r.id);
    return ids;
}

TEST(BenchCompare, FewRowsUseTheWithinRunRule) {
    // Two matched rows: too few to measure the noise between runs from the pair, so each row's
    // threshold is max(5%, hypot of the two (max - min) / median spreads).
    const json a = report({row("quiet", 0.99, 1.0, 1.01), row("noisy", 0.8, 1.0, 1.2), row("gone", 1, 1, 1)});
    const json b = report({row("quiet", 1.059, 1.07, 1.08), row("noisy", 0.9, 1.1, 1.3), row("added", 1, 1, 1)});
    auto c = compare_reports(a, b);
    ASSERT_TRUE(c) << c.error_message();
    ASSERT_EQ(c->rows.size(), 2u);
    EXPECT_EQ(c->rows[0].id, "quiet");
    EXPECT_EQ(c->rows[0].verdict, "REGRESSION");  // 7% slower, 5% threshold
    EXPECT_NEAR(c->rows[0].threshold, 0.05, 1e-12);
    EXPECT_NEAR(c->rows[0].speed_ratio, 1.0 / 1.07, 1e-12);
    EXPECT_EQ(c->rows[1].verdict, "ok");  // 10% slower but spreads 40% and 36%
    EXPECT_NEAR(c->rows[1].threshold, std::hypot(0.4, 0.4 / 1.1), 1e-12);
    EXPECT_EQ(c->regressions, 1);
    EXPECT_TRUE(c->regressed());
    EXPECT_EQ(c->common_verdict, "");  // no build-wide verdict from two rows
    ASSERT_EQ(c->only_old.size(), 1u);
    EXPECT_EQ(c->only_old[0], "gone");
    ASSERT_EQ(c->only_new.size(), 1u);
    EXPECT_EQ(c->only_new[0], "added");
    EXPECT_FALSE(c->probe_normalised);
    const std::string md = compare_markdown(*c);
    EXPECT_NE(md.find("| quiet |"), std::string::npos);
    EXPECT_NE(md.find("only 2 row(s) matched"), std::string::npos) << md;
    EXPECT_NE(md.find("raw median time"), std::string::npos) << md;

    auto faster = compare_reports(a, scaled(a, 0.8));
    ASSERT_TRUE(faster);
    EXPECT_EQ(faster->regressions, 0);
    EXPECT_FALSE(faster->regressed());
    EXPECT_EQ(faster->rows[0].verdict, "improved");
}

TEST(BenchCompare, RejectsOtherVersionsAndBrokenRows) {
    json a = report({row("r", 1, 1, 1)});
    json v2 = a;
    v2["version"] = kSchemaVersion + 1;
    EXPECT_FALSE(compare_reports(a, v2));
    json bad = report({row("r", 1, 0, 1)});
    EXPECT_FALSE(compare_reports(a, bad));
    EXPECT_FALSE(compare_reports(a, json::array()));
    json no_machine = a;
    no_machine.erase("machine");
    EXPECT_TRUE(compare_reports(a, no_machine));  // no probe, no CPU: compared, with warnings
}

TEST(BenchCompare, RecordedRunsAreValidReports) {
    std::ifstream sf(std::string(PL_SOURCE_DIR) + "/docs/bench-schema.json");
    const json schema = json::parse(sf);
    for (const char* f : {"tests/bench_data/same_build_a.json", "tests/bench_data/same_build_b.json"})
        for (const auto& e : validate_json(schema, load(f))) ADD_FAILURE() << f << ": " << e;
}

TEST(BenchCompare, SameBuildTwiceIsNotARegression) {
    // Between these runs single rows moved by up to 20% (q4_0 4096x11008, 2 threads: 2.69 ->
    // 3.24 ms, with 13% and 4% spreads inside the runs): drift between runs, invisible inside one.
    const json a = recorded_a(), b = recorded_b();
    for (const auto& [o, n] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
        auto c = compare_reports(*o, *n);
        ASSERT_TRUE(c) << c.error_message();
        EXPECT_EQ(c->rows.size(), 12u);
        EXPECT_TRUE(c->only_old.empty() && c->only_new.empty());
        EXPECT_TRUE(c->probe_normalised);
        EXPECT_EQ(c->drift.size(), 2u);  // 1 and 2 threads
        EXPECT_EQ(c->regressions, 0) << compare_markdown(*c);
        EXPECT_EQ(c->improvements, 0) << compare_markdown(*c);
        EXPECT_EQ(c->common_verdict, "ok") << compare_markdown(*c);
        EXPECT_FALSE(c->regressed());
        EXPECT_GT(c->slower.rows, 0);  // measured on the pair, not the within-run fallback
    }
}

TEST(BenchCompare, PlantedSlowdownInOneRowIsFlagged) {
    // Each row in turn 20% slower in a copy of the same report: exactly that row is flagged.
    for (const json& base : {recorded_a(), recorded_b()}) {
        for (const auto& r : base["results"]) {
            const std::string id = r["id"];
            auto c = compare_reports(base, scaled_if(base, 1.2, [&](const std::string& i) { return i == id; }));
            ASSERT_TRUE(c) << c.error_message();
            EXPECT_EQ(flagged(*c), std::vector<std::string>{id}) << compare_markdown(*c);
            EXPECT_TRUE(c->regressed());
        }
    }
}

TEST(BenchCompare, PlantedSlowdownInEveryRowIsFlagged) {
    // 20% slower everywhere, against the same report and against the other recorded run (whose
    // own drift is up to 20% per row): the build-wide median catches it even where single rows
    // cannot be told from their noise; the probe did not slow down with the code.
    const json a = recorded_a(), b = recorded_b();
    for (const auto& [o, n] : {std::pair{&a, &a}, std::pair{&b, &b}, std::pair{&a, &b}, std::pair{&b, &a}}) {
        auto c = compare_reports(*o, scaled(*n, 1.2));
        ASSERT_TRUE(c) << c.error_message();
        EXPECT_EQ(c->common_verdict, "REGRESSION") << compare_markdown(*c);
        EXPECT_GT(c->common_shift, 0.12);
        EXPECT_LT(c->common_shift, 0.28);
        EXPECT_GT(c->regressions, 0) << compare_markdown(*c);
        EXPECT_TRUE(c->regressed());
    }
}

TEST(BenchCompare, PlantedSlowdownInOneFormatIsFlagged) {
    // Half the rows (every q4_0 row) 20% slower: those rows are flagged, the q8_0 rows are not
    // (a slowdown does not widen the noise it is judged by).
    for (const json& base : {recorded_a(), recorded_b()}) {
        auto is_q4 = [](const std::string& id) { return id.find("/q4_0/") != std::string::npos; };
        auto c = compare_reports(base, scaled_if(base, 1.2, is_q4));
        ASSERT_TRUE(c) << c.error_message();
        for (const auto& r : c->rows) EXPECT_EQ(r.verdict, is_q4(r.id) ? "REGRESSION" : "ok") << r.id;
        EXPECT_EQ(c->regressions, 6);
    }
}

TEST(BenchCompare, WithoutAProbeRawTimesAreComparedWithAWarning) {
    json a = recorded_a(), b = recorded_b();
    b["machine"].erase("bandwidth");
    auto c = compare_reports(a, b);
    ASSERT_TRUE(c) << c.error_message();
    EXPECT_FALSE(c->probe_normalised);
    EXPECT_TRUE(c->drift.empty());
    for (const auto& r : c->rows) {
        EXPECT_EQ(r.drift, 0.0) << r.id;
        EXPECT_NEAR(r.adjusted_ratio, r.speed_ratio, 1e-12) << r.id;
    }
    ASSERT_FALSE(c->warnings.empty());
    EXPECT_NE(c->warnings.back().find("the new report has no bandwidth probe: raw times compared"), std::string::npos) << c->warnings.back();
    EXPECT_NE(compare_markdown(*c).find("compared: raw median time"), std::string::npos);
    EXPECT_EQ(c->regressions, 0) << compare_markdown(*c);
    EXPECT_EQ(c->common_verdict, "ok");
    // Still catches what the probe never hid.
    auto all = compare_reports(a, scaled(b, 1.2));
    ASSERT_TRUE(all);
    EXPECT_EQ(all->common_verdict, "REGRESSION");
}

TEST(BenchCompare, WarnsAboutALoadedMachine) {
    json a = recorded_a(), b = recorded_b();  // load 1.03-1.29 on 2 cores: no warning
    auto quiet = compare_reports(a, b);
    ASSERT_TRUE(quiet);
    for (const auto& w : quiet->warnings) EXPECT_EQ(w.find("load average"), std::string::npos) << w;
    b["loadavg_end"] = 5.2;
    auto loaded = compare_reports(a, b);
    ASSERT_TRUE(loaded);
    ASSERT_EQ(loaded->warnings.size(), 1u);
    EXPECT_EQ(loaded->warnings[0], "the new report ran at a load average of 5.20 on 2 cores: other processes competed for the CPU");
}

TEST(BenchCompare, TheProbeExcusesMachineDriftButNeverCreatesOne) {
    // Eight rows at 1 thread with +-2% row noise, then the same rows 20% slower.
    std::vector<json> base_rows;
    for (int i = 0; i < 8; ++i) {
        const double t = 1.0 + 0.02 * ((i % 3) - 1);
        base_rows.push_back(row(fmt::format("r{}", i), t * 0.99, t, t * 1.01));
    }
    const json old_rep = report(base_rows, 30.0);
    // The machine read 20% slower in the new run and every row is 20% slower: explained.
    auto slow_machine = compare_reports(old_rep, scaled(report(base_rows, 25.0), 1.2));
    ASSERT_TRUE(slow_machine) << slow_machine.error_message();
    EXPECT_TRUE(slow_machine->probe_normalised);
    ASSERT_EQ(slow_machine->drift.size(), 1u);
    EXPECT_NEAR(slow_machine->drift[0].explained, 0.2, 1e-9);
    EXPECT_FALSE(slow_machine->regressed()) << compare_markdown(*slow_machine);
    // The same slowdown on an unchanged machine, or on one that read faster: flagged.
    for (double bw : {30.0, 36.0}) {
        auto c = compare_reports(old_rep, scaled(report(base_rows, bw), 1.2));
        ASSERT_TRUE(c);
        EXPECT_EQ(c->common_verdict, "REGRESSION") << bw;
        EXPECT_EQ(c->regressions, 8) << bw;
    }
    // A machine that read 20% faster while the code stayed the same: no shift is created
    // (comparing % of roofline would call every row 20% slower).
    auto fast_machine = compare_reports(old_rep, report(base_rows, 36.0));
    ASSERT_TRUE(fast_machine);
    EXPECT_EQ(fast_machine->drift[0].explained, 0.0);
    EXPECT_FALSE(fast_machine->regressed()) << compare_markdown(*fast_machine);
    // Half the machine's slowdown explains half the rows' slowdown, the rest is flagged.
    auto partly = compare_reports(old_rep, scaled(report(base_rows, 30.0 / 1.1), 1.2));
    ASSERT_TRUE(partly);
    EXPECT_NEAR(partly->drift[0].explained, 0.1, 1e-9);
    EXPECT_EQ(partly->common_verdict, "REGRESSION");
}

}  // namespace
}  // namespace pl::bench
