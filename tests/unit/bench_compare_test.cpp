// SPDX-License-Identifier: MIT
// `parallama bench compare`: the noise rule on hand-made rows, and on two recorded real runs of
// the same build (tests/bench_data/same_build_{a,b}.json): no regression between them, and a
// planted 20% slowdown is flagged. No timing happens here.
#include "bench/compare.h"
#include "bench/json_schema.h"
#include "bench/report.h"

#include <gtest/gtest.h>

#include <fstream>

namespace pl::bench {
namespace {

using nlohmann::json;

json load(const std::string& rel) {
    std::ifstream f(std::string(PL_SOURCE_DIR) + "/" + rel);
    EXPECT_TRUE(f.good()) << rel;
    return json::parse(f);
}

json row(const std::string& id, double min, double med, double max) {
    return {{"id", id}, {"time_s", {{"min", min}, {"median", med}, {"max", max}}}};
}

json report(std::vector<json> rows) {
    return {{"schema", kSchemaName}, {"version", kSchemaVersion}, {"machine", {{"cpu", "x"}}}, {"results", rows}};
}

// Every time_s statistic multiplied by `f` (a slower build when f > 1).
json scaled(json rep, double f) {
    for (auto& r : rep["results"])
        for (const char* k : {"min", "median", "max", "mean"})
            if (r["time_s"].contains(k)) r["time_s"][k] = r["time_s"][k].get<double>() * f;
    return rep;
}

TEST(BenchCompare, NoiseRule) {
    // Quiet rows (1% spread): threshold is the 5% floor.
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
    ASSERT_EQ(c->only_old.size(), 1u);
    EXPECT_EQ(c->only_old[0], "gone");
    ASSERT_EQ(c->only_new.size(), 1u);
    EXPECT_EQ(c->only_new[0], "added");

    auto faster = compare_reports(a, scaled(a, 0.8));
    ASSERT_TRUE(faster);
    EXPECT_EQ(faster->regressions, 0);
    EXPECT_EQ(faster->rows[0].verdict, "improved");
    EXPECT_NE(compare_markdown(*c).find("| quiet |"), std::string::npos);
}

TEST(BenchCompare, RejectsOtherVersionsAndBrokenRows) {
    json a = report({row("r", 1, 1, 1)});
    json v2 = a;
    v2["version"] = kSchemaVersion + 1;
    EXPECT_FALSE(compare_reports(a, v2));
    json bad = report({row("r", 1, 0, 1)});
    EXPECT_FALSE(compare_reports(a, bad));
    EXPECT_FALSE(compare_reports(a, json::array()));
}

TEST(BenchCompare, RecordedRunsAreValidReports) {
    std::ifstream sf(std::string(PL_SOURCE_DIR) + "/docs/bench-schema.json");
    const json schema = json::parse(sf);
    for (const char* f : {"tests/bench_data/same_build_a.json", "tests/bench_data/same_build_b.json"})
        for (const auto& e : validate_json(schema, load(f))) ADD_FAILURE() << f << ": " << e;
}

TEST(BenchCompare, SameBuildTwiceIsNotARegression) {
    const json a = load("tests/bench_data/same_build_a.json"), b = load("tests/bench_data/same_build_b.json");
    auto c = compare_reports(a, b);
    ASSERT_TRUE(c) << c.error_message();
    EXPECT_GE(c->rows.size(), 10u);
    EXPECT_TRUE(c->only_old.empty() && c->only_new.empty());
    // This machine is shared: between two back-to-back runs one row of the twelve (q4_0
    // 4096x11008, 2 threads) moved 17%, beyond its 13% within-run spread; drift between runs is
    // not visible inside one run. At most that one row may be flagged.
    EXPECT_LE(c->regressions, 1) << compare_markdown(*c);
    auto back = compare_reports(b, a);  // and in the other direction
    ASSERT_TRUE(back);
    EXPECT_EQ(back->regressions, 0) << compare_markdown(*back);
}

TEST(BenchCompare, PlantedTwentyPercentSlowdownIsFlagged) {
    const json a = load("tests/bench_data/same_build_a.json"), b = load("tests/bench_data/same_build_b.json");
    for (const json* base : {&a, &b}) {
        auto c = compare_reports(a, scaled(*base, 1.2));
        ASSERT_TRUE(c) << c.error_message();
        // Every row whose measured noise allows it must be flagged. This shared machine is noisy
        // (the recorded runs have 3%..52% max-min spreads, and medians of the same row move by up to
        // 37% between the two runs), so rows with a spread near 20% cannot honestly be flagged;
        // the recorded runs have 5 quiet rows against their own scaled copy.
        int expected = 0;
        for (const auto& r : c->rows) {
            if (r.new_median > r.old_median * (1 + r.threshold)) {
                ++expected;
                EXPECT_EQ(r.verdict, "REGRESSION") << r.id;
            } else {
                EXPECT_NE(r.verdict, "REGRESSION") << r.id;
            }
        }
        EXPECT_EQ(c->regressions, expected);
        if (base == &a) EXPECT_GE(c->regressions, 5) << compare_markdown(*c);
    }
}

}  // namespace
}  // namespace pl::bench
