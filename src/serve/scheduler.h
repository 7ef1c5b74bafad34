// SPDX-License-Identifier: MIT
// Continuous-batching scheduler over one Session (issue #4): requests are admitted into the
// running batch at every step, long prompts are prefilled in chunks so decoding sequences keep
// getting a token per step, per-request limits are enforced, and cancelled requests give their
// sequence slot and KV blocks back at the next step. Single-threaded: the caller (the server's
// engine thread, or a test) calls submit/cancel/step from one thread.
#pragma once

#include "core/status.h"
#include "model/llama.h"
#include "sampling/sampler.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

namespace pl {

enum class FinishReason { Length, Stop, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "length", "stop", "cancelled", "error"

struct SchedRequest {
    std::vector<int32_t> prompt;  // token ids, not empty
    int max_tokens = 16;          // >= 1
    SamplingParams sampling;
    std::vector<int32_t> stop_tokens;  // generation ends after any of these (e.g. end-of-generation ids)
    // Called with each generated token; return false to cancel (a client that went away).
    std::function<bool(int32_t token)> on_token;
    // Called once at the end, with the generated count.
    std::function<void(FinishReason reason, int n_generated)> on_done;
};

// The scheduler's Session when it is one part of a distributed model (serve under mpirun,
// serve/dist_serve.h): the calls that change the session go here instead, and run on every rank
// that holds a part of the model (tensor-parallel peers, pipeline stages), so that the forward
// pass's collectives join them and every part's KV cache stays in the same state. Called on the
// scheduler's thread.
class SessionGroup {
public:
    virtual ~SessionGroup() = default;
    // Session::decode() over the whole group; the logits come back here.
    virtual Status decode(std::span<const BatchEntry> entries, float* logits_out) = 0;
    // Session::seq_free() on every part.
    virtual void seq_free(int seq) = 0;
    // The group's last use (the server stops): the other ranks stop too. Called by the engine.
    virtual void close() {}
};

struct SchedulerOptions {
    int max_queue = 64;       // waiting requests beyond this are refused
    int step_tokens = 64;     // tokens per forward step (decode tokens first, then prefill chunks)
    int prefill_chunk = 32;   // at most this many prompt tokens of one sequence per step
};

class Scheduler {
public:
    // The session's n_seq() is the number of concurrent sequences; its KV pool bounds the tokens.
    Scheduler(Session& session, SchedulerOptions o);

    // Queues a request; errors: those of check(), queue full. Returns the request id.
    Result<int64_t> submit(SchedRequest r);
    // Whether this scheduler could take `r`: errors for an empty prompt, max_tokens < 1, a token
    // id out of range, prompt + max_tokens beyond the context or the whole KV pool, bad sampling.
    Status check(const SchedRequest& r) const;
    // Not owned; null (the default): the Session alone.
    void set_group(SessionGroup* g) { group_ = g; }
    // Cancels a queued or running request (its on_done gets Cancelled at the next step).
    void cancel(int64_t id);
    // One forward step over every running sequence; false when there was nothing to do.
    Result<bool> step();

    int queued() const { return static_cast<int>(queue_.size()); }
    int running() const;
    int64_t steps() const { return steps_; }
    int last_batch() const { return last_batch_; }  // entries in the last step

private:
    struct Seq {
        bool active = false;
        int64_t id = -1;
        SchedRequest req;
        Sampler sampler{SamplingParams{}, 1};
        int fed = 0;        // prompt tokens already in the cache
        int len = 0;        // tokens in the cache
        int generated = 0;
        int32_t next = -1;  // token to feed next (after the prompt)
        bool cancelled = false;
        int reserved_blocks = 0;  // KV blocks promised at admission (prompt + max_tokens)
    };
    void finish(Seq& s, FinishReason why);
    int blocks_for(int tokens) const { return (tokens + Session::kKvBlock - 1) / Session::kKvBlock; }

    Session& session_;
    SessionGroup* group_ = nullptr;
    SchedulerOptions o_;
    std::deque<std::pair<int64_t, SchedRequest>> queue_;
    std::vector<int64_t> cancel_queued_;
    std::vector<Seq> seqs_;
    int64_t next_id_ = 1;
    int64_t steps_ = 0;
    int last_batch_ = 0;
    int promised_ = 0;  // KV blocks promised to running sequences
    std::vector<float> logits_;
};

}  // namespace pl
