// SPDX-License-Identifier: MIT
// Continuous batching (Session::decode): every sequence's greedy tokens and logits are identical
// whether it runs alone or in a batch of 1, 4 or 16 with other sequences of different lengths,
// joining at different steps (prompt chunks and decode tokens in the same step). On stories260K
// (f32, float path) and on synthetic SmolLM2-shaped models in q3.5 and q4_0 (int8 kernels: the
// GEMV of a lone sequence against the GEMM of a batch).
#include "test_data.h"

#include "model/llama.h"
#include "model/synth.h"
#include "sampling/sampler.h"

#include <cstring>
#include <map>

namespace {

struct Run {
    std::vector<int32_t> tokens;     // generated
    std::vector<float> last_logits;  // logits of the final step
};

std::vector<std::vector<int32_t>> make_prompts(int count, int vocab) {
    std::vector<std::vector<int32_t>> p;
    for (int i = 0; i < count; ++i) {
        std::vector<int32_t> ids = {1};
        const int len = 1 + (i * 5) % 13;  // 1..13 more tokens: every length differs
        for (int j = 0; j < len; ++j) ids.push_back(static_cast<int32_t>((7 + 31 * i + 17 * j) % (vocab - 3) + 3));
        p.push_back(ids);
    }
    return p;
}

// One sequence alone, through the single-sequence API (eval).
Run run_alone(const pl::Model& m, const std::vector<int32_t>& prompt, int n_gen) {
    const int vocab = m.config().vocab_size;
    auto s = pl::Session::create(m, 128);
    EXPECT_TRUE(s) << s.error_message();
    Run r;
    std::vector<float> logits(static_cast<size_t>(vocab));
    EXPECT_TRUE((*s)->eval(prompt, logits.data()).is_ok());
    for (int i = 0; i < n_gen; ++i) {
        const int32_t tok = pl::argmax(logits);
        r.tokens.push_back(tok);
        if (i + 1 < n_gen) EXPECT_TRUE((*s)->eval(std::span(&tok, 1), logits.data()).is_ok());
    }
    r.last_logits = logits;
    return r;
}

// All sequences through one Session::decode stream: sequence i joins at step i % 3, its whole
// prompt in one step, then one token per step; every step mixes sequences at different positions.
std::vector<Run> run_batched(const pl::Model& m, const std::vector<std::vector<int32_t>>& prompts, int n_gen, int n_batch) {
    const int vocab = m.config().vocab_size;
    const int n = static_cast<int>(prompts.size());
    auto s = pl::Session::create(m, 128, false, n_batch, n);
    EXPECT_TRUE(s) << s.error_message();
    std::vector<Run> runs(static_cast<size_t>(n));
    std::vector<int> len(static_cast<size_t>(n), 0);  // tokens in each sequence's cache
    std::vector<int32_t> next(static_cast<size_t>(n), -1);
    std::vector<float> logits;
    for (int step = 0;; ++step) {
        std::vector<pl::BatchEntry> entries;
        std::vector<int> owner;  // sequence of each logits row
        for (int i = 0; i < n; ++i) {
            const auto& run = runs[static_cast<size_t>(i)];
            if (step < i % 3 || static_cast<int>(run.tokens.size()) >= n_gen) continue;
            if (len[static_cast<size_t>(i)] == 0) {
                const auto& p = prompts[static_cast<size_t>(i)];
                for (size_t j = 0; j < p.size(); ++j)
                    entries.push_back({i, static_cast<int>(j), p[j], j + 1 == p.size()});
            } else {
                entries.push_back({i, len[static_cast<size_t>(i)], next[static_cast<size_t>(i)], true});
            }
            owner.push_back(i);
        }
        if (entries.empty()) break;
        logits.assign(owner.size() * static_cast<size_t>(vocab), 0.0f);
        const auto st = (*s)->decode(entries, logits.data());
        EXPECT_TRUE(st.is_ok()) << st.message();
        if (!st.is_ok()) break;
        for (const auto& e : entries) len[static_cast<size_t>(e.seq)] = std::max(len[static_cast<size_t>(e.seq)], e.pos + 1);
        for (size_t j = 0; j < owner.size(); ++j) {
            auto& run = runs[static_cast<size_t>(owner[j])];
            std::vector<float> row(logits.begin() + static_cast<std::ptrdiff_t>(j * static_cast<size_t>(vocab)),
                                   logits.begin() + static_cast<std::ptrdiff_t>((j + 1) * static_cast<size_t>(vocab)));
            const int32_t tok = pl::argmax(row);
            run.tokens.push_back(tok);
            run.last_logits = row;
            next[static_cast<size_t>(owner[j])] = tok;
        }
    }
    return runs;
}

void check_model(const pl::Model& m, int n_gen) {
    const int vocab = m.config().vocab_size;
    const auto prompts = make_prompts(16, vocab);
    std::vector<Run> alone;
    for (const auto& p : prompts) alone.push_back(run_alone(m, p, n_gen));
    for (int batch : {1, 4, 16}) {
        for (int n_batch : {64, 7}) {  // 7: steps split into several forward calls
            const std::vector<std::vector<int32_t>> sub(prompts.begin(), prompts.begin() + batch);
            const auto runs = run_batched(m, sub, n_gen, n_batch);
            for (int i = 0; i < batch; ++i) {
                EXPECT_EQ(runs[static_cast<size_t>(i)].tokens, alone[static_cast<size_t>(i)].tokens)
                    << "sequence " << i << " in a batch of " << batch << " (n_batch " << n_batch << ")";
                EXPECT_EQ(std::memcmp(runs[static_cast<size_t>(i)].last_logits.data(), alone[static_cast<size_t>(i)].last_logits.data(),
                                      static_cast<size_t>(vocab) * sizeof(float)),
                          0)
                    << "logits of sequence " << i << " differ in a batch of " << batch;
            }
        }
    }
}

TEST(BatchDecode, Stories260KBatchedEqualsAlone) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model) << model.error_message();
    check_model(**model, 24);
}

TEST(BatchDecode, SyntheticQ3_5AndQ4_0BatchedEqualsAlone) {
    const std::string dir = pl::test::make_temp_dir("batch_decode");
    for (const char* type : {"q3.5", "q4_0"}) {
        pl::SynthOptions o;
        o.shape = "smollm2-135m";
        o.type = type;
        o.n_layers = 2;
        o.out_path = dir + "/smol-" + type + ".gguf";
        ASSERT_TRUE(pl::synth_model(o).is_ok()) << type;
        auto model = pl::Model::load(o.out_path);
        ASSERT_TRUE(model) << model.error_message();
        SCOPED_TRACE(type);
        check_model(**model, 8);
    }
}

TEST(BatchDecode, BadEntriesAreRejected) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model);
    auto s = pl::Session::create(**model, 32, false, 0, 2);
    ASSERT_TRUE(s);
    std::vector<float> logits(512);
    const pl::BatchEntry bad_seq[] = {{2, 0, 1, true}};
    EXPECT_NE((*s)->decode(bad_seq, logits.data()).message().find("sequence 2"), std::string::npos);
    const pl::BatchEntry bad_pos[] = {{0, 32, 1, true}};
    EXPECT_NE((*s)->decode(bad_pos, logits.data()).message().find("position 32"), std::string::npos);
    const pl::BatchEntry bad_tok[] = {{1, 0, 512, true}};
    EXPECT_NE((*s)->decode(bad_tok, logits.data()).message().find("token id 512"), std::string::npos);
}

}  // namespace

namespace {

// The f16 KV cache: logits stay close to the f32 cache's (keys and values rounded to 11 bits),
// greedy tokens on stories260K match llama2.c's for the first steps, and batched == alone holds.
TEST(KvCacheF16, CloseToF32AndBatchInvariant) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model);
    const int vocab = (*model)->config().vocab_size;
    auto a = pl::Session::create(**model, 128, false, 0, 1, pl::KvType::F32);
    auto b = pl::Session::create(**model, 128, false, 0, 1, pl::KvType::F16);
    ASSERT_TRUE(a && b);
    EXPECT_EQ((*b)->kv_type(), pl::KvType::F16);
    std::vector<int32_t> ids = {1};
    const auto ref = pl::test::stories_reference_ids();
    ids.insert(ids.end(), ref.begin(), ref.begin() + 40);
    std::vector<float> la(ids.size() * static_cast<size_t>(vocab)), lb(la.size());
    ASSERT_TRUE((*a)->eval(ids, la.data(), true).is_ok());
    ASSERT_TRUE((*b)->eval(ids, lb.data(), true).is_ok());
    double num = 0, den = 0;
    for (size_t i = 0; i < la.size(); ++i) {
        num += (la[i] - lb[i]) * static_cast<double>(la[i] - lb[i]);
        den += la[i] * static_cast<double>(la[i]);
    }
    EXPECT_LT(std::sqrt(num / den), 2e-3) << "relative logit error of the f16 cache";
    EXPECT_GT(num, 0.0) << "f16 cache gave exactly the f32 logits: is it used?";
    int differ = 0;  // greedy choices along the reference text: near-ties may flip, not more
    for (size_t t = 0; t < ids.size(); ++t) {
        std::span<const float> ra(la.data() + t * vocab, static_cast<size_t>(vocab)), rb(lb.data() + t * vocab, static_cast<size_t>(vocab));
        if (pl::argmax(ra) != pl::argmax(rb)) {
            ++differ;
            EXPECT_NEAR(ra[static_cast<size_t>(pl::argmax(rb))], ra[static_cast<size_t>(pl::argmax(ra))], 0.05f) << "position " << t;
        }
    }
    EXPECT_LE(differ, 2) << "of " << ids.size() << " positions";
    pl::set_default_kv_type(pl::KvType::F16);
    check_model(**model, 16);  // batched == alone with the f16 cache too
    pl::set_default_kv_type(pl::KvType::F32);
}

}  // namespace

namespace {

// The paged KV pool: a budget smaller than n_seq * n_ctx, sequences growing and finishing
// independently, a request that does not fit fails with a clear error and changes nothing, freed
// blocks are reused (stale contents never leak into results), and all blocks come back.
// Without a budget every sequence can fill its whole context, also when n_ctx is not a multiple of
// the block size (a pool of n_seq * n_ctx positions was short by a block per sequence:
// `generate --prompts-file` with 16 prompts stopped with "KV cache full").
TEST(KvPool, DefaultBudgetLetsEverySequenceFillItsContext) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model);
    const int vocab = (*model)->config().vocab_size;
    constexpr int kCtx = 42, kSeqs = 5;  // 3 blocks per sequence, 6 positions of the last unused
    auto s = pl::Session::create(**model, kCtx, false, 0, kSeqs);
    ASSERT_TRUE(s) << s.error_message();
    EXPECT_EQ((*s)->kv_blocks_total(), kSeqs * 3);
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (int seq = 0; seq < kSeqs; ++seq) {
        std::vector<pl::BatchEntry> e;
        for (int j = 0; j < kCtx; ++j) e.push_back({seq, j, static_cast<int32_t>(3 + (seq * 11 + j * 7) % 400), j + 1 == kCtx});
        const auto st = (*s)->decode(e, logits.data());
        ASSERT_TRUE(st.is_ok()) << "sequence " << seq << ": " << st.message();
    }
    EXPECT_EQ((*s)->kv_blocks_free(), 0);
}

TEST(KvPool, BudgetReuseAndNoLeak) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model);
    const int vocab = (*model)->config().vocab_size;
    auto s = pl::Session::create(**model, 128, false, 0, 4, pl::KvType::F32, 64);  // 4 blocks of 16
    ASSERT_TRUE(s) << s.error_message();
    pl::Session& S = **s;
    EXPECT_EQ(S.kv_blocks_total(), 4);
    EXPECT_EQ(S.kv_blocks_used(), 0);
    const auto prompts = make_prompts(3, vocab);
    auto feed = [&](int seq, int n_tokens, float* logits) {
        std::vector<pl::BatchEntry> e;
        for (int j = 0; j < n_tokens; ++j) e.push_back({seq, j, static_cast<int32_t>(3 + (seq * 7 + j * 5) % 400), j + 1 == n_tokens});
        return S.decode(e, logits);
    };
    std::vector<float> logits(static_cast<size_t>(vocab));
    ASSERT_TRUE(feed(0, 40, logits.data()).is_ok());  // 3 blocks
    EXPECT_EQ(S.kv_blocks_used(), 3);
    EXPECT_EQ(S.seq_capacity(0), 48);
    const auto full = feed(1, 20, logits.data());  // needs 2, 1 free
    ASSERT_FALSE(full.is_ok());
    EXPECT_NE(full.message().find("KV cache full"), std::string::npos) << full.message();
    EXPECT_EQ(S.kv_blocks_used(), 3);  // nothing taken by the failed call
    S.seq_free(0);
    EXPECT_EQ(S.kv_blocks_used(), 0);
    ASSERT_TRUE(feed(1, 20, logits.data()).is_ok());  // reuses sequence 0's blocks
    // The result equals sequence 1 run in a fresh session: stale K/V from sequence 0 never count.
    auto fresh = pl::Session::create(**model, 128, false, 0, 4, pl::KvType::F32);
    ASSERT_TRUE(fresh);
    std::vector<pl::BatchEntry> e;
    for (int j = 0; j < 20; ++j) e.push_back({1, j, static_cast<int32_t>(3 + (7 + j * 5) % 400), j + 1 == 20});
    std::vector<float> want(static_cast<size_t>(vocab));
    ASSERT_TRUE((*fresh)->decode(e, want.data()).is_ok());
    EXPECT_EQ(std::memcmp(logits.data(), want.data(), want.size() * sizeof(float)), 0);
    // Requests come and go: many rounds through the same pool, nothing leaks.
    for (int round = 0; round < 10; ++round) {
        const int seq = round % 4;
        S.seq_free(seq);
        ASSERT_TRUE(feed(seq, 1 + (round * 13) % 30, logits.data()).is_ok()) << round;
        if (round % 3 == 2)
            for (int q = 0; q < 4; ++q) S.seq_free(q);
    }
    for (int q = 0; q < 4; ++q) S.seq_free(q);
    EXPECT_EQ(S.kv_blocks_used(), 0);
    EXPECT_EQ(S.kv_blocks_free(), 4);
    // The single-sequence API takes and gives back blocks too.
    ASSERT_TRUE(S.eval(prompts[0], logits.data()).is_ok());
    EXPECT_GT(S.kv_blocks_used(), 0);
    S.truncate(0);
    EXPECT_EQ(S.kv_blocks_used(), 0);
}

}  // namespace
