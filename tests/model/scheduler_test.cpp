// SPDX-License-Identifier: MIT
// The continuous-batching scheduler: requests of different lengths arriving at different steps
// produce exactly their lone-run tokens; a long prompt is prefilled in chunks while other
// sequences keep decoding one token per step; limits and a full queue give clear errors;
// cancelling (or a callback refusing a token) frees the slot; all KV blocks come back.
#include "test_data.h"

#include "model/llama.h"
#include "sampling/sampler.h"
#include "serve/scheduler.h"

#include <algorithm>
#include <map>

namespace {

std::vector<int32_t> lone(const pl::Model& m, const std::vector<int32_t>& prompt, int n, const pl::SamplingParams& sp) {
    auto s = pl::Session::create(m, 256);
    EXPECT_TRUE(s);
    pl::Sampler sampler(sp, m.config().vocab_size);
    for (int32_t t : prompt) sampler.accept(t);
    std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
    EXPECT_TRUE((*s)->eval(prompt, logits.data()).is_ok());
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        const int32_t t = sampler.sample(logits);
        sampler.accept(t);
        out.push_back(t);
        if (i + 1 < n) EXPECT_TRUE((*s)->eval(std::span(&t, 1), logits.data()).is_ok());
    }
    return out;
}

std::vector<int32_t> prompt_of(int i, int len) {
    std::vector<int32_t> p = {1};
    for (int j = 1; j < len; ++j) p.push_back(static_cast<int32_t>(3 + (i * 37 + j * 11) % 400));
    return p;
}

class SchedulerTest : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = pl::test::model_file("stories260K/stories260K-f32.gguf");
        if (path_.empty()) {
            if (pl::test::require_test_data()) FAIL() << "test data missing: stories260K/stories260K-f32.gguf";
            GTEST_SKIP() << "stories260K not found";
        }
        auto m = pl::Model::load(path_);
        ASSERT_TRUE(m) << m.error_message();
        model_ = std::move(*m);
    }
    std::string path_;
    std::unique_ptr<pl::Model> model_;
};

TEST_F(SchedulerTest, ContinuousBatchingEqualsLoneRuns) {
    auto s = pl::Session::create(*model_, 256, false, 0, 4);
    ASSERT_TRUE(s);
    pl::SchedulerOptions o;
    o.step_tokens = 24;
    o.prefill_chunk = 8;
    pl::Scheduler sched(**s, o);
    pl::SamplingParams greedy;
    greedy.temperature = 0;
    pl::SamplingParams sampled;  // seeded sampling: each request has its own stream
    sampled.seed = 99;
    const int n_req = 7;
    std::map<int64_t, std::vector<int32_t>> got;
    std::map<int64_t, int> want_req;
    std::map<int64_t, pl::FinishReason> reasons;
    int max_batch = 0;
    bool decoded_during_long_prefill = false;
    std::vector<int> lens = {5, 70, 12, 3, 40, 9, 25};  // request 1 has a 70-token prompt (9 chunks)
    int submitted = 0;
    for (int step = 0; step < 400; ++step) {
        // Requests arrive over time: one every third step.
        if (submitted < n_req && step % 3 == 0) {
            pl::SchedRequest r;
            r.prompt = prompt_of(submitted, lens[static_cast<size_t>(submitted)]);
            r.max_tokens = 10 + submitted;
            r.sampling = submitted % 2 ? sampled : greedy;
            const int idx = submitted;
            auto id = std::make_shared<int64_t>(0);
            r.on_token = [&got, id](int32_t t) {
                got[*id].push_back(t);
                return true;
            };
            r.on_done = [&reasons, id](pl::FinishReason why, int) { reasons[*id] = why; };
            auto res = sched.submit(std::move(r));
            ASSERT_TRUE(res) << res.error_message();
            *id = *res;
            want_req[*res] = idx;
            ++submitted;
        }
        const int before = static_cast<int>(got.size());
        (void)before;
        size_t tokens_before = 0;
        for (auto& [k, v] : got) tokens_before += v.size();
        auto r = sched.step();
        ASSERT_TRUE(r) << r.error_message();
        max_batch = std::max(max_batch, sched.last_batch());
        size_t tokens_after = 0;
        for (auto& [k, v] : got) tokens_after += v.size();
        if (sched.last_batch() > 1 && tokens_after > tokens_before && sched.running() > 0) decoded_during_long_prefill = true;
        if (!*r && submitted == n_req) break;
    }
    EXPECT_EQ(sched.running(), 0);
    EXPECT_EQ(sched.queued(), 0);
    EXPECT_EQ((*s)->kv_blocks_used(), 0);  // every sequence gave its blocks back
    EXPECT_LE(max_batch, 24);
    EXPECT_GT(max_batch, 4);
    EXPECT_TRUE(decoded_during_long_prefill);
    ASSERT_EQ(reasons.size(), static_cast<size_t>(n_req));
    for (const auto& [id, idx] : want_req) {
        const auto want = lone(*model_, prompt_of(idx, lens[static_cast<size_t>(idx)]), 10 + idx, idx % 2 ? sampled : greedy);
        EXPECT_EQ(got[id], want) << "request " << idx;
        EXPECT_EQ(reasons[id], pl::FinishReason::Length) << idx;
    }
}

TEST_F(SchedulerTest, LimitsCancelAndQueue) {
    auto s = pl::Session::create(*model_, 64, false, 0, 2, pl::KvType::F32, 64);  // 4 KV blocks
    ASSERT_TRUE(s);
    pl::SchedulerOptions o;
    o.max_queue = 2;
    pl::Scheduler sched(**s, o);
    pl::SchedRequest big;
    big.prompt = prompt_of(0, 60);
    big.max_tokens = 10;
    auto r = sched.submit(big);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error_message().find("exceeds the context size 64"), std::string::npos) << r.error_message();
    pl::SchedRequest empty;
    EXPECT_NE(sched.submit(empty).error_message().find("empty"), std::string::npos);
    pl::SchedRequest zero;
    zero.prompt = {1};
    zero.max_tokens = 0;
    EXPECT_NE(sched.submit(zero).error_message().find("max_tokens"), std::string::npos);
    pl::SchedRequest badtok;
    badtok.prompt = {1, 9999};
    EXPECT_NE(sched.submit(badtok).error_message().find("9999"), std::string::npos);

    // A client that goes away after 3 tokens, one cancelled while running, one while queued.
    int tokens_a = 0;
    pl::FinishReason ra{}, rb{}, rc{};
    pl::SchedRequest a;
    a.prompt = prompt_of(1, 5);
    a.max_tokens = 20;
    a.on_token = [&](int32_t) { return ++tokens_a < 3; };
    a.on_done = [&](pl::FinishReason w, int) { ra = w; };
    pl::SchedRequest b = a;
    b.on_token = [](int32_t) { return true; };
    b.on_done = [&](pl::FinishReason w, int) { rb = w; };
    ASSERT_TRUE(sched.submit(a));
    auto idb = sched.submit(b);
    ASSERT_TRUE(idb);
    pl::SchedRequest c = b;
    c.on_done = [&](pl::FinishReason w, int) { rc = w; };
    EXPECT_NE(sched.submit(c).error_message().find("too many queued"), std::string::npos);  // queue of 2 is full
    ASSERT_TRUE(sched.step());  // both admitted (4 blocks: 2 each)
    EXPECT_EQ(sched.running(), 2);
    auto idc = sched.submit(c);  // waits: no free slot
    ASSERT_TRUE(idc);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(sched.step());
    EXPECT_EQ(ra, pl::FinishReason::Cancelled);
    EXPECT_EQ(tokens_a, 3);
    sched.cancel(*idb);
    sched.cancel(*idc);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(sched.step());
    EXPECT_EQ(rb, pl::FinishReason::Cancelled);
    EXPECT_EQ(sched.running(), 0);
    EXPECT_EQ((*s)->kv_blocks_used(), 0);
    // The stop token ends a request without being emitted.
    pl::SchedRequest d;
    d.prompt = {1};
    d.max_tokens = 30;
    d.sampling.temperature = 0;
    const auto first = lone(*model_, {1}, 3, d.sampling);
    d.stop_tokens = {first[2]};
    std::vector<int32_t> seen;
    pl::FinishReason rd{};
    d.on_token = [&](int32_t t) {
        seen.push_back(t);
        return true;
    };
    d.on_done = [&](pl::FinishReason w, int) { rd = w; };
    ASSERT_TRUE(sched.submit(d));
    for (int i = 0; i < 10 && (sched.running() || sched.queued()); ++i) ASSERT_TRUE(sched.step());
    EXPECT_EQ(rd, pl::FinishReason::Stop);
    EXPECT_EQ(seen, std::vector<int32_t>(first.begin(), first.begin() + 2));
}

}  // namespace

// What serve under mpirun relies on (serve/dist_serve.h): the calls a SessionGroup gets, run on
// the scheduler's session and replayed on a second session of the same model (a peer), keep the
// two exactly alike: the same logits (so the same greedy tokens, in the order the scheduler emits
// them) and the same KV blocks in use before every step and at the end.
TEST_F(SchedulerTest, GroupCallsReplayTheSessionExactly) {
    auto a = pl::Session::create(*model_, 256, false, 0, 3);
    auto b = pl::Session::create(*model_, 256, false, 0, 3);
    ASSERT_TRUE(a && b);
    struct Replay final : pl::SessionGroup {
        pl::Session& main;
        pl::Session& peer;
        std::vector<int32_t> tokens;  // argmax of every logits row of the peer, in step order
        int steps = 0, frees = 0;
        Replay(pl::Session& m, pl::Session& p) : main(m), peer(p) {}
        pl::Status decode(std::span<const pl::BatchEntry> e, float* logits_out) override {
            EXPECT_EQ(peer.kv_blocks_used(), main.kv_blocks_used());
            const size_t vocab = static_cast<size_t>(peer.config().vocab_size);
            std::vector<float> logits(e.size() * vocab);
            EXPECT_TRUE(peer.decode(e, logits.data()).is_ok());
            size_t row = 0;
            for (const pl::BatchEntry& x : e) {
                if (!x.logits) continue;
                const float* r = logits.data() + row++ * vocab;
                tokens.push_back(static_cast<int32_t>(std::max_element(r, r + vocab) - r));
            }
            ++steps;
            return main.decode(e, logits_out);
        }
        void seq_free(int seq) override {
            main.seq_free(seq);
            peer.seq_free(seq);
            ++frees;
        }
    } replay(**a, **b);
    pl::SchedulerOptions o;
    o.step_tokens = 16;
    o.prefill_chunk = 6;
    pl::Scheduler sched(**a, o);
    sched.set_group(&replay);
    std::vector<int32_t> emitted;
    int done = 0;
    for (int i = 0; i < 5; ++i) {  // 5 requests over 3 slots: slots are freed and reused
        pl::SchedRequest r;
        r.prompt = prompt_of(i, 5 + 7 * i);
        r.max_tokens = 6 + 3 * i;
        r.sampling.temperature = 0;
        r.on_token = [&emitted](int32_t t) {
            emitted.push_back(t);
            return true;
        };
        r.on_done = [&done](pl::FinishReason, int) { ++done; };
        ASSERT_TRUE(sched.submit(std::move(r)));
    }
    for (int guard = 0; done < 5 && guard < 1000; ++guard) ASSERT_TRUE(sched.step());
    EXPECT_EQ(done, 5);
    EXPECT_EQ(replay.steps, sched.steps());
    EXPECT_EQ(replay.frees, 5);
    EXPECT_EQ(replay.tokens, emitted);
    EXPECT_EQ((*b)->kv_blocks_used(), 0);
    EXPECT_EQ((*a)->kv_blocks_used(), 0);
}
