// SPDX-License-Identifier: MIT
#include "serve/engine.h"

#include "core/log.h"

#include <algorithm>
#include <unordered_set>

namespace pl {

bool RequestStream::wait(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
    out.insert(out.end(), events_.begin(), events_.end());
    events_.clear();
    return true;
}

void RequestStream::push(StreamEvent e) {
    {
        std::lock_guard lk(mu_);
        events_.push_back(e);
    }
    cv_.notify_all();
}

Engine::Engine(Session& session, SchedulerOptions o, std::function<void(int, double)> on_step)
    : session_(session), sched_(session, o), opts_(o), on_step_(std::move(on_step)) {
    snap_.kv_blocks_total = session.kv_blocks_total();
    snap_.n_seq = session.n_seq();
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(std::chrono::milliseconds(0)); }

SubmitResult Engine::submit(SchedRequest r) {
    std::promise<SubmitResult> reply;
    auto fut = reply.get_future();
    {
        std::lock_guard lk(mu_);
        if (!accepting_ || stop_) return {nullptr, SubmitError::ShuttingDown, "the server is shutting down"};
        inbox_.push_back({std::move(r), std::make_shared<RequestStream>(), &reply});
    }
    cv_.notify_all();
    return fut.get();
}

void Engine::shutdown(std::chrono::milliseconds drain) {
    {
        std::lock_guard lk(mu_);
        accepting_ = false;
    }
    const auto deadline = std::chrono::steady_clock::now() + drain;
    while (std::chrono::steady_clock::now() < deadline) {
        {
            std::lock_guard lk(mu_);
            if (stop_ || (inbox_.empty() && snap_.queued == 0 && snap_.running == 0)) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

EngineStats Engine::stats() const {
    std::lock_guard lk(mu_);
    return snap_;
}

void Engine::loop() {
    std::unordered_set<int64_t> cancelled;  // ids already passed to the scheduler's cancel()
    bool busy = false;
    while (true) {
        std::vector<Pending> incoming;
        bool stopping = false;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || busy; });
            stopping = stop_;
            incoming.swap(inbox_);
        }
        for (Pending& p : incoming) {
            if (stopping) {
                p.reply->set_value({nullptr, SubmitError::ShuttingDown, "the server is shutting down"});
                continue;
            }
            if (sched_.queued() >= opts_.max_queue) {
                p.reply->set_value({nullptr, SubmitError::QueueFull,
                                    fmt::format("too many requests waiting ({} queued, {} running); try again later",
                                                sched_.queued(), sched_.running())});
                continue;
            }
            std::shared_ptr<RequestStream> st = p.stream;
            RequestStream* raw = st.get();
            p.req.on_token = [raw](int32_t tok) {
                if (raw->abandoned()) return false;
                raw->push({false, tok, FinishReason::Length, 0});
                return true;
            };
            p.req.on_done = [this, raw](FinishReason why, int n) {
                raw->push({true, -1, why, n});
                auto it = std::find_if(live_.begin(), live_.end(), [&](const auto& s) { return s.get() == raw; });
                if (it != live_.end()) live_.erase(it);
            };
            auto id = sched_.submit(std::move(p.req));
            if (!id) {
                p.reply->set_value({nullptr, SubmitError::Invalid, id.error_message()});
                continue;
            }
            st->id_ = *id;
            live_.push_back(st);
            p.reply->set_value({st, SubmitError::None, {}});
        }
        for (const auto& s : live_)
            if ((stopping || s->abandoned()) && cancelled.insert(s->id()).second) sched_.cancel(s->id());

        const auto t0 = std::chrono::steady_clock::now();
        auto r = sched_.step();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!r) PL_LOG_ERROR("serve: forward step failed: {}", r.error_message());
        else if (*r && on_step_) on_step_(sched_.last_batch(), secs);
        // Ids of finished requests are never reused, so the set only needs live ids.
        std::erase_if(cancelled, [&](int64_t id) {
            return std::none_of(live_.begin(), live_.end(), [&](const auto& s) { return s->id() == id; });
        });
        busy = sched_.queued() > 0 || sched_.running() > 0;
        {
            std::lock_guard lk(mu_);
            snap_.queued = sched_.queued();
            snap_.running = sched_.running();
            snap_.last_batch = (r && *r) ? sched_.last_batch() : 0;
            snap_.kv_blocks_used = session_.kv_blocks_used();
            snap_.steps = sched_.steps();
        }
        if (stopping) break;
    }
}

}  // namespace pl
