// SPDX-License-Identifier: MIT
// parallama bench: report structure and schema, the JSON Schema subset validator, markdown and
// chart files, and a tiny real run. Nothing here asserts on a timing.
#include "bench/bench.h"
#include "bench/json_schema.h"
#include "bench/probe.h"
#include "bench/report.h"
#include "test_data.h"

#include "kernels/cpu/kernels.h"
#include "quant/formats.h"
#include "quant/q3_5.h"
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include <filesystem>
#include <fstream>

namespace pl::bench {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
    std::ifstream f(path);
    EXPECT_TRUE(f.good()) << path;
    return json::parse(f);
}

json schema() { return load_json(std::string(PL_SOURCE_DIR) + "/docs/bench-schema.json"); }

// A tiny real run: kernels at 256x256 (every default format), 1 repeat, small probe buffer.
const json& tiny_report() {
    static const json rep = [] {
        BenchOptions o;
        o.suite = "kernels";
        o.threads = {1};
        o.probe.buffer_bytes = 32ull << 20;
        o.probe.runs = 2;
        o.probe.peak_time_s = 0.002;
        o.kernels.shapes = {{256, 256}};
        o.kernels.batches = {1, 2};
        o.kernels.timing = {0, 1, 0.0};
        o.command = "test";
        auto r = run_bench(o, {});
        EXPECT_TRUE(r) << r.error_message();
        return r ? *r : json::object();
    }();
    return rep;
}

// Collects every keyword used at schema positions (keys of schema objects, not of "properties").
void collect_keywords(const json& s, std::set<std::string>& out) {
    if (!s.is_object()) return;
    for (const auto& [k, v] : s.items()) {
        out.insert(k);
        if (k == "properties" || k == "$defs") {
            for (const auto& [name, sub] : v.items()) collect_keywords(sub, out);
        } else if (k == "items" || k == "additionalProperties") {
            collect_keywords(v, out);
        }
    }
}

TEST(BenchSchema, UsesOnlyTheValidatedSubset) {
    std::set<std::string> used;
    collect_keywords(schema(), used);
    const auto& ok = supported_schema_keywords();
    for (const auto& k : used) EXPECT_NE(std::find(ok.begin(), ok.end(), k), ok.end()) << "schema keyword not validated: " << k;
    // The schema accepts every version up to the writer's (each only added fields), the writer's last.
    EXPECT_EQ(schema()["properties"]["version"]["enum"].back().get<int>(), kSchemaVersion);
}

TEST(BenchSchema, ValidatorCatchesViolations) {
    const json s = {{"type", "object"},
                    {"required", {"a"}},
                    {"properties", {{"a", {{"type", "integer"}, {"minimum", 1}}}, {"b", {{"enum", {"x", "y"}}}},
                                    {"c", {{"type", "array"}, {"items", {{"$ref", "#/$defs/pos"}}}, {"minItems", 1}}}}},
                    {"additionalProperties", false},
                    {"$defs", {{"pos", {{"type", "number"}, {"exclusiveMinimum", 0}}}}}};
    EXPECT_TRUE(validate_json(s, {{"a", 3}, {"b", "x"}, {"c", {1.5}}}).empty());
    EXPECT_FALSE(validate_json(s, {{"b", "x"}}).empty());                      // missing a
    EXPECT_FALSE(validate_json(s, {{"a", 0}}).empty());                        // below minimum
    EXPECT_FALSE(validate_json(s, {{"a", 1.5}}).empty());                      // not an integer
    EXPECT_FALSE(validate_json(s, {{"a", 1}, {"b", "z"}}).empty());            // not in enum
    EXPECT_FALSE(validate_json(s, {{"a", 1}, {"c", {1.0, 0.0}}}).empty());     // $ref'd exclusiveMinimum
    EXPECT_FALSE(validate_json(s, {{"a", 1}, {"c", json::array()}}).empty());  // minItems
    const auto e = validate_json(s, {{"a", 1}, {"zz", 1}});
    ASSERT_EQ(e.size(), 1u);
    EXPECT_NE(e[0].find("zz"), std::string::npos);
}

TEST(BenchReport, TinyRunValidatesAgainstSchema) {
    const json& rep = tiny_report();
    ASSERT_FALSE(rep.empty());
    const auto errors = validate_json(schema(), rep);
    for (const auto& e : errors) ADD_FAILURE() << e;
    EXPECT_EQ(rep["schema"], kSchemaName);
    EXPECT_EQ(rep["version"], kSchemaVersion);
}

TEST(BenchReport, TinyRunHasEveryFormatAndBatch) {
    const json& rep = tiny_report();
    std::set<std::string> ids;
    for (const auto& f : default_kernel_formats()) {
        for (int b : {1, 2}) {
            bool found = false;
            for (const auto& r : rep["results"]) {
                if (r["format"] != f || r["batch"] != b) continue;
                found = true;
                EXPECT_EQ(r["test"], b == 1 ? "gemv" : "gemm");
                EXPECT_EQ(r["threading"], f == "f16" || f == "f32" ? "rows" : "tasks");  // the default strategy
                EXPECT_EQ(r["rows"], 256);
                EXPECT_EQ(r["threads"], 1);
                EXPECT_GT(r["gbps"].get<double>(), 0);
                EXPECT_GT(r["roofline_gbps"].get<double>(), 0);  // bandwidth of the same thread count
                EXPECT_EQ(r["time_s"]["n"], 1);
                // The arithmetic side: the row's own rate against the peak of its kernels' kind.
                EXPECT_EQ(r["gops"].get<double>(), r["gflops"].get<double>());
                EXPECT_EQ(r["peak_kind"], f == "f16" || f == "f32" ? "fp32" : "int8");
                ASSERT_GT(r["peak_gops"].get<double>(), 0);
                EXPECT_NEAR(r["pct_peak"].get<double>(), 100 * r["gops"].get<double>() / r["peak_gops"].get<double>(), 1e-9);
                // Paired with reads of the same length: a ratio of two positive rates.
                ASSERT_TRUE(r.contains("pct_paired")) << r["id"];
                EXPECT_GT(r["pct_paired"].get<double>(), 0) << r["id"];
                EXPECT_TRUE(std::isfinite(r["pct_paired"].get<double>())) << r["id"];
                EXPECT_EQ(r["path"].get<std::string>().rfind(f == "f16" || f == "f32" ? "float-ref" : "int8-", 0), 0u);
                // Batches are one product; only formats without a GEMM kernel say they loop dots.
                if (b > 1) {
                    const auto& k = pl::cpu_kernels();
                    const uint32_t type = static_cast<uint32_t>(pl::type_traits_by_name(f)->type);
                    const bool loops = k.dot_for(type) && !k.has_block_product(type);
                    EXPECT_EQ(r.contains("note"), loops) << f;
                }
                EXPECT_TRUE(ids.insert(r["id"].get<std::string>()).second) << "duplicate id " << r["id"];
            }
            EXPECT_TRUE(found) << f << " batch " << b;
        }
    }
    ASSERT_FALSE(rep["machine"]["bandwidth"].empty());
    EXPECT_GT(rep["machine"]["peak"][0]["int8_gops"].get<double>(), 0);
}

TEST(BenchReport, WritesJsonMarkdownAndChartScripts) {
    const std::string dir = pl::test::make_temp_dir("bench_report");
    ASSERT_TRUE(write_report(dir, tiny_report()));
    const json back = load_json(dir + "/report.json");
    EXPECT_EQ(back, tiny_report());
    const std::string md = pl::test::read_file(dir + "/report.md");
    EXPECT_NE(md.find("| gemv | q4_0 |"), std::string::npos) << md;
    EXPECT_NE(md.find("read GB/s"), std::string::npos);
    // Rows of different strategies (bench --threading a,b) must not look alike: the row names its own.
    EXPECT_NE(md.find("| 256x256 | 1 | 1 | tasks |"), std::string::npos) << md;
    EXPECT_NE(md.find("| 256x256 | 1 | 1 | rows |"), std::string::npos) << md;  // f32/f16: the float reference loops rows
    auto pngs = draw_charts(dir, tiny_report());
    ASSERT_TRUE(pngs) << pngs.error_message();
    for (const char* f : {"thread_scaling.gp", "roofline.gp", "bandwidth_fraction.gp", "batch_scaling.gp", "thread_scaling.dat"})
        EXPECT_TRUE(std::filesystem::exists(dir + "/charts/" + f)) << f;
    for (const auto& p : *pngs) EXPECT_GT(std::filesystem::file_size(p), 1000u) << p;
}

// Probe readings that say the machine changed under the probe (probe_warnings); the figures are
// the Zen 4 VM's of 2026-12-07.
MachineInfo steady_machine() {
    MachineInfo m;
    m.bandwidth = {{1, 27.0, Stats{25.0, 26.0, 27.0, 26.0, 7}}, {2, 33.0, Stats{30.0, 31.0, 33.0, 31.2, 7}}};
    m.peak = {{1, 117, 465}, {2, 232, 930}};
    return m;
}

TEST(BenchProbe, NoWarningsOnASteadyMachine) { EXPECT_TRUE(probe_warnings(steady_machine()).empty()); }

TEST(BenchProbe, WarnsWhenTheBandwidthMovedBetweenRuns) {
    MachineInfo m = steady_machine();
    m.bandwidth[1] = {2, 55.6, Stats{29.0, 30.7, 55.6, 36.0, 7}};
    const auto w = probe_warnings(m);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("2 thread(s)"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("best 55.6, median 30.7"), std::string::npos) << w[0];
    // At the threshold (best exactly 1.25x the median) nothing is said.
    m.bandwidth[1] = {2, 37.5, Stats{29.0, 30.0, 37.5, 32.0, 7}};
    EXPECT_TRUE(probe_warnings(m).empty());
}

TEST(BenchProbe, WarnsWhenMoreThreadsDidNotRaiseThePeak) {
    MachineInfo m = steady_machine();
    m.peak[1] = {2, 229, 469};  // int8 as one core's: the two threads shared a core
    auto w = probe_warnings(m);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("2-thread"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("int8 469 against 465 GOP/s"), std::string::npos) << w[0];
    m.peak[1] = {2, 118, 930};  // fp32 this time
    w = probe_warnings(m);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("fp32 118 against 117 GFLOP/s"), std::string::npos) << w[0];
    // The bar scales with the thread count: 4 threads on 2 SMT cores (2x one thread) are flagged,
    // 4 threads on 4 cores are not.
    m.peak[1] = {2, 232, 930};
    m.peak.push_back({4, 234, 940});
    w = probe_warnings(m);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("4-thread"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("under 2.50x"), std::string::npos) << w[0];
    m.peak[2] = {4, 460, 1850};
    EXPECT_TRUE(probe_warnings(m).empty());
}

TEST(BenchReport, ProbeWarningsReachJsonAndMarkdown) {
    MachineInfo m = steady_machine();
    m.bandwidth[1].gbps.max = m.bandwidth[1].best_gbps = 55.6;
    m.warnings = probe_warnings(m);
    ASSERT_EQ(m.warnings.size(), 1u);
    json rep = tiny_report();
    ASSERT_FALSE(rep.empty());
    rep["machine"]["warnings"] = machine_json(m)["warnings"];
    for (const auto& e : validate_json(schema(), rep)) ADD_FAILURE() << e;
    const std::string md = report_markdown(rep);
    EXPECT_NE(md.find("> Warning: " + m.warnings[0] + "."), std::string::npos) << md;
    EXPECT_FALSE(machine_json(steady_machine()).contains("warnings"));
}

TEST(BenchOptions, ParsersRejectBadInput) {
    EXPECT_TRUE(parse_shapes("4096x11008,1024x8192"));
    EXPECT_EQ(parse_shapes("4096x11008")->at(0).cols, 11008);
    EXPECT_FALSE(parse_shapes("4096"));
    EXPECT_FALSE(parse_shapes("4096x100"));  // not a multiple of 32
    EXPECT_FALSE(parse_shapes("ax64"));
    EXPECT_FALSE(parse_int_list("1,x", 1, 8, "--threads"));
    EXPECT_FALSE(parse_int_list("0", 1, 8, "--threads"));
    EXPECT_EQ(parse_int_list("1,2", 1, 8, "--threads")->size(), 2u);
}

TEST(BenchOptions, UnknownFormatOrSuiteFails) {
    BenchOptions o;
    o.suite = "kernels";
    o.threads = {1};
    o.probe.buffer_bytes = 16ull << 20;
    o.probe.runs = 1;
    o.probe.peak_time_s = 0.001;
    o.kernels.shapes = {{64, 64}};
    o.kernels.formats = {"q9_9"};
    auto r = run_bench(o, {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error_message().find("q9_9"), std::string::npos);
    o.suite = "everything";
    EXPECT_FALSE(run_bench(o, {}));
}

TEST(BenchModel, TinySynthModelRun) {
    BenchOptions o;
    o.suite = "model";
    o.threads = {1};
    o.probe.buffer_bytes = 16ull << 20;
    o.probe.runs = 1;
    o.probe.peak_time_s = 0.001;
    o.model.shapes = {"smollm2-135m"};
    o.model.layers = 1;
    o.model.type = "q8_0";
    o.model.n_prompt = 2;
    o.model.n_gen = 2;
    o.model.repeat = 1;
    o.model.batches = {1, 8};
    o.model.cache_dir = pl::test::make_temp_dir("bench_models");
    auto r = run_bench(o, {});
    ASSERT_TRUE(r) << r.error_message();
    for (const auto& e : validate_json(schema(), *r)) ADD_FAILURE() << e;
    ASSERT_EQ((*r)["results"].size(), 4u);  // pp and tg at batch 1 and 8 (8 sequences decoded together)
    std::set<std::string> ids;
    for (const auto& row : (*r)["results"]) {
        EXPECT_EQ(row["suite"], "model");
        EXPECT_TRUE(row["extrapolated"].get<bool>());  // 1 of 30 layers
        EXPECT_EQ(row["n_layers"], 30);
        EXPECT_EQ(row["n_layers_measured"], 1);
        EXPECT_EQ(row["type"], "q8_0");
        EXPECT_TRUE(row["batch"] == 1 || row["batch"] == 8);
        EXPECT_GT(row["tokens_per_s"]["median"].get<double>(), 0.0);
        EXPECT_TRUE(ids.insert(row["id"].get<std::string>()).second) << row["id"];
        // The arithmetic side, from SmolLM2-135M's shape by hand: per layer q and o 576x576, k and
        // v 192x576 (3 KV heads of 64), gate, up and down 576x1536; the tied head 49152x576.
        const double layer_macs = 2.0 * 576 * 576 + 2.0 * 192 * 576 + 3.0 * 576 * 1536;
        const double macs = 49152.0 * 576 + 30 * layer_macs;
        EXPECT_NEAR(row["gops"].get<double>(), 2 * macs * row["tokens_per_s"]["median"].get<double>() * 1e-9,
                    1e-9 * row["gops"].get<double>());
        EXPECT_EQ(row["peak_kind"], "int8");  // q8_0 runs on int8 kernels
        ASSERT_GT(row["peak_gops"].get<double>(), 0.0);
        EXPECT_NEAR(row["pct_peak"].get<double>(), 100 * row["gops"].get<double>() / row["peak_gops"].get<double>(), 1e-9);
    }
    EXPECT_EQ((*r)["skipped"].size(), 0u);
}

}  // namespace
}  // namespace pl::bench
