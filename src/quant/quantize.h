// SPDX-License-Identifier: MIT
// Row quantizers with optional importance weighting: the reference algorithms of GGML's
// quantizers (ggml-quants.c quantize_row_*_ref and quantize_*_impl), so that quality comparisons
// between our formats and GGML's are made in-house on the same weights. See docs/quantize.md.
//
// Contract (every QuantizeFn):
//   - x[0..n) is ONE matrix row and n a multiple of the format's block size (32 or 256); dst
//     receives n / kElems blocks (row_bytes(type, n) bytes). Behaviour for other n is undefined.
//   - importance: nullptr, or n non-negative weights, one per element of x (for a weight matrix,
//     the imatrix entry of each input column: the mean of squared activations, docs/quantize.md).
//     With nullptr every function produces exactly GGML's plain reference bytes
//     (quantize_row_<fmt>_ref). With importance it minimises sum_i imp_i * f(x) * (x_i - q_i)^2
//     as GGML's quantize_<fmt>(..., quant_weights) does, where f is the format's extra
//     weighting (sqrt(sigma^2 + x_i^2) for Q3_K/Q4_K/Q4_0/Q5_0, 1 for Q6_K; see each function).
//     Some weighted variants compute sigma^2 over the whole row, so a row must not be split.
//   - Pure functions: deterministic, no threads, no allocation, no logging; x and dst must not
//     overlap. Safe to call concurrently on different rows.
#pragma once

#include "quant/formats.h"

#include <cstdint>

namespace pl {

// Quantizes one row x[0..n) into dst. importance: n weights or nullptr (see above).
using QuantizeFn = void (*)(const float* x, void* dst, int64_t n, const float* importance);

// The quantizer for `type`: the importance-aware one where we have it (Q3_K, Q4_K, Q6_K, Q4_0,
// Q5_0, Q8_0), otherwise a wrapper of the type table's quantize_row that ignores `importance`
// (F32, F16, BF16, Q4_1, Q5_1). nullptr for types we cannot write.
QuantizeFn quantize_fn(GgmlType type);
QuantizeFn quantize_fn(uint32_t type_id);
// True when quantize_fn(type) makes use of an importance vector.
bool uses_importance(uint32_t type_id);

// ---- Plain reference quantizers (bit-exact with GGML's quantize_row_<fmt>_ref) ----------------
// Q3_K: per 16-weight sub-block make_q3_quants (x^2-weighted coordinate descent), 6-bit signed
// sub-block scales relative to the largest-magnitude one, then every weight re-rounded with its
// final (fp16 * 6-bit) scale.
void quantize_row_q3_k_ref(const float* x, void* dst, int64_t n);
// Q4_K: per 32-weight sub-block an affine (scale, min) search weighted by rms + |x|, 6-bit
// scales and mins against their maxima, re-rounding with the final scales.
void quantize_row_q4_k_ref(const float* x, void* dst, int64_t n);
// Q6_K: per 16-weight sub-block make_qx_quants (x^2-weighted), int8 scales against the
// largest-magnitude one (-128 / max), re-rounding with the final scales.
void quantize_row_q6_k_ref(const float* x, void* dst, int64_t n);

// ---- Importance-aware quantizers (nullptr importance = the plain reference above) --------------
// Q3_K: weights imp * sqrt(sigma^2 + x^2), sigma^2 = 2 * mean x^2 over the 256-weight super-block;
// sub-block scales by make_qx_quants, then the 16 scales themselves by make_qx_quants weighted by
// each sub-block's total weight (GGML quantize_row_q3_K_impl).
void quantize_q3_k(const float* x, void* dst, int64_t n, const float* importance);
// Q4_K: same weights as Q3_K; affine search per 32-weight sub-block, scales/mins by make_qp_quants
// (GGML quantize_row_q4_K_impl).
void quantize_q4_k(const float* x, void* dst, int64_t n, const float* importance);
// Q6_K: make_qx_quants per 16-weight sub-block weighted by imp alone (GGML quantize_row_q6_K_impl).
void quantize_q6_k(const float* x, void* dst, int64_t n, const float* importance);
// Q4_0 / Q5_0: make_qx_quants per 32-weight block with weights imp * sqrt(sigma^2 + x^2),
// sigma^2 = mean x^2 over the ROW (GGML quantize_row_q4_0_impl / q5_0_impl).
void quantize_q4_0(const float* x, void* dst, int64_t n, const float* importance);
void quantize_q5_0(const float* x, void* dst, int64_t n, const float* importance);
// Q8_0: GGML ignores importance for Q8_0; ours searches 19 trial scales around max|x| / 127
// (levels kept in [-127, 127] as the reference's, so int8 kernels may rely on that), keeping the
// one whose weighted least-squares scale gives the smallest error sum imp * sqrt(sigma^2 + x^2) *
// err^2 (sigma^2 over the row). Never worse in that error than the plain reference, up to the
// fp16 rounding of the scale.
void quantize_q8_0(const float* x, void* dst, int64_t n, const float* importance);

}  // namespace pl
