// SPDX-License-Identifier: MIT
// Quality-tool math on hand-made logits (KLD, NLL/PPL, standard errors, percentiles), llama.cpp's
// chunking, importance-matrix accumulation on a tiny run of stories260K checked against an
// independent computation, and the imatrix GGUF round trip through load_imatrix.
#include "test_data.h"

#include "eval/imatrix_collect.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "format/gguf.h"
#include "kernels/cpu/ops.h"
#include "model/llama.h"
#include "quant/formats.h"
#include "quant/imatrix.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

namespace {

using namespace pl;
using namespace pl::eval;

std::vector<float> random_logits(int n, uint32_t seed, float scale = 3.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
}

TEST(EvalMath, KldOfIdenticalRowsIsExactlyZero) {
    for (uint32_t seed : {1u, 2u, 3u}) {
        auto a = random_logits(49152, seed, 8.0f);
        EXPECT_EQ(kl_divergence(a.data(), a.data(), static_cast<int64_t>(a.size())), 0.0);
    }
}

TEST(EvalMath, KldMatchesClosedForm) {
    // P = (0.1, 0.2, 0.3, 0.4) from log-probabilities (plus an arbitrary shift); Q uniform.
    std::vector<float> p = {std::log(0.1f) + 5, std::log(0.2f) + 5, std::log(0.3f) + 5, std::log(0.4f) + 5};
    std::vector<float> u = {-2, -2, -2, -2};
    double want = 0;
    for (double pi : {0.1, 0.2, 0.3, 0.4}) want += pi * std::log(pi / 0.25);
    EXPECT_NEAR(kl_divergence(p.data(), u.data(), 4), want, 1e-6);
    // KL(U || P) = sum 0.25 log(0.25 / p_i): not symmetric.
    double back = 0;
    for (double pi : {0.1, 0.2, 0.3, 0.4}) back += 0.25 * std::log(0.25 / pi);
    EXPECT_NEAR(kl_divergence(u.data(), p.data(), 4), back, 1e-6);
    EXPECT_GT(std::abs(want - back), 1e-3);
    // Two Bernoulli-like rows: KL = a log(a/b) + (1-a) log((1-a)/(1-b)).
    const double a = 1 / (1 + std::exp(-1.5)), b = 1 / (1 + std::exp(0.5));
    std::vector<float> x = {0.0f, 1.5f}, y = {0.0f, -0.5f};
    EXPECT_NEAR(kl_divergence(x.data(), y.data(), 2), b * 0 + a * std::log(a / b) + (1 - a) * std::log((1 - a) / (1 - b)), 1e-9);
}

TEST(EvalMath, KldIsShiftInvariantAndPositive) {
    auto a = random_logits(1000, 7);
    auto b = a;
    for (float& v : b) v += 12.5f;  // same distribution
    EXPECT_NEAR(kl_divergence(a.data(), b.data(), 1000), 0.0, 1e-9);
    auto c = random_logits(1000, 8);
    EXPECT_GT(kl_divergence(a.data(), c.data(), 1000), 0.1);
}

TEST(EvalMath, UniformModelHasPerplexityNVocab) {
    const int n_vocab = 32000;
    std::vector<float> flat(static_cast<size_t>(n_vocab), 0.25f);
    MeanStat nll;
    for (int32_t t : {0, 5, 31999, 1234}) nll.add(token_nll(flat.data(), n_vocab, t));
    const PplEstimate e = ppl_estimate(nll);
    EXPECT_NEAR(e.ppl, n_vocab, 1e-6 * n_vocab);
    EXPECT_NEAR(e.mean_nll, std::log(n_vocab), 1e-9);
    EXPECT_EQ(e.ppl_err, 0.0);  // every token equally hard
    EXPECT_EQ(e.n_tokens, 4);
}

TEST(EvalMath, TokenNllIsMinusLogSoftmax) {
    std::vector<float> l = {1.0f, 2.0f, 3.0f};
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    EXPECT_NEAR(token_nll(l.data(), 3, 2), -std::log(std::exp(3.0) / z), 1e-12);
    EXPECT_NEAR(log_sum_exp(l.data(), 3), std::log(z), 1e-12);
    // Huge logits do not overflow.
    std::vector<float> big = {1000.0f, 1000.0f};
    EXPECT_NEAR(token_nll(big.data(), 2, 0), std::log(2.0), 1e-12);
    EXPECT_EQ(argmax(l.data(), 3), 2);
    std::vector<float> tie = {5.0f, 5.0f, 1.0f};
    EXPECT_EQ(argmax(tie.data(), 3), 0);
}

TEST(EvalMath, StandardErrors) {
    MeanStat s;
    for (double x : {1.0, 2.0, 3.0, 4.0}) s.add(x);
    EXPECT_DOUBLE_EQ(s.mean(), 2.5);
    // Sample standard deviation / sqrt(n): sqrt((5/3) / 4).
    EXPECT_NEAR(s.stderr_mean(), std::sqrt(5.0 / 12.0), 1e-12);
    const PplEstimate e = ppl_estimate(s);
    EXPECT_NEAR(e.ppl, std::exp(2.5), 1e-9);
    EXPECT_NEAR(e.ppl_err, std::exp(2.5) * std::sqrt(5.0 / 12.0), 1e-9);
    MeanStat one;
    one.add(3.0);
    EXPECT_EQ(one.stderr_mean(), 0.0);
}

TEST(EvalMath, PercentileInterpolates) {
    std::vector<float> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    EXPECT_DOUBLE_EQ(percentile(v, 0.5), 5.0);
    EXPECT_DOUBLE_EQ(percentile(v, 0.99), 9.9);
    EXPECT_DOUBLE_EQ(percentile(v, 1.0), 10.0);
    EXPECT_DOUBLE_EQ(percentile(v, 0.0), 0.0);
    std::vector<float> w = {0, 10};
    EXPECT_DOUBLE_EQ(percentile(w, 0.25), 2.5);
}

TEST(EvalMath, KldAccumulatorSummary) {
    KldAccumulator acc;
    // nll_q - nll_base = 0.1 on every token: ratio = exp(0.1) exactly, zero spread.
    for (int i = 0; i < 100; ++i) acc.add(0.01 * i, 2.0 + 0.01 * i, 2.1 + 0.01 * i, i % 4 != 0);
    const KldSummary s = acc.summary();
    EXPECT_EQ(s.n_tokens, 100);
    EXPECT_NEAR(s.kld_mean, 0.495, 1e-12);
    EXPECT_NEAR(s.kld_median, 0.495, 1e-6);
    EXPECT_NEAR(s.kld_p99, 0.9801, 1e-6);
    EXPECT_NEAR(s.kld_max, 0.99, 1e-12);
    EXPECT_DOUBLE_EQ(s.top1, 0.75);
    EXPECT_NEAR(s.top1_err, std::sqrt(0.75 * 0.25 / 99), 1e-12);
    EXPECT_NEAR(s.ln_ratio, 0.1, 1e-9);
    EXPECT_NEAR(s.ratio, std::exp(0.1), 1e-9);
    EXPECT_NEAR(s.ln_ratio_err, 0.0, 1e-7);
    EXPECT_NEAR(s.ratio, s.ppl_q.ppl / s.ppl_base.ppl, 1e-9);
    // add_row computes the same quantities from logits.
    KldAccumulator rows;
    auto a = random_logits(500, 11), b = random_logits(500, 12);
    rows.add_row(a.data(), b.data(), 500, 42);
    const KldSummary r = rows.summary();
    EXPECT_NEAR(r.kld_mean, kl_divergence(a.data(), b.data(), 500), 1e-12);
    EXPECT_NEAR(r.ppl_base.mean_nll, token_nll(a.data(), 500, 42), 1e-12);
    EXPECT_NEAR(r.ppl_q.mean_nll, token_nll(b.data(), 500, 42), 1e-12);
    EXPECT_EQ(r.top1, argmax(a.data(), 500) == argmax(b.data(), 500) ? 1.0 : 0.0);
}

TEST(EvalChunks, LlamaCppChunking) {
    std::vector<int32_t> ids(1000);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i + 10);
    auto c = make_chunks(ids, 128, 0, 1);
    ASSERT_TRUE(c) << c.error_message();
    EXPECT_EQ(c->n_chunks(), 7);  // 1000 / 128, the partial chunk dropped
    EXPECT_EQ(c->first, 64);
    EXPECT_EQ(c->scored_per_chunk(), 63);
    EXPECT_EQ(c->data[0][0], 1);
    EXPECT_EQ(c->data[0][1], 11);
    EXPECT_EQ(c->data[2][0], 1);  // BOS replaces the chunk's first token
    EXPECT_EQ(c->data[2][1], 10 + 257);
    EXPECT_EQ(c->data[6][127], 10 + 7 * 128 - 1);
    auto limited = make_chunks(ids, 128, 3, -1);
    ASSERT_TRUE(limited);
    EXPECT_EQ(limited->n_chunks(), 3);
    EXPECT_EQ(limited->data[1][0], 10 + 128);  // no BOS: untouched
    auto too_short = make_chunks(ids, 2048, 0, 1);
    ASSERT_FALSE(too_short);
    EXPECT_NE(too_short.error_message().find("1000 tokens"), std::string::npos) << too_short.error_message();
    EXPECT_FALSE(make_chunks(ids, 4, 0, 1));
}

TEST(EvalImatrix, CollectorMeansHandMade) {
    WeightView w;
    w.name = "blk.0.attn_q.weight";
    w.cols = 3;
    ImatrixCollector c;
    const float x1[3] = {1, 2, 3}, x2[3] = {3, 2, -1};
    c.observe(w, x1);
    c.observe(w, x2);
    WeightView k = w;
    k.name = "blk.0.attn_k.weight";
    c.observe(k, x1);
    const Imatrix m = c.result("t.txt", 1, 2, 2);
    ASSERT_EQ(m.data.size(), 2u);
    EXPECT_EQ(m.data.at("blk.0.attn_q.weight"), (std::vector<float>{5.0f, 4.0f, 5.0f}));
    EXPECT_EQ(m.data.at("blk.0.attn_k.weight"), (std::vector<float>{1.0f, 4.0f, 9.0f}));
    EXPECT_EQ(c.count("blk.0.attn_q.weight"), 2u);
    EXPECT_EQ(m.dataset, "t.txt");
}

// --covariance: per full 256-column group the mean of x x^T, equal to a direct double sum (across
// the collector's batching: 70 inputs are more than two batches of 32); columns past the last full
// group (here 64) have none.
TEST(EvalImatrix, CollectorCovarianceMatchesDirectSum) {
    WeightView w;
    w.name = "blk.0.ffn_down.weight";
    w.cols = 2 * 256 + 64;
    ImatrixCollector c(/*covariance=*/true);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<std::vector<float>> xs(70, std::vector<float>(static_cast<size_t>(w.cols)));
    for (auto& x : xs) {
        for (auto& v : x) v = nd(rng);
        c.observe(w, x.data());
    }
    const Imatrix m = c.result("t.txt", 1, 70, 70);
    ASSERT_EQ(m.cov.count(w.name), 1u);
    const std::vector<float>& cov = m.cov.at(w.name);
    ASSERT_EQ(cov.size(), 2u * 256 * 256);
    for (int g = 0; g < 2; ++g)
        for (int i : {0, 17, 255})
            for (int j : {0, 3, 200, 255}) {
                double s = 0;
                for (const auto& x : xs) s += static_cast<double>(x[g * 256 + i]) * x[g * 256 + j];
                EXPECT_NEAR(cov[(static_cast<size_t>(g) * 256 + i) * 256 + j], s / 70, 1e-5) << g << " " << i << " " << j;
            }
    EXPECT_NEAR(cov[5 * 256 + 5], m.data.at(w.name)[5], 1e-5) << "the diagonal is the imatrix";
    ImatrixCollector plain;
    plain.observe(w, xs[0].data());
    EXPECT_TRUE(plain.result("t.txt", 1, 1, 1).cov.empty()) << "no covariance unless asked";
}

// A tiny run on stories260K: every matrix is recorded once per token, q/k/v (and gate/up) share
// their input, and blk.0.attn_q's means equal rmsnorm(embedding) * attn_norm computed here.
TEST(EvalImatrix, TinyRunMatchesIndependentComputation) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = Model::load(path);
    ASSERT_TRUE(model) << model.error_message();
    const ModelConfig& cfg = (*model)->config();
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> tok(0, cfg.vocab_size - 1);
    std::vector<int32_t> ids(100);
    for (auto& t : ids) t = tok(rng);
    auto chunks = make_chunks(ids, 32, 0, 1);
    ASSERT_TRUE(chunks);
    ASSERT_EQ(chunks->n_chunks(), 3);
    for (bool reference : {true, false}) {
        auto m = collect_imatrix(**model, *chunks, reference, "random");
        ASSERT_TRUE(m) << m.error_message();
        EXPECT_EQ(m->token_count, 96u);
        EXPECT_EQ(m->chunk_count, 3u);
        EXPECT_EQ(m->chunk_size, 32u);
        EXPECT_EQ(m->data.size(), static_cast<size_t>(7 * cfg.n_layers + 1));  // + the output head
        for (int l = 0; l < cfg.n_layers; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            ASSERT_TRUE(m->find(p + "attn_q.weight"));
            EXPECT_EQ(*m->find(p + "attn_q.weight"), *m->find(p + "attn_k.weight"));
            EXPECT_EQ(*m->find(p + "attn_q.weight"), *m->find(p + "attn_v.weight"));
            EXPECT_EQ(*m->find(p + "ffn_gate.weight"), *m->find(p + "ffn_up.weight"));
            EXPECT_EQ(m->find(p + "ffn_down.weight")->size(), static_cast<size_t>(cfg.hidden_dim));
            EXPECT_EQ(m->find(p + "attn_output.weight")->size(), static_cast<size_t>(cfg.n_heads * cfg.head_dim));
        }
        const std::string head = cfg.tied_embeddings ? "token_embd.weight" : "output.weight";
        ASSERT_TRUE(m->find(head)) << head;
        // Independent: mean over tokens of (rmsnorm(embd[t]) * attn_norm)^2 for layer 0.
        std::vector<double> want(static_cast<size_t>(cfg.dim), 0.0);
        std::vector<float> e(static_cast<size_t>(cfg.dim)), xn(e.size());
        for (const auto& chunk : chunks->data)
            for (int32_t t : chunk) {
                dequantize_row((*model)->token_embd(), t, e.data());
                rmsnorm(xn.data(), e.data(), (*model)->layer(0).attn_norm.data(), cfg.dim, cfg.rms_eps);
                for (int j = 0; j < cfg.dim; ++j) want[static_cast<size_t>(j)] += double(xn[j]) * xn[j];
            }
        const std::vector<float>& got = *m->find("blk.0.attn_q.weight");
        for (int j = 0; j < cfg.dim; ++j)
            EXPECT_NEAR(got[static_cast<size_t>(j)], want[static_cast<size_t>(j)] / 96.0, 1e-5 * (1 + want[static_cast<size_t>(j)] / 96.0))
                << "column " << j;
    }
}

TEST(EvalImatrix, GgufRoundTripThroughLoadImatrix) {
    Imatrix m;
    m.dataset = "calibration.txt";
    m.chunk_count = 7;
    m.chunk_size = 512;
    m.token_count = 3584;
    m.data["blk.0.attn_q.weight"] = {0.5f, 1.5f, 0.0f, 1e-9f};
    m.data["blk.0.ffn_down.weight"] = std::vector<float>(96, 2.0f);
    const std::string dir = pl::test::make_temp_dir("imatrix_rt");
    const std::string path = dir + "/imatrix.gguf";
    ASSERT_TRUE(save_imatrix(m, path));
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f) << f.error_message();
    // The exact on-disk contract the quantizer relies on.
    const gguf::TensorInfo* t = (*f)->find_tensor("blk.0.attn_q.weight.in_sum2");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->type, static_cast<uint32_t>(GgmlType::F32));
    EXPECT_EQ(t->ne, (std::vector<int64_t>{4}));
    ASSERT_TRUE((*f)->find("imatrix.chunk_count"));
    EXPECT_EQ((*f)->find("imatrix.chunk_count")->type, gguf::ValueType::U32);
    EXPECT_EQ((*f)->find("imatrix.chunk_size")->type, gguf::ValueType::U32);
    EXPECT_EQ((*f)->find("imatrix.token_count")->type, gguf::ValueType::U64);
    EXPECT_EQ((*f)->find("imatrix.dataset")->s, "calibration.txt");

    auto back = load_imatrix(path);
    ASSERT_TRUE(back) << back.error_message();
    EXPECT_EQ(back->data, m.data);
    EXPECT_EQ(back->dataset, m.dataset);
    EXPECT_EQ(back->chunk_count, 7u);
    EXPECT_EQ(back->chunk_size, 512u);
    EXPECT_EQ(back->token_count, 3584u);
    EXPECT_EQ(back->find("nope"), nullptr);
    auto ok = back->find_checked("blk.0.attn_q.weight", 4);
    ASSERT_TRUE(ok);
    EXPECT_NE(*ok, nullptr);
    auto absent = back->find_checked("blk.9.attn_q.weight", 4);
    ASSERT_TRUE(absent);
    EXPECT_EQ(*absent, nullptr);
    auto bad = back->find_checked("blk.0.attn_q.weight", 576);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error_message().find("576"), std::string::npos) << bad.error_message();
}

std::span<const uint8_t> bytes_of(const std::vector<float>& v) {
    return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(EvalImatrix, LoadRejectsBadFilesAndReadsLlamaCppCounts) {
    const std::string dir = pl::test::make_temp_dir("imatrix_bad");
    const std::vector<float> good = {1, 2, 3, 4};
    {  // no *.in_sum2 tensors at all
        gguf::Writer w;
        w.add_tensor_data("blk.0.attn_q.weight", static_cast<uint32_t>(GgmlType::F32), {4}, bytes_of(good));
        ASSERT_TRUE(w.write(dir + "/none.gguf"));
        auto r = load_imatrix(dir + "/none.gguf");
        ASSERT_FALSE(r);
        EXPECT_NE(r.error_message().find("not an importance matrix"), std::string::npos) << r.error_message();
    }
    {  // negative value
        const std::vector<float> neg = {1, -2, 3, 4};
        gguf::Writer w;
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F32), {4}, bytes_of(neg));
        ASSERT_TRUE(w.write(dir + "/neg.gguf"));
        auto r = load_imatrix(dir + "/neg.gguf");
        ASSERT_FALSE(r);
        EXPECT_NE(r.error_message().find("'a.weight.in_sum2' column 1"), std::string::npos) << r.error_message();
    }
    {  // 2-D with more than one row
        const std::vector<float> two(8, 1.0f);
        gguf::Writer w;
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F32), {4, 2}, bytes_of(two));
        ASSERT_TRUE(w.write(dir + "/2d.gguf"));
        auto r = load_imatrix(dir + "/2d.gguf");
        ASSERT_FALSE(r);
        EXPECT_NE(r.error_message().find("shape [cols]"), std::string::npos) << r.error_message();
    }
    {  // wrong type
        std::vector<uint8_t> f16(8, 0);
        gguf::Writer w;
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F16), {4}, f16);
        ASSERT_TRUE(w.write(dir + "/f16.gguf"));
        auto r = load_imatrix(dir + "/f16.gguf");
        ASSERT_FALSE(r);
        EXPECT_NE(r.error_message().find("expected f32"), std::string::npos) << r.error_message();
    }
    {  // wrong metadata type
        gguf::Writer w;
        w.set("imatrix.dataset", gguf::Value::make_u32(3));
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F32), {4}, bytes_of(good));
        ASSERT_TRUE(w.write(dir + "/meta.gguf"));
        auto r = load_imatrix(dir + "/meta.gguf");
        ASSERT_FALSE(r);
        EXPECT_NE(r.error_message().find("imatrix.dataset"), std::string::npos) << r.error_message();
    }
    {  // llama.cpp layout: sums [cols, 1] with a count
        const std::vector<float> count = {4.0f};
        gguf::Writer w;
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F32), {4, 1}, bytes_of(good));
        w.add_tensor_data("a.weight.counts", static_cast<uint32_t>(GgmlType::F32), {1, 1}, bytes_of(count));
        ASSERT_TRUE(w.write(dir + "/llamacpp.gguf"));
        auto r = load_imatrix(dir + "/llamacpp.gguf");
        ASSERT_TRUE(r) << r.error_message();
        EXPECT_EQ(r->data.at("a.weight"), (std::vector<float>{0.25f, 0.5f, 0.75f, 1.0f}));
    }
    auto missing = load_imatrix(dir + "/does-not-exist.gguf");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error_message().find("does-not-exist.gguf"), std::string::npos) << missing.error_message();
}

TEST(EvalImatrix, CovarianceRoundTripAndBadShapes) {
    Imatrix m;
    m.data["blk.0.ffn_down.weight"] = std::vector<float>(512 + 64, 1.0f);
    std::vector<float> cov(2 * 256 * 256);
    for (size_t i = 0; i < cov.size(); ++i) cov[i] = static_cast<float>(i % 977) * 0.25f;
    m.cov["blk.0.ffn_down.weight"] = cov;
    const std::string dir = pl::test::make_temp_dir("imatrix_cov");
    ASSERT_TRUE(save_imatrix(m, dir + "/cov.gguf"));
    auto f = gguf::File::open(dir + "/cov.gguf");
    ASSERT_TRUE(f) << f.error_message();
    const gguf::TensorInfo* t = (*f)->find_tensor("blk.0.ffn_down.weight.in_cov");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->ne, (std::vector<int64_t>{256, 256, 2}));
    auto back = load_imatrix(dir + "/cov.gguf");
    ASSERT_TRUE(back) << back.error_message();
    EXPECT_EQ(back->cov, m.cov);
    // A file of one diagonal (`cols` values, for weight "a") and one covariance tensor (one group,
    // named for `cov_of`) must fail to load with `want` in the message.
    auto expect_rejected = [&](const char* file, int64_t cols, const std::string& cov_of, const std::string& want) {
        gguf::Writer w;
        const std::vector<float> diag(static_cast<size_t>(cols), 1.0f), one(256 * 256, 1.0f);
        w.add_tensor_data("a.weight.in_sum2", static_cast<uint32_t>(GgmlType::F32), {cols}, bytes_of(diag));
        w.add_tensor_data(cov_of + ".in_cov", static_cast<uint32_t>(GgmlType::F32), {256, 256, 1}, bytes_of(one));
        ASSERT_TRUE(w.write(dir + "/" + file));
        auto r = load_imatrix(dir + "/" + file);
        ASSERT_FALSE(r) << file;
        EXPECT_NE(r.error_message().find(want), std::string::npos) << r.error_message();
    };
    expect_rejected("short.gguf", 512, "a.weight", "[256, 256, 2]");  // 512 columns are 2 groups
    expect_rejected("orphan.gguf", 4, "b.weight", "'b.weight.in_sum2'");  // no diagonal beside it
}

}  // namespace
