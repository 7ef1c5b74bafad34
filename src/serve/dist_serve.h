// SPDX-License-Identifier: MIT
// `parallama serve` under mpirun: tensor parallelism (tp), pipeline stages (pp) and data-parallel
// replicas (dp), any tp x pp x dp grid (docs/serving.md, "Serving over MPI").
//
//   - World rank 0 runs the HTTP server and the engine. The engine loop runs on the thread that
//     initialised MPI and is the only thread of the process that makes MPI calls
//     (MPI_THREAD_FUNNELED); the HTTP server runs on other threads and only touches the engine's
//     inbox and the request streams.
//   - Each replica has a root, tp rank 0 of stage 0 (world rank d * tp * pp), which owns a
//     Scheduler. Every call the scheduler makes on its Session that changes it (a forward step's
//     entries, a sequence's freed KV blocks) goes to the replica's other ranks (ReplicaGroup):
//     broadcast to stage 0's tp peers, then down the pipeline stage by stage with the hidden
//     states; the peers replay it on their shard (run_replica_peer). The forward pass's tp
//     collectives (model/shard.h) join each stage's ranks, every rank's paged KV cache stays in
//     the same state, and the last stage sends the logits back to the root.
//   - With dp > 1, world rank 0's engine drives a ReplicaDispatcher: each request goes to the
//     replica with the fewest unfinished requests (ties: round robin), replica 0 being rank 0's
//     own Scheduler; the other roots (run_replica_root) run theirs and, after every step, send
//     world rank 0 the step's tokens, finished requests and their load.
//   - Stop: the engine's last call (close()) sends Stop to every replica root, and each root to
//     its replica's other ranks (the same way as a step), so every rank leaves its loop and the job ends with MPI_Finalize. Peers wait for work napping
//     between polls (Comm::bcast_idle, Comm::recv_idle), so an idle server costs no core. A rank
//     that dies ends the job through mpirun; MPI errors are fatal; a malformed message is a
//     PL_CHECK (MPI_Abort). A forward step that fails fails alike on every rank of a replica
//     (the same entries and cache): the root ends the step's requests with FinishReason::Error
//     (a later stage failing where stage 0 did not would be a bug: dist::fatal ends the job).
#pragma once

#include "core/status.h"
#include "dist/comm.h"
#include "dist/topology.h"
#include "serve/engine.h"
#include "serve/scheduler.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

namespace pl {

// A replica root's SessionGroup: every call goes first to the root's stage-0 tp peers (a
// broadcast); with pipeline stages, each stage-0 rank then hands (entries, hidden states) to the
// same tp rank of the next stage, and so on, and the last stage's tp rank 0 sends the logits
// back to the root. One step is in flight at a time (pipeline stages split the model's memory;
// they do not overlap steps here).
class ReplicaGroup final : public SessionGroup {
public:
    ReplicaGroup(dist::Grid& grid, Session& session);
    Status decode(std::span<const BatchEntry> entries, float* logits_out) override;
    void seq_free(int seq) override;
    void close() override;  // every other rank of the replica leaves run_replica_peer()

private:
    dist::Grid& g_;
    Session& s_;
    std::vector<float> hidden_;  // (entries, dim) after stage 0's layers
};

// Every rank of a replica but its root (tp rank > 0 of stage 0, any rank of a later stage): runs
// the root's Session calls on `session` (this rank's shard, with its TensorParallelOps set) and
// passes them down the pipeline, until the root closes. Collective with the root's ReplicaGroup.
void run_replica_peer(dist::Grid& grid, Session& session);

// A replica root other than world rank 0: runs the requests world rank 0 sends on `replica`
// (its Scheduler, over its ReplicaGroup) and reports back after every step, until Stop.
void run_replica_root(dist::Comm& world, LocalBackend& replica);

// World rank 0's engine backend with dp > 1 replicas: replica 0 is `local` (this rank's
// Scheduler), replica d > 0 is run by world rank roots[d - 1].
class ReplicaDispatcher final : public EngineBackend {
public:
    ReplicaDispatcher(dist::Comm& world, std::unique_ptr<LocalBackend> local, std::vector<int> roots);
    Result<int64_t> submit(SchedRequest r) override;
    // Full when even the least loaded replica already has max_queue requests beyond its slots.
    bool queue_full(int max_queue) const override;
    void cancel(int64_t id) override;
    Result<bool> step(const std::function<void(int, double)>& on_step) override;
    bool busy() const override;
    void stats(EngineStats& s) const override;
    void close() override;

    // The replica the next request goes to: the fewest unfinished requests, ties broken round
    // robin after the last one chosen (so that even one request at a time alternates).
    static int pick(const std::vector<ReplicaLoad>& load, int last);

    // What a replica root reports after a step (the wire header of its message).
    struct Report {
        int32_t queued = 0, running = 0, kv_blocks_used = 0;
        int32_t batch = 0;  // entries of the step just run (0: none; -1: the replica stopped)
        int64_t steps = 0;
        double step_s = 0;
        int32_t n_events = 0;
    };

private:
    struct Route {
        int replica = 0;
        int64_t local_id = -1;  // the id in replica 0's Scheduler
        // Remote requests: the callbacks, and whether the request was already ended here
        // (cancelled, its client gone) while its replica still finishes it.
        std::function<bool(int32_t)> on_token;
        std::function<void(FinishReason, int)> on_done;
        bool resolved = false;
        int tokens = 0;
    };
    void apply(const dist::Comm::Message& m, const std::function<void(int, double)>& on_step);
    void resolve_cancelled(int64_t id, Route& r);

    dist::Comm& world_;
    std::unique_ptr<LocalBackend> local_;
    std::vector<int> roots_;
    std::vector<ReplicaLoad> load_;   // per replica
    std::vector<Report> reports_;     // per replica: the last report (replica 0: unused)
    std::unordered_map<int64_t, Route> routes_;
    int64_t next_id_ = 1;
    int last_pick_ = -1;
    int slots_ = 1;  // sequences per replica
};

}  // namespace pl
