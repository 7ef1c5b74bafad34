// SPDX-License-Identifier: MIT
// Float reference ops of the forward pass (rmsnorm, rope, softmax, silu-gate) and the generic
// matrix-vector product over any readable weight type. These are the correctness baseline: the
// fast int8-activation kernels of the 3.5-bit work are tested against them.
//
// Threading: matvec splits rows over the OpenMP team (one parallel region per call); the other ops
// are single-threaded and meant to be called per row/head.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kernels/cpu/kernels.h"

namespace pl {

// A 2-D weight matrix stored in a GGML type: `rows` rows of `cols` elements, row-major, each row
// `row_bytes` bytes (cols is a multiple of the type's block size). Points into the mapped file.
struct WeightView {
    std::string name;
    uint32_t type = 0;
    int64_t rows = 0;
    int64_t cols = 0;
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;

    const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
    size_t nbytes() const { return static_cast<size_t>(rows) * row_bytes; }
};

// Sum of a[i]*b[i] in float with 8 interleaved partial sums (vectorisable, deterministic).
float dot_f32(const float* a, const float* b, int64_t n);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n.  out may alias x.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);

// In-place softmax over x[0..n).
void softmax(float* x, int64_t n);

// Rotary position embedding in LLaMA's pairwise layout (as stored in GGUF, "norm" rope type):
// for each head, pairs (2i, 2i+1) with i < n_rot/2 are rotated by angle pos * theta_i where
// theta_i = base^(-2i/n_rot) / freq_factors[i] (freq_factors may be null).
// vec: (n_heads, head_dim), in place.
void rope(float* vec, int n_heads, int head_dim, int n_rot, int pos, float base, const float* freq_factors);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);

// Dequantizes row r of W into out[0..W.cols).
void dequantize_row(const WeightView& W, int64_t r, float* out);

// Y[i, r] = dot(W[r, :], X[i, :]) for i < n, r < W.rows. X: (n, W.cols), Y: (n, W.rows).
// Float path: each weight row is dequantized once and used for all n rows of X. Parallel over
// weight rows.
void matmul(const WeightView& W, const float* X, int64_t n, float* Y);
// The n = 1 case.
void matvec(const WeightView& W, const float* x, float* y);

// How matmul_q8a spreads one product over the OpenMP team (one parallel region per call, the
// team's threads reused from call to call; docs/performance.md compares them):
//   rows    static split of weight rows (whole rows per thread, contiguous)
//   nested  a 2-D split: weight rows x a second level, columns (K) for one activation row (the
//           partial sums are added at the end) or activation rows for several
//   tiled   weight-row tiles of about half the L2, and for many activation rows, chunks of
//           activation rows that fit a quarter of it, so a tile is reused from L2 per chunk
//   tasks   OpenMP tasks over row blocks (taskloop): idle threads steal work
enum class Threading { Rows, Nested, Tiled, Tasks };
const char* threading_name(Threading t);
// "rows", "nested", "tiled", "tasks"; nullopt for anything else.
std::optional<Threading> parse_threading(std::string_view name);
// The process-wide choice (default: tasks, the fastest here by measurement, docs/performance.md).
Threading matmul_threading();
void set_matmul_threading(Threading t);

// Y[i, r] = dot(W[r, :], a[i, :]) with an int8 kernel from `k` (which must have one for W.type);
// a holds a.rows rows of W.cols quantized activations; Y: (a.rows, W.rows). Threaded as chosen by
// `threading` (default: matmul_threading()).
void matmul_q8a(const WeightView& W, const Q8Acts& a, float* Y, const CpuKernels& k);
void matmul_q8a(const WeightView& W, const Q8Acts& a, float* Y, const CpuKernels& k, Threading threading);
// Several products of the same activations (q/k/v, gate/up), Ys[i] = Ws[i] x a, as matmul_q8a
// computes each of them, in ONE parallel region when the matrices share type and width and the
// threading is `tasks` (otherwise one call each). At most 4 matrices.
void matmul_q8a_multi(std::span<const WeightView* const> Ws, const Q8Acts& a, std::span<float* const> Ys,
                      const CpuKernels& k);
// The single-row case (a.rows must be 1).
void matvec_q8a(const WeightView& W, const Q8Acts& a, float* y, const CpuKernels& k);

}  // namespace pl
