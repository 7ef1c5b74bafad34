// SPDX-License-Identifier: MIT
// `parallama plan`: an analytic cost model of distributed decoding (docs/parallelism.md, "The
// cost model"). Pure arithmetic, no MPI: what a tp x pp x dp layout of a model shape should reach
// on devices of a given memory bandwidth and int8 rate, linked by links of a given bandwidth and
// latency.
//
// Per decode step of one micro-batch of b tokens on one pipeline stage of L/P layers:
//   weights  = (L/P) * layer_bytes_T  (+ head_bytes / T on the last stage)     bytes per rank
//   kv       = b * ctx * (L/P) * 2 * kv_dim_T * kv_bytes                       attention reads
// where layer_bytes_T = layer_bytes / T and kv_dim_T = kv_dim / T when the heads split in whole KV
// groups; when they cannot (n_kv_heads < T) the query heads are split and each rank also holds
// the KV heads its query heads read (model/shard.h, shard_dims), so attn_k/attn_v rows and the
// KV cache count every replica: kv_dim_T = head_dim * (KV heads summed over the T ranks) / T, and
// layer_bytes_T grows by 2 * dim * (kv_dim_T - kv_dim / T) weights.
//   t_mem    = (weights + kv) / (bandwidth * efficiency)
//   t_comp   = 2 * weight_params_rank * b / int8_rate
//   t_dev    = max(t_mem, t_comp)                                   (roofline)
//   t_ar     = 2 (T-1) * latency + 2 (T-1)/T * b * dim * 4 / link_bw   (ring allreduce, one vector)
//   t_tp     = 2 * (L/P) * t_ar + gather of the logits (last stage) + one entry broadcast
//   t_stage  = t_dev + t_tp
//   t_p2p    = latency + b * dim * 4 / link_bw                         (stage to stage)
// Decode, M micro-batches of b sequences round-robin: a round advances every micro-batch by one
// token and lasts max(M * t_stage_max, P * t_stage_max + (P-1) * t_p2p); tokens/s = M b D / round.
// Prefill of a prompt of n tokens split into M micro-batches (GPipe): (M + P - 1) steps of n/M
// tokens, the bubble (P-1)/(M+P-1).
// Links: the T ranks of a tp group sit on one node when T <= devices_per_node (the intra-node
// link), else the inter-node link; stage-to-stage messages cross nodes when a replica spans nodes.
#pragma once

#include "core/status.h"
#include "model/shard.h"

#include <string>
#include <vector>

namespace pl::dist {

struct PlanModel {
    std::string name;
    int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0;
    bool tied_embeddings = false;
    double bytes_per_weight = 0;  // of the matrices (q3.5: 3.5/8 + scales, from the type's block)
    std::string type;
    SplitUnits units;             // column units of attn_output / ffn_down (split_units; 1 for floats)
    double layer_params() const;  // weights of one layer's seven matrices
    double head_params() const { return static_cast<double>(vocab_size) * dim; }
    double kv_dim() const { return static_cast<double>(dim) / n_heads * n_kv_heads; }
    double head_dim() const { return static_cast<double>(dim) / n_heads; }
};

struct PlanLink {
    double gbps = 0;       // bytes per second / 1e9 of one rank's link
    double latency_s = 0;  // per message (a ring step)
};

struct PlanMachine {
    std::string name;
    double mem_gbps = 0;         // memory bandwidth of one device (rank)
    double efficiency = 1;       // fraction of mem_gbps the decode kernels stream at
    double int8_gops = 0;        // int8 multiply-add rate of one device (GOP/s, 2 ops per MAC)
    double mem_bytes = 0;        // memory of one device (0: unknown)
    int devices_per_node = 1;
    PlanLink intra;              // between devices of a node
    PlanLink inter;              // between nodes
};

struct PlanLayout {
    int tp = 1, pp = 1, dp = 1;
    int batch = 1;          // sequences per replica
    int micro_batches = 0;  // 0: min(batch, pp)
    int ctx = 512;          // tokens in the KV cache (the attention reads and the KV memory)
    int prompt = 0;         // prompt tokens for the prefill figure (0: none)
    double kv_bytes = 2;    // per KV element (f16)
};

struct PlanResult {
    // Per step of one micro-batch on the slowest stage.
    double weight_bytes_rank = 0;  // streamed per step
    double t_mem_s = 0, t_compute_s = 0, t_tp_s = 0, t_stage_s = 0, t_p2p_s = 0;
    double tp_bytes_rank = 0;      // sent per step by one rank in tp collectives
    // Decode.
    double round_s = 0;            // every micro-batch one token
    double tokens_per_s = 0;       // aggregate over the D replicas
    double tokens_per_s_seq = 0;   // one sequence's rate
    double comm_share = 0;         // (tp + p2p time) / (time of a token's path)
    double bubble = 0;             // 1 - busy share of a stage in a round
    // Prefill (layout.prompt > 0).
    double prefill_tokens_per_s = 0;
    double prefill_bubble = 0;
    // Memory of one device (the largest stage).
    double mem_weights_bytes = 0, mem_kv_bytes = 0;
    bool fits = true;              // mem_weights + kv <= machine.mem_bytes (when known)
    bool tp_within_node = true;
    // KV heads a rank holds, averaged over the tp group (n_kv_heads / T without replication).
    double kv_heads_rank = 0;
    int kv_head_copies = 0;        // KV heads summed over the tp ranks (n_kv_heads without replication)
    bool kv_replicated = false;    // the query heads are split, KV heads replicated (n_kv_heads < T)
};

// Checks the layout (degrees >= 1; the tp split as the loader cuts it, shard_dims() with m.units:
// enough query heads and FFN blocks; pp <= n_layers) and evaluates the model above.
Result<PlanResult> plan(const PlanModel& m, const PlanMachine& hw, const PlanLayout& l);

// Ring allreduce of `bytes` over `ranks` on `link`: 2 (T-1) latency + 2 (T-1)/T bytes / bw.
double ring_allreduce_s(double bytes, int ranks, const PlanLink& link);

}  // namespace pl::dist
