// SPDX-License-Identifier: MIT
// End-to-end CLI tests: golden greedy ids through `generate`, the llama2.c import path, eval's
// logits dump, synthetic models, and bad input.
#include "test_data.h"

#include <fstream>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

using pl::test::parallama_bin;
using pl::test::parse_ints;
using pl::test::run_cmd;

std::vector<int32_t> reference_ids(size_t n) {
    auto ids = pl::test::stories_reference_ids();
    if (ids.size() > n) ids.resize(n);
    return ids;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(GenerateCli, StoriesGgufGreedy200MatchesRunC) {
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    // run.c keeps an f32 KV cache; generate's default is f16.
    auto r = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompt-ids 1 -n 200 --temp 0 --ids --kv-type f32");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(parse_ints(r.out), reference_ids(200));
    EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

// A file of prompts runs as one batch; each sequence's output equals a lone run of its prompt,
// greedy and sampled (same seed), and the aggregate speed is reported.
TEST(GenerateCli, PromptsFileBatchEqualsLoneRuns) {
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    const std::string dir = pl::test::make_temp_dir("gen_batch");
    const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily went to the park and", "Tom"};
    {
        std::ofstream f(dir + "/prompts.txt");
        for (const auto& p : prompts) f << p << "\n\n";  // blank lines are skipped
    }
    for (const std::string sampling : {"--temp 0", "--temp 0.8 --seed 7"}) {
        auto r = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompts-file " + q(dir + "/prompts.txt") +
                         " -n 24 --ids " + sampling);
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_NE(r.err.find("batch: 4 sequences"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("aggregate"), std::string::npos) << r.err;
        for (size_t i = 0; i < prompts.size(); ++i) {
            auto one = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " -p " + q(prompts[i]) + " -n 24 --ids " + sampling);
            ASSERT_EQ(one.rc, 0) << one.err;
            std::string ids = one.out;
            while (!ids.empty() && (ids.back() == '\n' || ids.back() == ' ')) ids.pop_back();
            const std::string want = "[" + std::to_string(i) + "] " + ids + "\n";
            EXPECT_NE(r.out.find(want), std::string::npos) << sampling << ": sequence " << i << " wants " << want << "got\n" << r.out;
        }
    }
    auto bad = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompts-file " + q(dir + "/prompts.txt") + " -p hi");
    EXPECT_NE(bad.rc, 0);
    EXPECT_NE(bad.err.find("not both"), std::string::npos) << bad.err;
}

// The speed line counts what was decoded: each sequence's first token is sampled from the prompt
// pass and its last is never fed back, so -n N decodes N - 1 tokens per sequence, and -n 1 none.
TEST(GenerateCli, SpeedLineCountsDecodedTokens) {
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    auto one = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompt-ids 1 -n 1 --temp 0 --ids");
    ASSERT_EQ(one.rc, 0) << one.err;
    EXPECT_NE(one.err.find("generation: 1 tokens in"), std::string::npos) << one.err;
    EXPECT_NE(one.err.find("(no decode step: sampled from the prompt pass)"), std::string::npos) << one.err;
    auto five = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompt-ids 1 -n 5 --temp 0 --ids --ignore-eos");
    ASSERT_EQ(five.rc, 0) << five.err;
    EXPECT_NE(five.err.find("generation: 5 tokens in"), std::string::npos) << five.err;
    EXPECT_NE(five.err.find("tokens/s over the 4 decoded)"), std::string::npos) << five.err;
    const std::string dir = pl::test::make_temp_dir("gen_speed");
    {
        std::ofstream f(dir + "/prompts.txt");
        f << "Once upon a time\nThe little dog\nTom\n";
    }
    auto batch = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " --prompts-file " + q(dir + "/prompts.txt") +
                         " -n 6 --temp 0 --ids --ignore-eos");
    ASSERT_EQ(batch.rc, 0) << batch.err;
    EXPECT_NE(batch.err.find("generation: 18 tokens in"), std::string::npos) << batch.err;
    EXPECT_NE(batch.err.find("tokens/s aggregate over the 15 decoded)"), std::string::npos) << batch.err;
}

TEST(GenerateCli, ConvertedLlama2cCheckpointMatchesRunC) {
    const std::string bin = pl::test::model_file("stories260K/stories260K.bin");
    const std::string tok = pl::test::model_file("stories260K/tok512-ids.bin");
    PL_REQUIRE_DATA(bin, "stories260K/stories260K.bin");
    PL_REQUIRE_DATA(tok, "stories260K/tok512-ids.bin");
    const std::string dir = pl::test::make_temp_dir("llama2c");
    const std::string out = dir + "/stories.gguf";
    auto c = run_cmd(parallama_bin() + " convert --llama2c " + q(bin) + " --tokenizer " + q(tok) + " -o " + q(out));
    ASSERT_EQ(c.rc, 0) << c.err;
    auto r = run_cmd(parallama_bin() + " generate -m " + q(out) + " --prompt-ids 1 -n 200 --temp 0 --ids --kv-type f32");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(parse_ints(r.out), reference_ids(200));
}

TEST(GenerateCli, EvalWritesAllLogitsConsistentWithGreedy) {
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    // Feed BOS + the first 15 reference ids; each row's argmax must be the next reference id.
    auto ref = reference_ids(16);
    std::string ids = "1";
    for (size_t i = 0; i + 1 < ref.size(); ++i) ids += " " + std::to_string(ref[i]);
    const std::string out = pl::test::make_temp_dir("eval") + "/logits.f32";
    auto r = run_cmd(parallama_bin() + " eval -m " + q(gguf) + " --prompt-ids " + q(ids) + " --logits-out " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    const std::string raw = pl::test::read_file(out);
    ASSERT_EQ(raw.size(), 16u * 512u * sizeof(float));
    for (size_t t = 0; t < 16; ++t) {
        const float* row = reinterpret_cast<const float*>(raw.data()) + t * 512;
        int best = 0;
        for (int v = 1; v < 512; ++v)
            if (row[v] > row[best]) best = v;
        EXPECT_EQ(best, ref[t]) << "position " << t;
    }
}

TEST(GenerateCli, SynthLlama70bTwoLayersGenerates) {
    const std::string dir = pl::test::make_temp_dir("synth70b");
    const std::string out = dir + "/l70.gguf";
    auto s = run_cmd(parallama_bin() + " synth --shape llama-70b --layers 2 --type q8_0 -o " + q(out));
    ASSERT_EQ(s.rc, 0) << s.err;
    auto info = run_cmd(parallama_bin() + " generate -m " + q(out) + " -p 'Hello' -n 4 --temp 0 --ids");
    ASSERT_EQ(info.rc, 0) << info.err;
    EXPECT_EQ(parse_ints(info.out).size(), 4u);
    EXPECT_NE(info.err.find("generation: 4 tokens"), std::string::npos) << info.err;
    std::filesystem::remove_all(dir);
}

// The full 32-layer LLaMA-7B shape (q4_0, 3.6 GiB) is written and decodes; the speed line is
// printed. (Speed itself is measured by benchmarks, not asserted here.)
TEST(GenerateCli, SynthLlama7bGeneratesAndReportsSpeed) {
    const std::string dir = pl::test::make_temp_dir("synth7b");
    const std::string out = dir + "/l7b.gguf";
    auto s = run_cmd(parallama_bin() + " synth --shape llama-7b --type q4_0 -o " + q(out));
    ASSERT_EQ(s.rc, 0) << s.err;
    EXPECT_EQ(std::filesystem::file_size(out), 3792144384u);  // 6.74e9 weights at 4.5 bits + norms + header
    auto r = run_cmd(parallama_bin() + " generate -m " + q(out) + " -p 'Hello' -n 3 --temp 0 --ids");
    std::filesystem::remove_all(dir);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(parse_ints(r.out).size(), 3u);
    EXPECT_NE(r.err.find("generation: 3 tokens"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

TEST(GenerateCli, BadInputGivesOneLineError) {
    const std::string dir = pl::test::make_temp_dir("badgen");
    {
        FILE* f = std::fopen((dir + "/junk.gguf").c_str(), "wb");
        std::fputs("GGUF this is not a model", f);
        std::fclose(f);
    }
    for (const std::string args : {" generate -m " + q(dir + "/junk.gguf") + " -n 2",
                                   " generate -m " + q(dir + "/missing.gguf") + " -n 2"}) {
        auto r = run_cmd(parallama_bin() + args);
        EXPECT_NE(r.rc, 0) << args;
        EXPECT_LT(r.rc, 128) << "crashed: " << args;
        EXPECT_FALSE(r.err.empty());
    }
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    for (const std::string args : {" --prompt-ids '1 99999'", " --prompt-ids '1 x'", " --temp -1 --prompt-ids 1"}) {
        auto r = run_cmd(parallama_bin() + " generate -m " + q(gguf) + " -n 2" + args);
        EXPECT_NE(r.rc, 0) << args;
        EXPECT_LT(r.rc, 128) << args;
        EXPECT_NE(r.err.find("error"), std::string::npos) << args << ": " << r.err;
    }
}

}  // namespace

// bench's model rows run the KV cache users get from generate and serve (f16) unless told, and
// say which one they ran.
TEST(GenerateCli, BenchModelRowsRecordTheirKvType) {
    const std::string gguf = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(gguf, "stories260K/stories260K-f32.gguf");
    for (const char* kv : {"", "f32"}) {
        const std::string dir = pl::test::make_temp_dir("bench_kv");
        auto r = run_cmd(parallama_bin() + " bench --suite model -m " + q(gguf) +
                         " --pp 4 --tg 4 --repeat 1 --warmup 0 -t 1 --bw-mib 16 --no-charts -o " + q(dir) +
                         (*kv ? std::string(" --kv-type ") + kv : std::string()));
        ASSERT_EQ(r.rc, 0) << r.err;
        std::ifstream f(dir + "/report.json");
        const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        const std::string want = std::string("\"kv_type\": \"") + (*kv ? kv : "f16") + "\"";
        size_t rows = 0;
        for (size_t at = text.find("\"kv_type\""); at != std::string::npos; at = text.find("\"kv_type\"", at + 1)) {
            EXPECT_EQ(text.compare(at, want.size(), want), 0) << text.substr(at, 20);
            ++rows;
        }
        EXPECT_EQ(rows, 2u) << "pp and tg rows, each with kv_type";
    }
}

// The KV cache's default element type: f16 for the commands that run a model (README), f32 for
// the quality tools, whose figures measure the weights alone.
TEST(GenerateCli, KvTypeDefaultsF16ExceptQualityTools) {
    for (const char* cmd : {"generate", "chat", "serve", "bench"}) {
        auto r = run_cmd(parallama_bin() + " " + cmd + " --help");
        EXPECT_NE(r.out.find("--kv-type TEXT:{f32,f16}=f16"), std::string::npos) << cmd << "\n" << r.out;
    }
    for (const char* cmd : {"perplexity", "kld", "imatrix", "eval"}) {
        auto r = run_cmd(parallama_bin() + " " + cmd + " --help");
        EXPECT_NE(r.out.find("--kv-type TEXT:{f32,f16}=f32"), std::string::npos) << cmd << "\n" << r.out;
    }
}
