// SPDX-License-Identifier: MIT
// The server's engine: one thread owns the Session and the Scheduler and runs forward steps while
// there is work; HTTP handler threads hand requests in through submit() and read each request's
// tokens from its RequestStream. Handlers never touch the Session: submissions and cancellations
// wait in an inbox that the engine thread drains before every step, so a step is never blocked
// by a handler and a handler waits at most one step for its request to be queued.
//
// What the engine thread drives is an EngineBackend: one Scheduler over a local Session, or,
// under mpirun, data-parallel replicas (serve/dist_serve.h). The engine thread is the only one
// that calls the backend, so under MPI it is the only thread that makes MPI calls: the engine
// then runs on the caller's thread (run(), the thread that initialised MPI, as
// MPI_THREAD_FUNNELED requires) and the HTTP server on another.
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

// One data-parallel replica's share of the work (serve under mpirun with --dp).
struct ReplicaLoad {
    int64_t requests = 0;  // requests sent to it so far
    int outstanding = 0;   // sent and not finished
};

struct EngineStats {
    int queued = 0;          // waiting for a sequence slot / KV blocks
    int running = 0;         // sequences in the batch
    int last_batch = 0;      // entries (tokens) in the last forward step
    int kv_blocks_used = 0;
    int kv_blocks_total = 0;
    int64_t steps = 0;
    int n_seq = 0;
    std::vector<ReplicaLoad> replicas;  // empty with a single replica
};

// What the engine thread drives. Every call comes from the engine thread; the callbacks of a
// submitted request (on_token, on_done) run on it too, from step().
class EngineBackend {
public:
    virtual ~EngineBackend() = default;
    // Queues `r`; an error when the request is invalid. Returns the request id.
    virtual Result<int64_t> submit(SchedRequest r) = 0;
    // True when a request must be refused now because the queue is full.
    virtual bool queue_full(int max_queue) const = 0;
    virtual void cancel(int64_t id) = 0;
    // Does what there is to do: one forward step, messages from other ranks. Calls on_step(batch,
    // seconds) after each forward step. False when it did nothing.
    virtual Result<bool> step(const std::function<void(int, double)>& on_step) = 0;
    // Requests are queued or running here; with work elsewhere only (remote replicas), step()
    // may return false and the engine polls again soon.
    virtual bool busy() const = 0;
    virtual void stats(EngineStats& s) const = 0;
    // The engine stops: no call follows (the peers of a distributed backend are told to stop).
    virtual void close() {}
};

// The one-replica backend: a Scheduler over `session`; with a group (serve under mpirun) every
// forward step runs on all the ranks of the replica.
class LocalBackend final : public EngineBackend {
public:
    LocalBackend(Session& session, SchedulerOptions o, SessionGroup* group = nullptr);
    Result<int64_t> submit(SchedRequest r) override { return sched_.submit(std::move(r)); }
    bool queue_full(int max_queue) const override { return sched_.queued() >= max_queue; }
    void cancel(int64_t id) override { sched_.cancel(id); }
    Result<bool> step(const std::function<void(int, double)>& on_step) override;
    bool busy() const override { return sched_.queued() > 0 || sched_.running() > 0; }
    void stats(EngineStats& s) const override;
    void close() override;
    Scheduler& scheduler() { return sched_; }

private:
    Session& session_;
    Scheduler sched_;
    SessionGroup* group_;
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
    // One Scheduler over `session`, on a thread of its own.
    Engine(Session& session, SchedulerOptions o, std::function<void(int, double)> on_step = {});
    // Drives `backend`: on a thread of its own (own_thread), or on whichever thread calls run().
    Engine(std::unique_ptr<EngineBackend> backend, SchedulerOptions o, std::function<void(int, double)> on_step, bool own_thread);
    ~Engine();  // stops the thread; running requests end Cancelled

    // The engine loop on the calling thread (an engine made without a thread of its own), until
    // shutdown(); the backend's close() is its last call.
    void run();

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

    std::unique_ptr<EngineBackend> backend_;
    SchedulerOptions opts_;
    std::function<void(int, double)> on_step_;

    mutable std::mutex mu_;  // guards inbox_, owned_, accepting_, stop_ and the stats snapshot
    std::condition_variable cv_;
    std::vector<Pending> inbox_;
    // Requests the loop took from inbox_ and has not yet refused or seen Done. The drain waits
    // for this, not for the stats snapshot, which lags a step behind the first token.
    std::size_t owned_ = 0;
    std::vector<std::shared_ptr<RequestStream>> live_;  // submitted and not yet Done (engine thread only)
    bool accepting_ = true;
    bool stop_ = false;
    EngineStats snap_;
    std::thread thread_;
};

}  // namespace pl
