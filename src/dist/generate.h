// SPDX-License-Identifier: MIT
// Distributed generation over a tp x pp x dp grid (docs/parallelism.md).
//
// Every rank of the job calls generate() with its own model shard. The prompts (tokenized by
// world rank 0) go to the replicas: prompt i to replica i % dp, or, for a single prompt, the same
// prompt to every replica (their outputs must agree; world rank 0 checks). Inside a replica:
//   - the replica root (stage 0, tp rank 0) samples; it broadcasts each step's entries to the
//     other tp ranks of stage 0;
//   - stage s hands (entries, hidden states) to stage s+1 point to point (each tp rank to the same
//     tp rank), the last stage's tp rank 0 sends the gathered logits back to the root;
//   - the replica's sequences are cut into micro-batches that follow each other round-robin, so
//     while one micro-batch is sampled the others occupy the later stages.
// All sends are non-blocking (Comm::send), receives follow one global order of work items, so
// the schedule cannot deadlock.
#pragma once

#include "core/status.h"
#include "dist/topology.h"
#include "sampling/sampler.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace pl {
class Model;
}

namespace pl::dist {

struct GenerateJob {
    std::vector<std::vector<int32_t>> prompts;  // on world rank 0 (generate() broadcasts them)
    int n_predict = 16;
    int n_ctx = 0;            // 0: the longest prompt + n_predict
    int micro_batches = 0;    // per replica; 0: min(sequences, pp)
    SamplingParams sampling;  // each sequence samples with its own sampler seeded like a lone run
    bool ignore_eos = false;
    std::function<bool(int32_t)> is_eog;  // on replica roots
};

// One rank's figures (all of them gathered to world rank 0).
struct RankReport {
    int world_rank = 0, dp_rank = 0, pp_rank = 0, tp_rank = 0;
    int layer_begin = 0, layer_end = 0;
    int steps = 0;              // forward steps (work items) this rank ran
    double wall_s = 0;          // from the first to the last work item of the rank's loop
    double compute_s = 0;       // inside the forward pass, minus its tp communication
    double tp_comm_s = 0;       // allreduces and the logits gather
    double p2p_comm_s = 0;      // stage-to-stage and logits messages, waiting for them included
    uint64_t tp_bytes = 0;      // bytes this rank sent in tp collectives
    uint64_t p2p_bytes = 0;
    long rss_load_kib = 0;      // resident memory after loading the shard
    long rss_peak_kib = 0;      // peak resident memory (VmHWM) at the end
    // Fraction of the loop the rank spent neither computing nor in tp collectives: the pipeline
    // bubble (waiting for the previous stage or for sampling) plus p2p transfer time.
    double bubble() const { return wall_s > 0 ? 1.0 - (compute_s + tp_comm_s) / wall_s : 0.0; }
};

struct GenerateResult {
    std::vector<std::vector<int32_t>> outputs;  // per prompt (world rank 0 only)
    std::vector<RankReport> ranks;              // per world rank (world rank 0 only)
    double wall_s = 0;
    int tokens = 0;  // generated tokens over all sequences
};

// Collective over the world. `model` is this rank's shard (Model::load with shard_of()).
Result<GenerateResult> generate(Grid& grid, const Model& model, const GenerateJob& job, long rss_load_kib);

// A line of /proc/self/status in KiB ("VmRSS", "VmHWM"); 0 when unavailable.
long proc_status_kib(const char* key);

}  // namespace pl::dist
