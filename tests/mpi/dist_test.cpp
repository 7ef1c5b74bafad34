// SPDX-License-Identifier: MIT
// Distributed inference through the real CLI under `mpirun --oversubscribe`: every layout (tp2,
// pp2, dp2, tp2 x pp2, tp2 with RMA reductions) gives the single process's greedy tokens, on
// stories260K and on a synthetic GQA model, also with more ranks than KV heads (KV heads
// replicated); bad layouts fail with a clear message; a rank that dies ends the job instead of
// hanging it; tensor parallelism cuts resident memory per rank.
#include "kernels/cpu/kernels.h"
#include "test_data.h"

#include "bench/json_schema.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using pl::test::parallama_bin;
using pl::test::parse_ints;
using pl::test::run_cmd;

std::string q(const std::string& s) { return "'" + s + "'"; }

// mpirun is found by CMake (FindMPI); an empty path means a build without MPI.
#define PL_REQUIRE_MPI()                                                                              \
    do {                                                                                              \
        if (std::string(PL_MPIEXEC).empty()) {                                                        \
            if (::pl::test::require_test_data()) FAIL() << "mpirun not found (scripts/setup.sh installs Open MPI)"; \
            GTEST_SKIP() << "mpirun not found: built without MPI";                                    \
        }                                                                                             \
    } while (0)

// `parallama <args>` on np ranks. One OpenMP thread per rank and MPI yielding while it waits (ranks
// outnumber the cores), root is allowed (CI containers), and a hung job is killed after 120 s so a
// hang fails instead of blocking.
pl::test::CmdResult mpirun(int np, const std::string& args, const std::string& env = "") {
    const std::string cmd = "env OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                            "OMPI_MCA_mpi_yield_when_idle=1 " + env +
                            " timeout 120 " + std::string(PL_MPIEXEC) + " --oversubscribe -np " + std::to_string(np) + " " +
                            parallama_bin() + " " + args;
    return run_cmd(cmd);
}

pl::test::CmdResult single(const std::string& args, const std::string& env = "") {
    return run_cmd("env OMP_NUM_THREADS=1 " + env + " " + parallama_bin() + " " + args);
}

using Layouts = std::vector<std::pair<int, std::string>>;  // (ranks, flags)
// The layouts of the acceptance list.
const Layouts kLayouts = {
    {2, "--tp 2"}, {2, "--pp 2"}, {2, "--dp 2"}, {4, "--tp 2 --pp 2"}, {2, "--tp 2 --tp-reduce rma"},
};

// Pipeline stages and replicas do the single process's arithmetic exactly. Tensor parallelism adds
// partial sums in another order (float rounding); with int8 activations such a difference can move
// one quantization step, so a near-tie between the top two logits may flip: its token tests use
// float weights (f32 stories260K, f16 synthetic), where the difference stays at rounding level.
// `must_log`: a line every such run must print on stderr (e.g. that the KV heads are replicated);
// `env`: variables for every run.
void expect_layouts_match(const std::string& model, const std::string& gen_args, const Layouts& layouts = kLayouts,
                          const std::string& must_log = "", const std::string& env = "") {
    auto ref = single("generate -m " + q(model) + " " + gen_args, env);
    ASSERT_EQ(ref.rc, 0) << ref.err;
    const auto want = parse_ints(ref.out);
    ASSERT_FALSE(want.empty());
    for (const auto& [np, flags] : layouts) {
        auto r = mpirun(np, "generate -m " + q(model) + " " + gen_args + " " + flags, env);
        ASSERT_EQ(r.rc, 0) << flags << "\n" << r.err;
        EXPECT_EQ(parse_ints(r.out), want) << flags << "\n" << r.err;
        EXPECT_NE(r.err.find("dist: rank"), std::string::npos) << r.err;  // the per-rank report
        if (!must_log.empty()) {
            EXPECT_NE(r.err.find(must_log), std::string::npos) << flags << "\n" << r.err;
        }
    }
}

// A small synthetic model with LLaMA's structure (GQA 8/4 heads, untied head), written once per
// build tree (the writer renames into place, so concurrent tests are safe).
std::string synth_model(const std::string& type, const std::string& shape = "tiny-gqa") {
    const std::string path = std::string(PL_BINARY_DIR) + "/test-tmp/dist-" + shape + "-" + type + ".gguf";
    if (!std::filesystem::exists(path)) {
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        auto s = run_cmd(parallama_bin() + " synth --shape " + shape + " --type " + type + " --std 0.08 -o " + q(path));
        EXPECT_EQ(s.rc, 0) << s.err;
    }
    return path;
}

TEST(DistCli, StoriesEveryLayoutMatchesSingleProcess) {
    PL_REQUIRE_MPI();
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    Layouts layouts = kLayouts;
    layouts.push_back({4, "--tp 4"});  // 8/4 heads: two query heads and one KV head per rank
    layouts.push_back({4, "--pp 4"});
    // (--kv-type f32: run.c's cache, for the comparison below)
    expect_layouts_match(gguf, "--prompt-ids 1 -n 48 --temp 0 --ids --kv-type f32", layouts);
    // And the single process itself is llama2.c's run.c.
    auto want = pl::test::stories_reference_ids();
    want.resize(std::min<size_t>(want.size(), 48));
    auto r = mpirun(2, "generate -m " + q(gguf) + " --prompt-ids 1 -n 48 --temp 0 --ids --tp 2 --kv-type f32");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(parse_ints(r.out), want);
}

TEST(DistCli, SyntheticEveryLayoutMatchesSingleProcess) {
    PL_REQUIRE_MPI();
    const std::string gen = "-p 'Once upon a time' -n 24 --temp 0 --ids";
    expect_layouts_match(synth_model("f16"), gen, {{2, "--tp 2"}, {2, "--pp 2"}, {2, "--dp 2"}, {4, "--tp 2 --pp 2"},
                                                   {2, "--tp 2 --tp-reduce rma"}, {4, "--tp 4 --tp-reduce rma"}});
    // int8 kernels (q8_0): the layouts without tensor parallelism are exact.
    expect_layouts_match(synth_model("q8_0"), gen, {{2, "--pp 2"}, {2, "--dp 2"}, {4, "--pp 4"}});
}

// Several prompts: pp2 pipelines micro-batches through the stages, dp2 splits the prompts over the
// replicas, tp2 x pp2 does both sharding kinds; each sequence equals the single-process batch.
TEST(DistCli, PromptsFileOverPipelineAndReplicas) {
    PL_REQUIRE_MPI();
    const std::string dir = pl::test::make_temp_dir("dist_batch");
    {
        std::ofstream f(dir + "/prompts.txt");
        f << "Once upon a time\nThe little dog\nLily went to the park and\nTom\nA cat\n";
    }
    for (const auto& [type, layouts] : std::vector<std::pair<std::string, Layouts>>{
             {"q8_0", {{2, "--pp 2"}, {2, "--pp 2 --micro-batches 5"}, {2, "--dp 2"}}}, {"f16", {{4, "--tp 2 --pp 2"}}}}) {
        const std::string args =
            "generate -m " + q(synth_model(type)) + " --prompts-file " + q(dir + "/prompts.txt") + " -n 12 --temp 0 --ids";
        auto ref = single(args);
        ASSERT_EQ(ref.rc, 0) << ref.err;
        for (const auto& [np, flags] : layouts) {
            auto r = mpirun(np, args + " " + flags);
            ASSERT_EQ(r.rc, 0) << flags << "\n" << r.err;
            EXPECT_EQ(r.out, ref.out) << type << " " << flags << "\n" << r.err;
            EXPECT_NE(r.err.find("batch: 5 sequences"), std::string::npos) << r.err;
            EXPECT_NE(r.err.find("bubble"), std::string::npos) << r.err;
        }
    }
}

TEST(DistCli, BadLayoutsFailWithClearMessages) {
    PL_REQUIRE_MPI();
    const std::string model = synth_model("q8_0");
    const std::string gen = "generate -m " + q(model) + " -p hi -n 2 --temp 0 --ids ";
    struct Case {
        int np;
        std::string flags, want;
    };
    for (const Case& c : std::vector<Case>{
             {2, "--tp 2 --pp 2", "--tp 2 x --pp 2 = 4 ranks per replica does not divide the job's 2 MPI ranks"},
             {2, "--tp 1 --pp 1 --dp 3", "--tp 1 x --pp 1 x --dp 3 needs 3 MPI ranks, this job has 2"},
         }) {
        auto r = mpirun(c.np, gen + c.flags);
        EXPECT_NE(r.rc, 0) << c.flags;
        EXPECT_NE(r.err.find(c.want), std::string::npos) << c.flags << "\n" << r.err;
        EXPECT_NE(r.rc, 124) << c.flags << ": timed out";
    }
    // KV heads can be replicated, query heads cannot: tiny-uneven has 4 of each.
    auto few = mpirun(5, "generate -m " + q(synth_model("q8_0", "tiny-uneven")) + " -p hi -n 2 --temp 0 --ids --tp 5");
    EXPECT_EQ(few.rc, 1);
    EXPECT_NE(few.err.find("n_heads=4 is smaller than tp=5 (every rank needs a whole query head"), std::string::npos) << few.err;
    // Without mpirun a layout needs ranks it does not have.
    auto r = single(gen + "--tp 2");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("does not divide the job's 1 MPI ranks (start it with mpirun -np N)"), std::string::npos) << r.err;
    // q3.5 rotates 256-weight groups: the tiny model's heads of 32 columns go 8 at a time (4 KV
    // groups, or 8 query heads when KV heads are replicated), one unit for 2 ranks (the FFN's 3
    // groups would split).
    auto q35 = mpirun(2, "generate -m " + q(synth_model("q3.5")) + " -p hi -n 2 --temp 0 --ids --tp 2");
    EXPECT_EQ(q35.rc, 1);
    EXPECT_NE(q35.err.find("n_heads=8 in units of 8 query heads (256 attn_output columns, whole 256-weight blocks) makes 1 unit(s), "
                           "fewer than tp=2"), std::string::npos)
        << q35.err;
}

// Uneven tensor-parallel splits. stories260K (8/4 heads, 172 FFN rows, f32) over 3 ranks: KV
// groups 2/1/1 (query heads 4/2/2) and FFN rows 58/57/57, the same tokens as one process. q3.5
// (256-weight groups) over 2 ranks on `tiny-uneven` (4 heads of 128, FFN of 3 groups): ffn_down
// splits 512 + 256 columns, as LLaMA-7B's 43 groups split 22 + 21.
TEST(DistCli, UnevenTensorParallelSplits) {
    PL_REQUIRE_MPI();
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    expect_layouts_match(gguf, "--prompt-ids 1 -n 32 --temp 0 --ids", {{3, "--tp 3"}, {3, "--tp 3 --tp-reduce rma"}});
    // The tp2 partial sums round differently from the single process's whole rows, and this random
    // model's logits are near ties: an f16 cache turned that into a different greedy token at step
    // 13, and the folded q3.5 numerics (AMX machines, quant/q3_5_fold.h: a slice's groups take other
    // lanes than in the whole row) at step 7. So the token check runs q3.5 in its file layout with
    // an f32 cache; a folded tp2 run must still fold its slices and give 16 tokens.
    const std::string tiny = synth_model("q3.5", "tiny-uneven");
    const std::string gen = "-p 'Once upon a time' -n 16 --temp 0 --ids --ignore-eos --kv-type f32";
    expect_layouts_match(tiny, gen, {{2, "--tp 2"}}, "", "PARALLAMA_AMX=0");
    auto folded = mpirun(2, "-v generate -m " + q(tiny) + " " + gen + " --tp 2");
    ASSERT_EQ(folded.rc, 0) << folded.err;
    EXPECT_EQ(parse_ints(folded.out).size(), 16u) << folded.out;
    if (pl::cpu_kernels().gemm_rows_q3_5f)
        EXPECT_NE(folded.err.find("q3.5 matrices folded for the AMX kernels"), std::string::npos) << folded.err;
}

// More ranks than KV heads: the query heads are split and each rank computes the KV heads they
// read (replicated, model/shard.h). stories260K (8 query / 4 KV heads, f32) over 8 ranks (one
// query head each, every KV head on two ranks), 5 (query heads 2, 2, 2, 1, 1) and 6 with RMA
// reductions; synthetic f16 models from `synth`: 8 query heads on 2 KV heads over 4 ranks, over 3
// (the middle rank reads both KV heads) and as tp3 x pp2, and SmolLM2's 9 on 3 over 4 ranks
// (query heads 3, 2, 2, 2: a KV group cut between two ranks) and 6; tp2 on 9/3 still splits whole
// groups. Every run gives the single process's greedy tokens and says that it replicates.
TEST(DistCli, ReplicatedKvHeadsMatchSingleProcess) {
    PL_REQUIRE_MPI();
    const std::string rep = "by query head, KV heads replicated";  // the report's line
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    expect_layouts_match(gguf, "--prompt-ids 1 -n 32 --temp 0 --ids", {{8, "--tp 8"}, {5, "--tp 5"}, {6, "--tp 6 --tp-reduce rma"}},
                         rep);
    const std::string gen = "-p 'Once upon a time' -n 24 --temp 0 --ids --ignore-eos";
    expect_layouts_match(synth_model("f16", "tiny-gqa-8x2"), gen, {{4, "--tp 4"}, {3, "--tp 3"}, {6, "--tp 3 --pp 2"}}, rep);
    // The report names each rank's heads (9/3 over 4: query heads 3, 2, 2, 2).
    expect_layouts_match(synth_model("f16", "tiny-gqa-9x3"), gen, {{4, "--tp 4"}},
                         "dist: tp4 splits 9 query heads on 3 KV heads by query head, KV heads replicated: tp rank 0 q 0-2 kv 0, "
                         "tp rank 1 q 3-4 kv 1, tp rank 2 q 5-6 kv 1-2, tp rank 3 q 7-8 kv 2");
    expect_layouts_match(synth_model("f16", "tiny-gqa-9x3"), gen, {{6, "--tp 6 --tp-reduce rma"}}, rep);
    expect_layouts_match(synth_model("f16", "tiny-gqa-9x3"), gen, {{2, "--tp 2"}});
}

// Several sequences decoded together (continuous batching) over replicated KV heads: each rank's
// KV cache holds its KV heads for every sequence; the outputs equal the single-process batch.
TEST(DistCli, ReplicatedKvHeadsWithSeveralSequences) {
    PL_REQUIRE_MPI();
    const std::string dir = pl::test::make_temp_dir("dist_rep_batch");
    {
        std::ofstream f(dir + "/prompts.txt");
        f << "Once upon a time\nThe little dog\nLily went to the park and\nTom\n";
    }
    const std::string args =
        "generate -m " + q(synth_model("f16", "tiny-gqa-8x2")) + " --prompts-file " + q(dir + "/prompts.txt") + " -n 12 --temp 0 --ids";
    auto ref = single(args);
    ASSERT_EQ(ref.rc, 0) << ref.err;
    for (const auto& [np, flags] : Layouts{{4, "--tp 4"}, {6, "--tp 3 --dp 2"}}) {
        auto r = mpirun(np, args + " " + flags);
        ASSERT_EQ(r.rc, 0) << flags << "\n" << r.err;
        EXPECT_EQ(r.out, ref.out) << flags << "\n" << r.err;
        EXPECT_NE(r.err.find("by query head, KV heads replicated"), std::string::npos) << r.err;
    }
    std::filesystem::remove_all(dir);
}

// `parallama bench --suite model` under mpirun: rows measured on rank 0 with every rank's compute
// and communication figures, the MPI link probe, and a report that validates against the schema.
TEST(DistCli, BenchReportsRanksAndLink) {
    PL_REQUIRE_MPI();
    const std::string dir = pl::test::make_temp_dir("dist_bench");
    auto r = mpirun(2, "bench --suite model -m " + q(synth_model("f16")) + " --tp 2 -t 1 --pp 4 --tg 4 --repeat 1 --warmup 0 "
                       "--bw-mib 16 --no-charts -o " + q(dir));
    ASSERT_EQ(r.rc, 0) << r.err;
    std::ifstream f(dir + "/report.json");
    const nlohmann::json rep = nlohmann::json::parse(f);
    std::ifstream sf(std::string(PL_SOURCE_DIR) + "/docs/bench-schema.json");
    for (const auto& e : pl::bench::validate_json(nlohmann::json::parse(sf), rep)) ADD_FAILURE() << e;
    ASSERT_TRUE(rep.contains("link"));
    EXPECT_GT(rep["link"]["latency_s"].get<double>(), 0);
    ASSERT_EQ(rep["results"].size(), 2u);  // pp4, tg4
    for (const auto& row : rep["results"]) {
        EXPECT_EQ(row["layout"]["tp"], 2);
        EXPECT_NE(row["id"].get<std::string>().find("/tp2"), std::string::npos);
        ASSERT_EQ(row["ranks"].size(), 2u);
        for (const auto& k : row["ranks"]) {
            EXPECT_GT(k["steps"].get<int>(), 0);
            // Two allreduces of dim=256 floats a layer, 4 layers, per token of the step.
            EXPECT_GE(k["tp_bytes_per_step"].get<double>(), 8 * 256 * 4.0);
            EXPECT_GT(k["compute_s_per_step"].get<double>(), 0);
        }
    }
    std::filesystem::remove_all(dir);
}

// A rank that dies mid-run (fault injection) ends the whole job with an error, in bounded time.
TEST(DistCli, DeadRankEndsTheJob) {
    PL_REQUIRE_MPI();
    const std::string model = synth_model("q8_0");
    for (const std::string flags : {"--pp 2", "--tp 2"}) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = mpirun(2, "generate -m " + q(model) + " -p hi -n 8 --temp 0 --ids " + flags, "PARALLAMA_FAULT_RANK=1");
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_NE(r.rc, 0) << flags;
        EXPECT_NE(r.rc, 124) << flags << ": the job hung until the timeout";
        EXPECT_LT(s, 60.0) << flags;
        EXPECT_NE(r.err.find("rank 1 exits on purpose"), std::string::npos) << r.err;
    }
}

// Peak resident memory (VmHWM) of a tp2 rank against one process, on the LLaMA-7B shape cut to 4
// layers: each rank maps only its row ranges and reads only its column slices.
TEST(DistCli, TensorParallelHalvesResidentMemory) {
    PL_REQUIRE_MPI();
    const std::string dir = pl::test::make_temp_dir("dist_rss");
    const std::string model = dir + "/l7b4.gguf";
    auto s = run_cmd(parallama_bin() + " synth --shape llama-7b --layers 4 --type q4_0 -o " + q(model));
    ASSERT_EQ(s.rc, 0) << s.err;
    auto peak = [](const std::string& err, int rank) {
        std::istringstream in(err);
        for (std::string line; std::getline(in, line);) {
            std::istringstream f(line);
            std::string tag;
            int r = -1;
            if (!(f >> tag >> r) || tag != "dist:" || r != rank) continue;
            std::vector<std::string> cols;
            for (std::string c; f >> c;) cols.push_back(c);
            if (!cols.empty()) return std::stod(cols.back());  // peak_MiB, the last column
        }
        return std::nan("");
    };
    const std::string gen = "generate -m " + q(model) + " -p hi -n 2 --temp 0 --ids -c 64";
    auto one = mpirun(1, gen);
    ASSERT_EQ(one.rc, 0) << one.err;
    auto two = mpirun(2, gen + " --tp 2");
    ASSERT_EQ(two.rc, 0) << two.err;  // (tokens not compared: random q4_0 weights give near-ties)
    const double base = peak(one.err, 0);
    ASSERT_FALSE(std::isnan(base)) << one.err;
    for (int r = 0; r < 2; ++r) {
        const double p = peak(two.err, r);
        ASSERT_FALSE(std::isnan(p)) << two.err;
        EXPECT_LE(p, 0.6 * base) << "rank " << r << ": " << p << " MiB vs " << base << " MiB in one process\n" << two.err;
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
