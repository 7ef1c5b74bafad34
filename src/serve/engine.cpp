// SPDX-License-Identifier: MIT
#include "serve/engine.h"

#include "core/check.h"
#include "core/log.h"

#include <algorithm>
#include <chrono>
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

LocalBackend::LocalBackend(Session& session, SchedulerOptions o, SessionGroup* group)
    : session_(session), sched_(session, o), group_(group) {
    sched_.set_group(group);
}

Result<bool> LocalBackend::step(const std::function<void(int, double)>& on_step) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = sched_.step();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r && *r && on_step) on_step(sched_.last_batch(), secs);
    return r;
}

void LocalBackend::stats(EngineStats& s) const {
    s.queued = sched_.queued();
    s.running = sched_.running();
    s.last_batch = sched_.last_batch();
    s.kv_blocks_used = session_.kv_blocks_used();
    s.kv_blocks_total = session_.kv_blocks_total();
    s.steps = sched_.steps();
    s.n_seq = session_.n_seq();
}

void LocalBackend::close() {
    if (group_) group_->close();
}

Engine::Engine(Session& session, SchedulerOptions o, std::function<void(int, double)> on_step)
    : Engine(std::make_unique<LocalBackend>(session, o), o, std::move(on_step), true) {}

Engine::Engine(std::unique_ptr<EngineBackend> backend, SchedulerOptions o, std::function<void(int, double)> on_step, bool own_thread)
    : backend_(std::move(backend)), opts_(o), on_step_(std::move(on_step)) {
    backend_->stats(snap_);
    if (own_thread) thread_ = std::thread([this] { loop(); });
}

void Engine::run() {
    PL_CHECK(!thread_.joinable(), "Engine::run() on an engine that has its own thread");
    loop();
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
            if (stop_ || (inbox_.empty() && owned_ == 0)) break;
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
    std::unordered_set<int64_t> cancelled;  // ids already passed to the backend's cancel()
    bool busy = false, poll = false;
    // Work that only other ranks are doing (remote replicas) is polled for at this interval; a
    // submission still wakes the loop at once.
    constexpr auto kPoll = std::chrono::microseconds(500);
    while (true) {
        std::vector<Pending> incoming;
        bool stopping = false;
        {
            std::unique_lock lk(mu_);
            const auto ready = [&] { return stop_ || !inbox_.empty() || (busy && !poll); };
            if (poll)
                cv_.wait_for(lk, kPoll, ready);
            else
                cv_.wait(lk, ready);
            stopping = stop_;
            incoming.swap(inbox_);
            owned_ += incoming.size();
        }
        const auto disown = [this] {
            std::lock_guard lk(mu_);
            --owned_;
        };
        for (Pending& p : incoming) {
            if (stopping) {
                disown();
                p.reply->set_value({nullptr, SubmitError::ShuttingDown, "the server is shutting down"});
                continue;
            }
            if (backend_->queue_full(opts_.max_queue)) {
                EngineStats now;
                backend_->stats(now);
                disown();
                p.reply->set_value({nullptr, SubmitError::QueueFull,
                                    fmt::format("too many requests waiting ({} queued, {} running); try again later",
                                                now.queued, now.running)});
                continue;
            }
            std::shared_ptr<RequestStream> st = p.stream;
            RequestStream* raw = st.get();
            p.req.on_token = [raw](int32_t tok) {
                if (raw->abandoned()) return false;
                raw->push({false, tok, FinishReason::Length, 0});
                return true;
            };
            p.req.on_done = [this, raw, disown](FinishReason why, int n) {
                raw->push({true, -1, why, n});
                auto it = std::find_if(live_.begin(), live_.end(), [&](const auto& s) { return s.get() == raw; });
                if (it != live_.end()) live_.erase(it);
                disown();
            };
            auto id = backend_->submit(std::move(p.req));
            if (!id) {
                disown();
                p.reply->set_value({nullptr, SubmitError::Invalid, id.error_message()});
                continue;
            }
            st->id_ = *id;
            live_.push_back(st);
            p.reply->set_value({st, SubmitError::None, {}});
        }
        // (a copy: a cancellation may end the request, and its on_done edits live_)
        for (const auto live = live_; const auto& s : live)
            if ((stopping || s->abandoned()) && cancelled.insert(s->id()).second) backend_->cancel(s->id());

        auto r = backend_->step(on_step_);
        if (!r) PL_LOG_ERROR("serve: forward step failed: {}", r.error_message());
        // Ids of finished requests are never reused, so the set only needs live ids.
        std::erase_if(cancelled, [&](int64_t id) {
            return std::none_of(live_.begin(), live_.end(), [&](const auto& s) { return s->id() == id; });
        });
        busy = backend_->busy();
        poll = busy && r && !*r;
        {
            std::lock_guard lk(mu_);
            backend_->stats(snap_);
            if (!(r && *r)) snap_.last_batch = 0;
        }
        if (stopping) break;
    }
    backend_->close();
}

}  // namespace pl
