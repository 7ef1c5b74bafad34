// SPDX-License-Identifier: MIT
// Reference (de)quantizers: the executable spec of every weight format, bit-exact with GGML's
// scalar reference code (ggml-quants.c). Plain loops, no intrinsics, no threads, no logging.
// SIMD kernels are tested against these, and they back the `scalar` ISA.
//
// Contract (all functions):
//   - n is the number of weights and a multiple of the format's block size (1 for f32/f16/bf16,
//     32 for q4_0..q8_0, 256 for k-quants). Behaviour for other n is undefined.
//   - Quantized data is an array of n / kElems Block* structs (quant/<fmt>.h), aligned to at
//     least alignof(Block) (always true for GGUF tensor data, which is 32-byte aligned).
//   - dequantize_row_*: src = blocks, out = n floats.  quantize_row_*: x = n floats, dst = blocks.
//   - Pure functions of their inputs; src and out must not overlap.
// Exactness: the dequantizers evaluate GGML's expressions in GGML's order in fp32 and are
// bit-exact with it as long as the compiler does not contract a*b+c into an FMA (the default
// x86-64 baseline has no FMA; builds with -march=native should add -ffp-contract=off for ref/).
#pragma once

#include <cstdint>

namespace pl {

// Plain float types (GgmlType::F32, F16, BF16). f16/bf16 conversions are round-to-nearest-even
// (core/fp16.h); bf16 quantize quiets NaNs like ggml_compute_fp32_to_bf16.
void dequantize_row_f32_ref(const void* src, float* out, int64_t n);
void quantize_row_f32_ref(const float* x, void* dst, int64_t n);
void dequantize_row_f16_ref(const void* src, float* out, int64_t n);
void quantize_row_f16_ref(const float* x, void* dst, int64_t n);
void dequantize_row_bf16_ref(const void* src, float* out, int64_t n);
void quantize_row_bf16_ref(const float* x, void* dst, int64_t n);

// 32-weight block formats.
void dequantize_row_q4_0_ref(const void* src, float* out, int64_t n);
void quantize_row_q4_0_ref(const float* x, void* dst, int64_t n);
void dequantize_row_q4_1_ref(const void* src, float* out, int64_t n);
void quantize_row_q4_1_ref(const float* x, void* dst, int64_t n);
void dequantize_row_q5_0_ref(const void* src, float* out, int64_t n);
void quantize_row_q5_0_ref(const float* x, void* dst, int64_t n);
void dequantize_row_q5_1_ref(const void* src, float* out, int64_t n);
void quantize_row_q5_1_ref(const float* x, void* dst, int64_t n);
void dequantize_row_q8_0_ref(const void* src, float* out, int64_t n);
void quantize_row_q8_0_ref(const float* x, void* dst, int64_t n);

// 256-weight k-quant super-blocks (dequantize only; GGML's k-quant quantizers are search-based
// and not reproduced here).
void dequantize_row_q2_k_ref(const void* src, float* out, int64_t n);
void dequantize_row_q3_k_ref(const void* src, float* out, int64_t n);
void dequantize_row_q4_k_ref(const void* src, float* out, int64_t n);
void dequantize_row_q5_k_ref(const void* src, float* out, int64_t n);
void dequantize_row_q6_k_ref(const void* src, float* out, int64_t n);
void dequantize_row_q8_k_ref(const void* src, float* out, int64_t n);

}  // namespace pl
