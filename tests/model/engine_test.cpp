// SPDX-License-Identifier: MIT
// The server's engine thread: requests submitted from many threads at once get exactly their
// lone-run tokens; an abandoned stream is cancelled and frees its KV blocks; a full queue and a
// shut-down engine refuse new work; shutdown cancels what is still running. And the text side:
// stop strings are cut exactly, even when they span tokens, and never leak partially.
#include "test_data.h"

#include "model/llama.h"
#include "sampling/sampler.h"
#include "serve/engine.h"
#include "serve/text_stream.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <thread>

namespace {

using namespace std::chrono_literals;

std::vector<int32_t> lone(const pl::Model& m, const std::vector<int32_t>& prompt, int n) {
    auto s = pl::Session::create(m, 256);
    EXPECT_TRUE(s);
    std::vector<float> logits(static_cast<size_t>(m.config().vocab_size));
    EXPECT_TRUE((*s)->eval(prompt, logits.data()).is_ok());
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        const int32_t t = pl::argmax(logits);
        out.push_back(t);
        if (i + 1 < n) EXPECT_TRUE((*s)->eval(std::span(&t, 1), logits.data()).is_ok());
    }
    return out;
}

std::vector<int32_t> prompt_of(int i) {
    std::vector<int32_t> p = {1};
    for (int j = 1; j < 3 + 5 * i; ++j) p.push_back(static_cast<int32_t>(3 + (i * 37 + j * 11) % 400));
    return p;
}

// Reads a stream to its end: (tokens, the Done event).
std::pair<std::vector<int32_t>, pl::StreamEvent> drain(pl::RequestStream& s) {
    std::vector<int32_t> toks;
    std::vector<pl::StreamEvent> ev;
    for (int i = 0; i < 600; ++i) {
        ev.clear();
        s.wait(ev, 100ms);
        for (const auto& e : ev) {
            if (e.done) return {toks, e};
            toks.push_back(e.token);
        }
    }
    ADD_FAILURE() << "stream did not finish";
    return {toks, {}};
}

// The LLaMA SPM vocabulary (32000 tokens) from the test data.
std::unique_ptr<pl::Tokenizer> llama_vocab() {
    const std::string path = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    if (path.empty()) return nullptr;
    auto f = pl::gguf::File::open(path);
    EXPECT_TRUE(f) << f.error_message();
    if (!f) return nullptr;
    auto tok = pl::Tokenizer::from_gguf(**f);
    EXPECT_TRUE(tok) << tok.error_message();
    return tok ? std::move(*tok) : nullptr;
}

class EngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
        PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
        auto m = pl::Model::load(path);
        ASSERT_TRUE(m) << m.error_message();
        model_ = std::move(*m);
    }
    pl::SchedRequest greedy(int i, int n) {
        pl::SchedRequest r;
        r.prompt = prompt_of(i);
        r.max_tokens = n;
        r.sampling.temperature = 0;
        return r;
    }
    std::unique_ptr<pl::Model> model_;
};

TEST_F(EngineTest, ConcurrentSubmittersGetLoneRunTokens) {
    auto s = pl::Session::create(*model_, 128, false, 0, 3);
    ASSERT_TRUE(s);
    int steps_seen = 0;
    pl::Engine engine(**s, {}, [&](int batch, double secs) {
        EXPECT_GT(batch, 0);
        EXPECT_GE(secs, 0);
        ++steps_seen;
    });
    const int n = 8;  // more requests than the 3 sequence slots: some wait in the queue
    std::vector<std::vector<int32_t>> got(n);
    std::vector<pl::FinishReason> why(n);
    std::vector<std::thread> th;
    for (int i = 0; i < n; ++i)
        th.emplace_back([&, i] {
            auto r = engine.submit(greedy(i, 12 + i));
            ASSERT_TRUE(r.stream) << r.message;
            auto [toks, done] = drain(*r.stream);
            got[static_cast<size_t>(i)] = toks;
            why[static_cast<size_t>(i)] = done.reason;
            EXPECT_EQ(done.n_generated, 12 + i);
        });
    for (auto& t : th) t.join();
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(got[static_cast<size_t>(i)], lone(*model_, prompt_of(i), 12 + i)) << "request " << i;
        EXPECT_EQ(why[static_cast<size_t>(i)], pl::FinishReason::Length);
    }
    for (int i = 0; i < 100 && engine.stats().running; ++i) std::this_thread::sleep_for(10ms);
    const pl::EngineStats st = engine.stats();
    EXPECT_EQ(st.running, 0);
    EXPECT_EQ(st.queued, 0);
    EXPECT_EQ(st.kv_blocks_used, 0);
    EXPECT_GT(st.steps, 12);
    EXPECT_EQ(st.steps, steps_seen);
}

TEST_F(EngineTest, AbandonQueueFullAndShutdown) {
    auto s = pl::Session::create(*model_, 256, false, 0, 1);
    ASSERT_TRUE(s);
    pl::SchedulerOptions o;
    o.max_queue = 1;
    pl::Engine engine(**s, o);
    auto a = engine.submit(greedy(0, 200));  // runs
    ASSERT_TRUE(a.stream);
    std::vector<pl::StreamEvent> ev;
    while (ev.empty()) a.stream->wait(ev, 100ms);  // it is running
    auto b = engine.submit(greedy(1, 5));  // waits for the only slot
    ASSERT_TRUE(b.stream);
    auto c = engine.submit(greedy(2, 5));  // the queue (1) is full
    EXPECT_FALSE(c.stream);
    EXPECT_EQ(c.error, pl::SubmitError::QueueFull);
    EXPECT_NE(c.message.find("too many requests"), std::string::npos) << c.message;
    // The client of `a` goes away: a is cancelled, b gets the slot and runs to its end.
    a.stream->abandon();
    auto [ta, da] = drain(*a.stream);
    EXPECT_EQ(da.reason, pl::FinishReason::Cancelled);
    EXPECT_LT(ta.size() + ev.size(), 200u);
    auto [tb, db] = drain(*b.stream);
    EXPECT_EQ(db.reason, pl::FinishReason::Length);
    EXPECT_EQ(tb, lone(*model_, prompt_of(1), 5));
    // Bad requests are refused with the scheduler's message.
    pl::SchedRequest bad = greedy(0, 1000);
    auto e = engine.submit(bad);
    EXPECT_EQ(e.error, pl::SubmitError::Invalid);
    EXPECT_NE(e.message.find("exceeds the context"), std::string::npos) << e.message;
    // Shutdown without drain time cancels what runs; afterwards nothing is accepted.
    auto d = engine.submit(greedy(3, 200));
    ASSERT_TRUE(d.stream);
    engine.shutdown(0ms);
    auto [td, dd] = drain(*d.stream);
    EXPECT_EQ(dd.reason, pl::FinishReason::Cancelled);
    EXPECT_EQ(engine.submit(greedy(0, 2)).error, pl::SubmitError::ShuttingDown);
    EXPECT_EQ((*s)->kv_blocks_used(), 0);
}

TEST_F(EngineTest, StopStringsAreCutExactly) {
    auto tok = llama_vocab();
    PL_REQUIRE_DATA(std::string(tok ? "ok" : ""), "vocab/ggml-vocab-llama-spm.gguf");
    const std::string text = "Once upon a time, there was a little girl named Lily.";
    const std::vector<int32_t> ids = tok->encode(text, false);
    ASSERT_GT(ids.size(), 8u);
    auto run = [&](std::vector<std::string> stops) {
        pl::StopTextStream s(*tok, std::move(stops));
        std::string out;
        size_t fed = 0;
        for (int32_t id : ids) {
            out += s.push(id);
            ++fed;
            if (s.stopped()) break;
        }
        out += s.finish();
        EXPECT_EQ(out, s.text());
        return std::make_tuple(out, s.stopped(), fed);
    };
    const std::string full = std::get<0>(run({}));
    ASSERT_EQ(full, " " + text);  // SPM's leading space stays: the stream did not start with BOS
    ASSERT_NE(full.find("upon"), std::string::npos) << full;
    // A stop string that spans several tokens: the text ends right before it.
    const size_t at = full.find("there was");
    ASSERT_NE(at, std::string::npos);
    auto [cut, stopped, fed] = run({"zebra", "there was"});
    EXPECT_TRUE(stopped);
    EXPECT_EQ(cut, full.substr(0, at));
    EXPECT_LT(fed, ids.size());
    // A prefix of a stop string that never completes is released in full at the end.
    auto [tail, stopped2, fed2] = run({"Lily!"});
    EXPECT_FALSE(stopped2);
    EXPECT_EQ(tail, full);
    // A stop string at the very start gives no text.
    auto [none, stopped3, fed3] = run({full.substr(0, 3)});
    EXPECT_TRUE(stopped3);
    EXPECT_EQ(none, "");
    // Empty stop strings are ignored.
    EXPECT_EQ(std::get<0>(run({""})), full);
}

TEST_F(EngineTest, TextIsHeldBackOnlyWhileItCouldStartAStop) {
    auto tok = llama_vocab();
    PL_REQUIRE_DATA(std::string(tok ? "ok" : ""), "vocab/ggml-vocab-llama-spm.gguf");
    const std::vector<int32_t> ids = tok->encode("Once upon a time", false);
    pl::StopTextStream s(*tok, {"timex"});
    std::string sent;
    for (size_t i = 0; i + 1 < ids.size(); ++i) sent += s.push(ids[i]);
    // Before the last token nothing can start "timex": everything decoded so far is out.
    EXPECT_EQ(sent, " Once upon a");
    const std::string last = s.push(ids.back());
    EXPECT_EQ(last.find("time"), std::string::npos) << "'time' could begin 'timex' and must wait";
    EXPECT_EQ(sent + last + s.finish(), " Once upon a time");
}

}  // namespace
