// SPDX-License-Identifier: MIT
// A rank's part of the model under tensor and pipeline parallelism, as the model code sees it:
// which heads, FFN rows, vocabulary rows and layers it owns, and the two collectives the forward
// pass needs. No MPI here: src/dist implements TensorParallelOps over MPI (docs/parallelism.md).
//
// Tensor parallelism (Megatron-style), with GGUF's row-major [n_out rows x n_in] matrices:
//   attn_q, attn_k, attn_v, ffn_gate, ffn_up  split by output rows (whole KV-head groups, or query
//                                              heads with their KV heads replicated when the groups
//                                              are too few; FFN rows in whole quantization blocks):
//                                              contiguous row ranges
//   attn_output, ffn_down                     split by input columns: a slice of every row, each
//                                              rank sums a partial product, then one allreduce
//   output (or the tied token_embd)           split by vocabulary rows, logits gathered to rank 0
// Pipeline parallelism: the rank runs layers [layer_begin, layer_end) only.
#pragma once

#include "core/status.h"

#include <algorithm>
#include <cstddef>

namespace pl {

struct ModelConfig;
namespace gguf {
class File;
}

struct ShardSpec {
    int tp_rank = 0;
    int tp_size = 1;
    int layer_begin = 0;
    int layer_end = -1;  // -1: to the last layer

    bool is_full() const { return tp_size == 1 && layer_begin == 0 && layer_end < 0; }
};

// The dimensions of one shard (the whole model for ShardSpec{}).
struct ShardDims {
    int n_heads = 0;      // query heads of this rank
    int n_kv_heads = 0;
    int q_dim = 0;        // n_heads * head_dim
    int kv_dim = 0;       // n_kv_heads * head_dim
    int head_begin = 0;   // first query head
    int kv_head_begin = 0;  // first KV head: the one query head head_begin reads
    bool kv_replicated = false;  // split by query heads: a KV head may also be held by other ranks
    int hidden_dim = 0;   // FFN rows of this rank
    int hidden_begin = 0;
    int vocab_begin = 0;  // output-head rows [vocab_begin, vocab_end)
    int vocab_end = 0;
    int layer_begin = 0;  // layers [layer_begin, layer_end)
    int layer_end = 0;
    bool first_stage() const { return layer_begin == 0; }
    int n_layers() const { return layer_end - layer_begin; }
};

// The granularity, in weights, at which the two column-split matrices may be cut: a slice of a
// block-quantized row must start on a block boundary (on a 256-weight group for q3.5, whose
// activations are rotated per group). 1 for float weights. Model::load takes them from the types
// in the file (the least common multiple over the layers).
struct SplitUnits {
    int attn_out = 1;  // attn_output's columns (query heads x head_dim)
    int ffn_down = 1;  // ffn_down's columns (FFN rows)
};

// The units of the model in `f`: the lcm of each matrix's block (or q3.5 group) over all layers.
SplitUnits split_units(const gguf::File& f, const ModelConfig& c);
// The unit of one weight type (a ggml type id): its block, or its rotation group (q3.5); 1 for
// float types and for ids this build does not know.
int split_unit(uint32_t type);

// The attention heads of tp rank `rank`: query heads [head_begin, head_end) and the KV heads
// [kv_begin, kv_end) they read (GQA: query head h reads KV head h / (n_heads / n_kv_heads)).
// Two ways to cut, both in steps that keep attn_output's column cut on a multiple of
// `attn_out_unit` (split_units().attn_out), the first ranks getting one step more:
//   - whole KV groups (a KV head with all its query heads), whenever there are at least tp steps
//     of them: no KV head is on two ranks;
//   - otherwise query heads (kv_replicated): a rank holds every KV head its query heads read, so a
//     KV head whose group is cut is replicated on each of those ranks, which compute it themselves.
// Fails with the numbers when even query heads are too few: "n_heads=8 is smaller than tp=9 ...",
// "n_heads=32 in units of 2 query heads (256 attn_output columns, ...) makes 16 unit(s), fewer than
// tp=32".
struct HeadSplit {
    int head_begin = 0, head_end = 0;  // query heads
    int kv_begin = 0, kv_end = 0;      // KV heads
    bool kv_replicated = false;        // cut by query heads (see above)
};
Result<HeadSplit> split_heads(int n_heads, int n_kv_heads, int head_dim, int attn_out_unit, int tp, int rank);

// Checks that `s` can shard a model of shape `c` and computes its dimensions. The split may be
// uneven: heads as split_heads() deals them, FFN rows in whole steps of u.ffn_down rows that keep
// every column cut of ffn_down on a multiple of its blocks, the first ranks getting one step more,
// the last rank's range ending at the row's end. Errors name the numbers: "n_heads=8 is smaller
// than tp=9 ...", "FFN size hidden_dim=11008 is 43 blocks of 256 weights (ffn_down), fewer than
// tp=64".
Result<ShardDims> shard_dims(const ModelConfig& c, const ShardSpec& s, const SplitUnits& u = {});

// Rows [begin, end) of `n` rows for part `rank` of `parts` (the first n % parts parts get one more).
inline void split_range(int n, int parts, int rank, int& begin, int& end) {
    const int base = n / parts, extra = n % parts;
    begin = rank * base + (rank < extra ? rank : extra);
    end = begin + base + (rank < extra ? 1 : 0);
}

// Items [begin, end) of `n` for part `rank` of `parts`, cut only at multiples of `step` items
// (the last part ends at n): split_range over the ceil(n / step) steps. Equal to split_range(n)
// when step divides n / parts.
inline void split_steps(int n, int step, int parts, int rank, int& begin, int& end) {
    split_range((n + step - 1) / step, parts, rank, begin, end);
    begin = std::min(begin * step, n);
    end = std::min(end * step, n);
}

// The collectives of a tensor-parallel forward pass, over the ranks of one pipeline stage. Called
// from the thread that runs the forward pass (never inside an OpenMP region).
class TensorParallelOps {
public:
    virtual ~TensorParallelOps() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // x[0..n) <- the sum over the ranks of x[0..n); the same bits on every rank.
    virtual void allreduce_sum(float* x, size_t n) = 0;
    // Rank r holds `local`: (rows, cols_r) with cols_r = end_r - begin_r of a split_range of
    // `total_cols`. Rank 0 receives out: (rows, total_cols) with rank r's block at its columns;
    // `out` is not touched on other ranks.
    virtual void gather_columns(const float* local, int rows, int total_cols, float* out) = 0;
};

}  // namespace pl
