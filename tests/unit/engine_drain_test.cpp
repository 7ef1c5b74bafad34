// SPDX-License-Identifier: MIT
// Engine::shutdown(drain) lets running requests finish (serve's SIGINT/SIGTERM drain). The
// backend here is a scripted one whose forward step is slow after it emits its tokens, as a real
// step is on a busy machine: the engine's stats snapshot is then a step behind the first token,
// and a drain that trusted the snapshot saw "nothing running" and cancelled the stream (the CI
// failure of serve --tp 2 on 2026-12-01).
#include "serve/engine.h"

#include <gtest/gtest.h>

#include <map>

namespace {

class SlowBackend final : public pl::EngineBackend {
public:
    explicit SlowBackend(std::chrono::milliseconds step_rest) : rest_(step_rest) {}
    pl::Result<int64_t> submit(pl::SchedRequest r) override {
        const int64_t id = next_++;
        live_.emplace(id, Live{std::move(r), 0});
        return id;
    }
    bool queue_full(int) const override { return false; }
    void cancel(int64_t id) override {
        auto it = live_.find(id);
        if (it == live_.end()) return;
        auto done = std::move(it->second.req.on_done);
        const int n = it->second.generated;
        live_.erase(it);
        if (done) done(pl::FinishReason::Cancelled, n);
    }
    pl::Result<bool> step(const std::function<void(int, double)>&) override {
        if (live_.empty()) return false;
        for (auto it = live_.begin(); it != live_.end();) {
            Live& l = it->second;
            l.req.on_token(static_cast<int32_t>(l.generated++));
            if (l.generated == l.req.max_tokens) {
                auto done = std::move(l.req.on_done);
                const int n = l.generated;
                it = live_.erase(it);
                done(pl::FinishReason::Length, n);
            } else {
                ++it;
            }
        }
        std::this_thread::sleep_for(rest_);  // the rest of the step, after the tokens went out
        return true;
    }
    bool busy() const override { return !live_.empty(); }
    void stats(pl::EngineStats& s) const override {
        s.running = static_cast<int>(live_.size());
        s.queued = 0;
    }

private:
    struct Live {
        pl::SchedRequest req;
        int generated;
    };
    std::chrono::milliseconds rest_;
    std::map<int64_t, Live> live_;
    int64_t next_ = 0;
};

std::vector<pl::StreamEvent> drain_stream(pl::RequestStream& s) {
    std::vector<pl::StreamEvent> ev;
    while (ev.empty() || !ev.back().done)
        if (!s.wait(ev, std::chrono::seconds(10))) break;
    return ev;
}

TEST(EngineDrain, AStreamThatHasItsFirstTokenFinishesWithinTheDrain) {
    pl::Engine engine(std::make_unique<SlowBackend>(std::chrono::milliseconds(150)), {}, {}, /*own_thread=*/true);
    pl::SchedRequest r;
    r.prompt = {1};
    r.max_tokens = 4;
    auto sub = engine.submit(std::move(r));
    ASSERT_EQ(sub.error, pl::SubmitError::None) << sub.message;
    std::vector<pl::StreamEvent> ev;
    ASSERT_TRUE(sub.stream->wait(ev, std::chrono::seconds(10)));  // the first token is out
    engine.shutdown(std::chrono::seconds(10));
    for (auto more = drain_stream(*sub.stream); const auto& e : more) ev.push_back(e);
    ASSERT_FALSE(ev.empty());
    ASSERT_TRUE(ev.back().done);
    EXPECT_EQ(pl::finish_reason_name(ev.back().reason), std::string("length"));
    EXPECT_EQ(ev.back().n_generated, 4);
    EXPECT_EQ(ev.size(), 5u);  // 4 tokens and the end
}

TEST(EngineDrain, WhatOutlivesTheDrainIsCancelled) {
    pl::Engine engine(std::make_unique<SlowBackend>(std::chrono::milliseconds(100)), {}, {}, /*own_thread=*/true);
    pl::SchedRequest r;
    r.prompt = {1};
    r.max_tokens = 1000;  // 100 s of steps
    auto sub = engine.submit(std::move(r));
    ASSERT_EQ(sub.error, pl::SubmitError::None) << sub.message;
    std::vector<pl::StreamEvent> ev;
    ASSERT_TRUE(sub.stream->wait(ev, std::chrono::seconds(10)));
    engine.shutdown(std::chrono::milliseconds(300));
    for (auto more = drain_stream(*sub.stream); const auto& e : more) ev.push_back(e);
    ASSERT_TRUE(ev.back().done);
    EXPECT_EQ(pl::finish_reason_name(ev.back().reason), std::string("cancelled"));
    EXPECT_LT(ev.back().n_generated, 1000);
    // New work is refused once the drain began.
    pl::SchedRequest late;
    late.prompt = {1};
    EXPECT_EQ(engine.submit(std::move(late)).error, pl::SubmitError::ShuttingDown);
}

}  // namespace
