// SPDX-License-Identifier: MIT
// The server's engine: one thread owns the Session and the Scheduler and runs forward steps while
// there is work; HTTP handler threads hand requests in through submit() and read each request's
// tokens from its RequestStream. Handlers never touch the Session: submissions and cancellations
// wait in an inbox that the engine thread drains before every step, so a step is never blocked
// by a handler and a handler waits at most one step for its request to be queued.
#pragma once

#include "core/status.h"
#include "serve/scheduler.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace pl {

// What a request produces, in order: tokens, then exactly one Done.
struct StreamEvent {
    bool done = false;
    int32_t token = -1;                            // when !done
    FinishReason reason = FinishReason::Length;    // when done
    int n_generated = 0;                           // when done: tokens the scheduler sampled
};

// One request's channel from the engine thread to its handler thread.
class RequestStream {
public:
    // Waits up to `timeout` for events and moves them into `out` (appends). False on timeout.
    bool wait(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout);
    // The handler is no longer interested (client gone, stop string seen): the engine cancels the
    // request at its next step, and no further tokens are delivered.
    void abandon() { abandoned_.store(true); }
    bool abandoned() const { return abandoned_.load(); }
    int64_t id() const { return id_; }

private:
    friend class Engine;
    void push(StreamEvent e);
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<StreamEvent> events_;
    std::atomic<bool> abandoned_{false};
    int64_t id_ = -1;
};

struct EngineStats {
    int queued = 0;          // waiting for a sequence slot / KV blocks
    int running = 0;         // sequences in the batch
    int last_batch = 0;      // entries (tokens) in the last forward step
    int kv_blocks_used = 0;
    int kv_blocks_total = 0;
    int64_t steps = 0;
    int n_seq = 0;
};

enum class SubmitError { None, QueueFull, ShuttingDown, Invalid };

struct SubmitResult {
    std::shared_ptr<RequestStream> stream;  // set on success
    SubmitError error = SubmitError::None;
    std::string message;
};

class Engine {
public:
    // `on_step(entries, seconds)` runs on the engine thread after every forward step (metrics).
    Engine(Session& session, SchedulerOptions o, std::function<void(int, double)> on_step = {});
    ~Engine();  // stops the thread; running requests end Cancelled

    // Thread-safe. Queues the request (its on_token / on_done are replaced by the stream).
    SubmitResult submit(SchedRequest r);
    // Thread-safe: stop taking requests; wait up to `drain` for running and queued ones to finish,
    // then cancel what is left and stop the thread.
    void shutdown(std::chrono::milliseconds drain);
    EngineStats stats() const;

private:
    void loop();
    struct Pending {
        SchedRequest req;
        std::shared_ptr<RequestStream> stream;
        std::promise<SubmitResult>* reply = nullptr;
    };

    Session& session_;
    Scheduler sched_;
    SchedulerOptions opts_;
    std::function<void(int, double)> on_step_;

    mutable std::mutex mu_;  // guards inbox_, live_, accepting_, stop_ and the stats snapshot
    std::condition_variable cv_;
    std::vector<Pending> inbox_;
    std::vector<std::shared_ptr<RequestStream>> live_;  // submitted and not yet Done
    bool accepting_ = true;
    bool stop_ = false;
    EngineStats snap_;
    std::thread thread_;
};

}  // namespace pl
