// SPDX-License-Identifier: MIT
// A rank's part of the model under tensor and pipeline parallelism, as the model code sees it:
// which heads, FFN rows, vocabulary rows and layers it owns, and the two collectives the forward
// pass needs. No MPI here: src/dist implements TensorParallelOps over MPI (docs/parallelism.md).
//
// Tensor parallelism (Megatron-style), with GGUF's row-major [n_out rows x n_in] matrices:
//   attn_q, attn_k, attn_v, ffn_gate, ffn_up  split by output rows (whole heads / KV-head groups,
//                                              hidden_dim/tp FFN rows): contiguous row ranges
//   attn_output, ffn_down                     split by input columns: a slice of every row, each
//                                              rank sums a partial product, then one allreduce
//   output (or the tied token_embd)           split by vocabulary rows, logits gathered to rank 0
// Pipeline parallelism: the rank runs layers [layer_begin, layer_end) only.
#pragma once

#include "core/status.h"

#include <cstddef>

namespace pl {

struct ModelConfig;

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
    int kv_head_begin = 0;
    int hidden_dim = 0;   // FFN rows of this rank
    int hidden_begin = 0;
    int vocab_begin = 0;  // output-head rows [vocab_begin, vocab_end)
    int vocab_end = 0;
    int layer_begin = 0;  // layers [layer_begin, layer_end)
    int layer_end = 0;
    bool first_stage() const { return layer_begin == 0; }
    int n_layers() const { return layer_end - layer_begin; }
};

// Checks that `s` can shard a model of shape `c` and computes its dimensions. Errors name the
// numbers: "n_heads=8 is not divisible by tp=3". (Weight-type alignment of the column splits is
// checked when the weights are bound, Model::load.)
Result<ShardDims> shard_dims(const ModelConfig& c, const ShardSpec& s);

// Rows [begin, end) of `n` rows for part `rank` of `parts` (the first n % parts parts get one more).
inline void split_range(int n, int parts, int rank, int& begin, int& end) {
    const int base = n / parts, extra = n % parts;
    begin = rank * base + (rank < extra ? rank : extra);
    end = begin + base + (rank < extra ? 1 : 0);
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
