// SPDX-License-Identifier: MIT
// `parallama convert` end to end:
//  * llama2.c stories260K -> GGUF equals the reference stories260K-f32.gguf tensor for tensor,
//    byte for byte, with the same hyperparameters and vocabulary;
//  * an HF folder built from the same checkpoint by tests/python/make_hf_model.py (q/k in HF's
//    rotary layout) converts back to exactly the same tensors (F32), and to exactly the fp16/bf16
//    roundings of them (F16 / BF16 shards), so the Q/K un-permutation round-trips;
//  * bad inputs fail with a clear message, exit 1 and leave no output file.
#include "core/fp16.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "quant/formats.h"
#include "test_data.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

std::string q(const std::string& s) { return "'" + s + "'"; }

struct Stories {
    std::string bin, tok, ref;
};

#define STORIES_OR_SKIP(s)                                                            \
    Stories s{pl::test::model_file("stories260K/stories260K.bin"),                    \
              pl::test::model_file("stories260K/tok512-ids.bin"),                     \
              pl::test::model_file("stories260K/stories260K-f32.gguf")};              \
    PL_REQUIRE_DATA(s.bin, "stories260K/stories260K.bin");                            \
    PL_REQUIRE_DATA(s.tok, "stories260K/tok512-ids.bin");                             \
    PL_REQUIRE_DATA(s.ref, "stories260K/stories260K-f32.gguf")

pl::test::CmdResult convert_llama2c(const Stories& s, const std::string& out, const std::string& extra = "") {
    return pl::test::run_cmd(pl::test::parallama_bin() + " convert --llama2c " + q(s.bin) + " --tokenizer " + q(s.tok) +
                             " -o " + q(out) + " " + extra);
}

std::unique_ptr<pl::gguf::File> open_gguf(const std::string& path) {
    auto f = pl::gguf::File::open(path);
    EXPECT_TRUE(f) << f.error_message();
    return f ? std::move(*f) : nullptr;
}

std::vector<float> as_f32(const pl::gguf::TensorInfo& t) {
    std::vector<float> v(static_cast<size_t>(t.n_elements()));
    const auto* tt = pl::type_traits(t.type);
    EXPECT_TRUE(tt && tt->dequantize_row) << t.name;
    if (tt && tt->dequantize_row) tt->dequantize_row(t.data, v.data(), t.n_elements());
    return v;
}

bool no_files_besides(const std::string& dir, const std::vector<std::string>& allowed) {
    for (const auto& e : fs::directory_iterator(dir)) {
        if (std::find(allowed.begin(), allowed.end(), e.path().filename().string()) == allowed.end()) {
            ADD_FAILURE() << "unexpected file left behind: " << e.path();
            return false;
        }
    }
    return true;
}

TEST(ConvertCli, Llama2cStories260KMatchesReferenceGguf) {
    STORIES_OR_SKIP(s);
    const std::string out = pl::test::make_temp_dir("conv-l2c") + "/s.gguf";
    auto r = convert_llama2c(s, out);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("blk.4.ffn_up.weight"), std::string::npos) << "per-tensor progress expected: " << r.err;
    auto ours = open_gguf(out);
    auto ref = open_gguf(s.ref);
    ASSERT_TRUE(ours && ref);

    // Every tensor we write equals the reference's bytes; the reference's only extra tensor is
    // output.weight, a copy of token_embd (the checkpoint shares its classifier).
    for (const auto& t : ours->tensors()) {
        const auto* rt = ref->find_tensor(t.name);
        ASSERT_NE(rt, nullptr) << t.name << " not in the reference";
        EXPECT_EQ(t.type, rt->type) << t.name;
        EXPECT_EQ(t.ne, rt->ne) << t.name;
        ASSERT_EQ(t.nbytes, rt->nbytes) << t.name;
        EXPECT_EQ(std::memcmp(t.data, rt->data, t.nbytes), 0) << t.name << " differs from the reference";
    }
    for (const auto& rt : ref->tensors()) {
        if (ours->find_tensor(rt.name)) continue;
        ASSERT_EQ(rt.name, "output.weight");
        const auto* emb = ours->find_tensor("token_embd.weight");
        ASSERT_EQ(emb->nbytes, rt.nbytes);
        EXPECT_EQ(std::memcmp(emb->data, rt.data, rt.nbytes), 0);
    }
    EXPECT_EQ(ours->tensors().size() + 1, ref->tensors().size());

    for (const char* key : {"llama.context_length", "llama.embedding_length", "llama.block_count",
                            "llama.feed_forward_length", "llama.rope.dimension_count", "llama.attention.head_count",
                            "llama.attention.head_count_kv", "tokenizer.ggml.bos_token_id",
                            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
        auto a = ours->get_u64(key);
        auto b = ref->get_u64(key);
        ASSERT_TRUE(a && b) << key;
        ASSERT_TRUE(a->has_value() && b->has_value()) << key;
        EXPECT_EQ(**a, **b) << key;
    }
    EXPECT_EQ(ours->get_f64("llama.attention.layer_norm_rms_epsilon")->value_or(0),
              ref->get_f64("llama.attention.layer_norm_rms_epsilon")->value_or(1));
    for (const char* key : {"general.architecture", "tokenizer.ggml.model"})
        EXPECT_EQ(ours->get_string(key)->value_or("a"), ref->get_string(key)->value_or("b")) << key;
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
        const auto* a = ours->find(key);
        const auto* b = ref->find(key);
        ASSERT_TRUE(a && b) << key;
        ASSERT_EQ(a->arr.size(), b->arr.size()) << key;
        EXPECT_EQ(a->elem_type, b->elem_type) << key;
        for (size_t i = 0; i < a->arr.size(); ++i) {
            EXPECT_EQ(a->arr[i].s, b->arr[i].s) << key << "[" << i << "]";
            EXPECT_EQ(a->arr[i].i, b->arr[i].i) << key << "[" << i << "]";
            EXPECT_EQ(a->arr[i].f, b->arr[i].f) << key << "[" << i << "]";
        }
    }
    // Keys the reference lacks but llama.cpp reads (defaults spelled out).
    EXPECT_EQ(ours->get_f64("llama.rope.freq_base")->value_or(0), 10000.0);
    EXPECT_EQ(ours->get_u64("general.file_type")->value_or(99), 0u);
    EXPECT_EQ(ours->get_bool("tokenizer.ggml.add_bos_token")->value_or(false), true);
}

TEST(ConvertCli, Llama2cQ8_0KeepsNormsF32AndFallsBackToF16ForOddRows) {
    STORIES_OR_SKIP(s);
    const std::string dir = pl::test::make_temp_dir("conv-q8");
    auto r = convert_llama2c(s, dir + "/q.gguf", "--outtype q8_0 -q");
    ASSERT_EQ(r.rc, 0) << r.err;
    auto g = open_gguf(dir + "/q.gguf");
    auto ref = open_gguf(s.ref);
    ASSERT_TRUE(g && ref);
    EXPECT_EQ(g->get_u64("general.file_type")->value_or(0), 7u);
    for (const auto& t : g->tensors()) {
        pl::GgmlType want = pl::GgmlType::Q8_0;
        if (t.ne.size() == 1) want = pl::GgmlType::F32;
        else if (t.ne[0] % 32 != 0) want = pl::GgmlType::F16;  // ffn_down: rows of 172
        EXPECT_EQ(t.type, static_cast<uint32_t>(want)) << t.name;
        // Dequantized weights stay close to the f32 reference.
        auto a = as_f32(t);
        auto b = as_f32(*ref->find_tensor(t.name));
        double num = 0, den = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        EXPECT_LT(num / den, 1e-4) << t.name;
    }
}

TEST(ConvertCli, TruncatedOrCorruptCheckpointFailsCleanly) {
    STORIES_OR_SKIP(s);
    const std::string dir = pl::test::make_temp_dir("conv-bad");
    std::string bytes = pl::test::read_file(s.bin);
    {
        std::ofstream(dir + "/trunc.bin", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 100));
        std::string bad = bytes;
        const int32_t heads = 7;  // 64 % 7 != 0
        std::memcpy(bad.data() + 12, &heads, 4);
        std::ofstream(dir + "/heads.bin", std::ios::binary).write(bad.data(), static_cast<std::streamsize>(bad.size()));
    }
    Stories t = s;
    t.bin = dir + "/trunc.bin";
    auto r = convert_llama2c(t, dir + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("parallama convert: error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(fmt::format("file has {} bytes", bytes.size() - 100)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(fmt::format("needs exactly {} bytes", bytes.size())), std::string::npos) << r.err;
    t.bin = dir + "/heads.bin";
    r = convert_llama2c(t, dir + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("n_heads=7"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a multiple of n_heads"), std::string::npos) << r.err;
    no_files_besides(dir, {"trunc.bin", "heads.bin"});

    r = convert_llama2c(s, dir + "/out.gguf", "--outtype q4_7");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("q4_7"), std::string::npos) << r.err;
    // An output in a missing directory fails at write time and leaves nothing behind.
    r = convert_llama2c(s, dir + "/nodir/out.gguf", "-q");
    EXPECT_EQ(r.rc, 1);
    EXPECT_FALSE(fs::exists(dir + "/nodir"));
}

// Builds an HF folder with tests/python/make_hf_model.py; skips when python deps are missing.
bool make_hf(const Stories& s, const std::string& dir, const std::string& dtype, const std::string& layout,
             std::string* why) {
    static const bool have_python =
        pl::test::run_cmd("python3 -c 'import numpy, safetensors' >/dev/null 2>&1").rc == 0;
    if (!have_python) {
        *why = "python3 with numpy + safetensors (tests/requirements.txt) not available";
        return false;
    }
    auto r = pl::test::run_cmd("python3 " + q(std::string(PL_SOURCE_DIR) + "/tests/python/make_hf_model.py") +
                               " --checkpoint " + q(s.bin) + " --tokenizer " + q(s.tok) + " --out " + q(dir) +
                               " --dtype " + dtype + " --layout " + layout);
    if (r.rc != 0) {
        *why = "make_hf_model.py failed: " + r.err;
        return false;
    }
    return true;
}

#define MAKE_HF_OR_SKIP(s, dir, dtype, layout)                                                  \
    do {                                                                                        \
        std::string why_;                                                                       \
        if (!make_hf(s, dir, dtype, layout, &why_)) {                                           \
            if (why_.find("failed") != std::string::npos || pl::test::require_test_data())      \
                FAIL() << why_;                                                                 \
            GTEST_SKIP() << why_;                                                               \
        }                                                                                       \
    } while (0)

pl::test::CmdResult convert_hf(const std::string& dir, const std::string& out, const std::string& extra = "-q") {
    return pl::test::run_cmd(pl::test::parallama_bin() + " convert --hf " + q(dir) + " -o " + q(out) + " " + extra);
}

TEST(ConvertCli, HfF32RoundTripsToTheLlama2cTensorsExactly) {
    STORIES_OR_SKIP(s);
    const std::string tmp = pl::test::make_temp_dir("conv-hf32");
    MAKE_HF_OR_SKIP(s, tmp + "/hf", "F32", "single");
    ASSERT_EQ(convert_llama2c(s, tmp + "/l2c.gguf", "-q").rc, 0);
    auto r = convert_hf(tmp + "/hf", tmp + "/hf.gguf", "");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("MiB"), std::string::npos) << r.err;
    auto a = open_gguf(tmp + "/hf.gguf");
    auto b = open_gguf(tmp + "/l2c.gguf");
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const auto& t : a->tensors()) {
        const auto* bt = b->find_tensor(t.name);
        ASSERT_NE(bt, nullptr) << t.name;
        EXPECT_EQ(t.type, bt->type) << t.name;
        EXPECT_EQ(t.ne, bt->ne) << t.name;
        ASSERT_EQ(t.nbytes, bt->nbytes) << t.name;
        EXPECT_EQ(std::memcmp(t.data, bt->data, t.nbytes), 0) << t.name;
    }
    // The test is only meaningful if the HF file really holds permuted rows.
    auto st = pl::safetensors::File::open(tmp + "/hf/model.safetensors");
    ASSERT_TRUE(st) << st.error_message();
    const auto* hq = (*st)->find("model.layers.0.self_attn.q_proj.weight");
    ASSERT_NE(hq, nullptr);
    EXPECT_NE(std::memcmp(hq->data, a->find_tensor("blk.0.attn_q.weight")->data, hq->nbytes()), 0);
    const auto* hk = (*st)->find("model.layers.0.self_attn.k_proj.weight");
    EXPECT_NE(std::memcmp(hk->data, a->find_tensor("blk.0.attn_k.weight")->data, hk->nbytes()), 0);

    for (const char* key : {"llama.context_length", "llama.embedding_length", "llama.block_count",
                            "llama.feed_forward_length", "llama.rope.dimension_count", "llama.attention.head_count",
                            "llama.attention.head_count_kv", "tokenizer.ggml.bos_token_id",
                            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"})
        EXPECT_EQ(a->get_u64(key)->value_or(1u << 31), b->get_u64(key)->value_or(1u << 30)) << key;
    EXPECT_FLOAT_EQ(static_cast<float>(a->get_f64("llama.attention.layer_norm_rms_epsilon")->value_or(0)), 1e-5f);
    EXPECT_EQ(a->get_string("tokenizer.ggml.model")->value_or(""), "llama");
    EXPECT_EQ(a->get_bool("tokenizer.ggml.add_bos_token")->value_or(false), true);
    EXPECT_NE(a->get_string("tokenizer.chat_template")->value_or(""), "");
    const auto* ta = a->find("tokenizer.ggml.tokens");
    const auto* tb = b->find("tokenizer.ggml.tokens");
    ASSERT_TRUE(ta && tb);
    ASSERT_EQ(ta->arr.size(), tb->arr.size());
    for (size_t i = 0; i < ta->arr.size(); ++i) EXPECT_EQ(ta->arr[i].s, tb->arr[i].s) << i;
    const auto* ya = a->find("tokenizer.ggml.token_type");
    const auto* yb = b->find("tokenizer.ggml.token_type");
    ASSERT_TRUE(ya && yb);
    for (size_t i = 0; i < ya->arr.size(); ++i) EXPECT_EQ(ya->arr[i].i, yb->arr[i].i) << i;
}

// F16 / BF16 shards hold the RNE roundings of the llama2.c floats; converting with --outtype f32
// must give exactly those roundings back (so: the llama2c tensors within fp16/bf16 rounding).
void check_half_round_trip(const char* dtype, float (*round)(float)) {
    Stories s{pl::test::model_file("stories260K/stories260K.bin"), pl::test::model_file("stories260K/tok512-ids.bin"), ""};
    const std::string tmp = pl::test::make_temp_dir(std::string("conv-hf-") + dtype);
    std::string why;
    if (!make_hf(s, tmp + "/hf", dtype, "sharded", &why)) {
        if (why.find("failed") != std::string::npos || pl::test::require_test_data()) FAIL() << why;
        GTEST_SKIP() << why;
    }
    ASSERT_TRUE(fs::exists(tmp + "/hf/model.safetensors.index.json"));
    ASSERT_EQ(convert_llama2c(s, tmp + "/l2c.gguf", "-q").rc, 0);
    auto r = convert_hf(tmp + "/hf", tmp + "/hf.gguf");
    ASSERT_EQ(r.rc, 0) << r.err;
    auto a = open_gguf(tmp + "/hf.gguf");
    auto b = open_gguf(tmp + "/l2c.gguf");
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (const auto& t : a->tensors()) {
        const auto* bt = b->find_tensor(t.name);
        ASSERT_NE(bt, nullptr) << t.name;
        ASSERT_EQ(t.type, static_cast<uint32_t>(pl::GgmlType::F32)) << t.name;
        ASSERT_EQ(t.ne, bt->ne) << t.name;
        auto va = as_f32(t);
        auto vb = as_f32(*bt);
        size_t bad = 0;
        for (size_t i = 0; i < va.size(); ++i) bad += va[i] != round(vb[i]);
        EXPECT_EQ(bad, 0u) << t.name << ": elements differing from the " << dtype << " rounding";
    }
}

TEST(ConvertCli, HfShardedBf16MatchesWithinBf16Rounding) {
    STORIES_OR_SKIP(s);
    check_half_round_trip("BF16", [](float x) { return pl::bf16_to_fp32(pl::fp32_to_bf16(x)); });
}

TEST(ConvertCli, HfShardedF16MatchesWithinF16Rounding) {
    STORIES_OR_SKIP(s);
    check_half_round_trip("F16", [](float x) { return pl::fp16_to_fp32(pl::fp32_to_fp16(x)); });
}

TEST(ConvertCli, HfErrorsNameTheProblem) {
    STORIES_OR_SKIP(s);
    const std::string tmp = pl::test::make_temp_dir("conv-hf-bad");
    MAKE_HF_OR_SKIP(s, tmp + "/hf", "F32", "single");
    const std::string cfg_path = tmp + "/hf/config.json";
    const std::string cfg = pl::test::read_file(cfg_path);
    auto with_cfg = [&](const std::string& from, const std::string& to) {
        std::string c = cfg;
        const size_t at = c.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) c.replace(at, from.size(), to);
        std::ofstream(cfg_path) << c;
    };
    // One layer more than the file holds: every tensor of layer 5 is reported missing.
    with_cfg("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 6");
    auto r = convert_hf(tmp + "/hf", tmp + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("missing model.layers.5.self_attn.q_proj.weight"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("missing model.layers.5.mlp.up_proj.weight"), std::string::npos) << r.err;
    // Wrong intermediate size: shapes mismatch.
    with_cfg("\"intermediate_size\": 172", "\"intermediate_size\": 176");
    r = convert_hf(tmp + "/hf", tmp + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("model.layers.0.mlp.gate_proj.weight has shape [172, 64], expected [176, 64]"),
              std::string::npos) << r.err;
    with_cfg("LlamaForCausalLM", "GPT2LMHeadModel");
    r = convert_hf(tmp + "/hf", tmp + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("GPT2LMHeadModel"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp + "/out.gguf"));

    // A corrupt safetensors file (header length past the end) is reported with its path.
    std::ofstream(cfg_path) << cfg;
    {
        std::fstream f(tmp + "/hf/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        const uint64_t huge = 1ull << 40;
        f.write(reinterpret_cast<const char*>(&huge), 8);
    }
    r = convert_hf(tmp + "/hf", tmp + "/out.gguf");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("header length"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp + "/out.gguf"));
}

// LLaMA-3 style folder: byte-level (gpt2) BPE tokenizer with merges, llama3 rope scaling -> rope_freqs.
TEST(ConvertCli, HfByteLevelTokenizerAndLlama3RopeFreqs) {
    STORIES_OR_SKIP(s);
    const std::string tmp = pl::test::make_temp_dir("conv-hf-l3");
    MAKE_HF_OR_SKIP(s, tmp + "/hf", "F32", "single");
    using nlohmann::json;
    json cfg = json::parse(pl::test::read_file(tmp + "/hf/config.json"));
    cfg["rope_theta"] = 10000.0;
    cfg["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    std::ofstream(tmp + "/hf/config.json") << cfg.dump(1);
    json tok = json::parse(pl::test::read_file(tmp + "/hf/tokenizer.json"));
    tok["normalizer"] = nullptr;
    tok["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({
        {{"type", "Split"}, {"pattern", {{"Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
         {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}};
    tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    tok["model"]["byte_fallback"] = false;
    tok["model"]["merges"] = json::array({json::array({"<", "3"}), "<3 >"});
    std::ofstream(tmp + "/hf/tokenizer.json") << tok.dump(1);

    auto r = convert_hf(tmp + "/hf", tmp + "/l3.gguf");
    ASSERT_EQ(r.rc, 0) << r.err;
    auto g = open_gguf(tmp + "/l3.gguf");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->get_string("tokenizer.ggml.model")->value_or(""), "gpt2");
    EXPECT_EQ(g->get_string("tokenizer.ggml.pre")->value_or(""), "llama-bpe");
    EXPECT_EQ(g->find("tokenizer.ggml.scores"), nullptr);
    const auto* merges = g->find("tokenizer.ggml.merges");
    ASSERT_NE(merges, nullptr);
    ASSERT_EQ(merges->arr.size(), 2u);
    EXPECT_EQ(merges->arr[0].s, "< 3");
    EXPECT_EQ(merges->arr[1].s, "<3 >");
    const auto* types = g->find("tokenizer.ggml.token_type");
    ASSERT_NE(types, nullptr);
    EXPECT_EQ(types->arr.at(1).i, 3);  // <s>: special added token -> Control
    EXPECT_EQ(types->arr.at(5).i, 1);

    // llama.cpp's factors for head_dim 8, theta 1e4: wavelengths 2*pi*{1, 10, 100, 1000}; only the
    // last lies between 8192/4 and 8192/1 and is smoothed.
    const auto* rf = g->find_tensor("rope_freqs.weight");
    ASSERT_NE(rf, nullptr);
    EXPECT_EQ(rf->type, static_cast<uint32_t>(pl::GgmlType::F32));
    ASSERT_EQ(rf->ne, (std::vector<int64_t>{4}));
    float f[4];
    std::memcpy(f, rf->data, sizeof f);
    EXPECT_EQ(f[0], 1.0f);
    EXPECT_EQ(f[1], 1.0f);
    EXPECT_EQ(f[2], 1.0f);
    const double wavelen = 2 * 3.14159265358979 * 1000.0;
    const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
    EXPECT_NEAR(f[3], 1.0 / ((1 - smooth) / 8.0 + smooth), 1e-4);
}

}  // namespace
