// SPDX-License-Identifier: MIT
// q3.5 (parallama type id 200, not a GGML type), layout version 2: 3.5 bits per weight, every
// scale included, for rows of any multiple of 32. Full layout, arithmetic and measurements:
// docs/formats.md.
//
// A row of n weights is cut into GROUPS: floor(n / 256) full groups of 256, then one tail group of
// the remaining n % 256 (a multiple of 32, possibly none). A group of G weights takes 7G/16 bytes,
// so a row takes 14 bytes per 32 weights whatever its grouping (the "block" of the type table).
//
// Rotation. Each group is stored ROTATED: c = R w, R orthonormal, so dot(w, x) = dot(c, R x) and
// the int8 kernels dot the stored codes with rotated activations (rotate_q3_5):
//   full group:  R = H256 * S / 16        (S = diag(+-1) from the 256 bits of kQ3_5Signs)
//   tail group:  R = H32 * S32 / sqrt(32) per 32-chunk (S32 from the low 32 bits of kQ3_5Signs[0])
// H is the Sylvester Hadamard matrix. The rotation spreads outliers over the group, so heavy-
// tailed weights (and activations) quantize like Gaussian ones.
//
// Group of G weights, p = G / 4 ("step"):
//   bytes [0, G/4)        mags: byte i, bits 2t..2t+1 = magnitude index of element p*t + i
//                          (t = 0..3), so one load gives four steps of p elements each
//   bytes [G/4, 3G/8)     signs: bit e (little-endian over the bytes) = 1 when element e < 0
//   bytes [3G/8, 7G/16)   scales: byte L = E4M4 code of sub-block L, L = 0 .. G/16 - 1, where
//                          sub-block L = elements { p*t + 4L + j : t = 0..3, j = 0..3 }
//   c[e] = scale(k_L) * (sign_e ? -1 : +1) * kQ3_5Mag[mag_e]
// Sub-block L is exactly what int32 lane L of a vpdpbusd over the group's four steps accumulates,
// so the AVX-512 kernel applies scales once per group, not once per 64 weights.
//
// The magnitudes are the 4 positive levels of the 8-level Lloyd-Max quantizer of a Gaussian,
// scaled to int8 (max 127); the kernels look them up with vpermb/pshufb.
//
// Activations for q3.5 rows are rotated the same way and quantized to int8 with ONE scale per
// group (quantize_acts_q3_5_ref), which is what lets the kernels sum whole groups in int32.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace pl {

// The unit of the type table: 32 weights in 14 bytes (rows are whole groups, see above).
struct BlockQ3_5 {
    static constexpr int kElems = 32;
    uint8_t bytes[14];
};
static_assert(sizeof(BlockQ3_5) == 14);

inline constexpr uint32_t kQ3_5TypeId = 200;
inline constexpr int kQ3_5Group = 256;                      // elements of a full group
inline constexpr int kQ3_5GroupBytes = kQ3_5Group * 7 / 16;  // 112
inline constexpr int8_t kQ3_5Mag[4] = {14, 44, 78, 127};
// Sign vector of the rotation: bit e set = element e of each group is negated before H.
// (splitmix64 outputs 1..4 of seed 0.)
inline constexpr uint64_t kQ3_5Signs[4] = {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL, 0x06c45d188009454fULL,
                                           0xf88bb8a8724c81ecULL};

// Byte offsets of the parts of a group of g elements.
inline constexpr int64_t q3_5_signs_offset(int64_t g) { return g / 4; }
inline constexpr int64_t q3_5_scales_offset(int64_t g) { return g * 3 / 8; }
inline constexpr int64_t q3_5_group_bytes(int64_t g) { return g * 7 / 16; }

// Scale of an E4M4 code: bits (k << 19) read as a float, times 2^108. For k >= 16 that is
// 2^((k >> 4) - 19) * (1 + (k & 15) / 16); codes 1..15 are the subnormal range (k * 2^-22) and
// k = 0 is exactly 0. SIMD decoders build the same float with one shift and fold 2^108 into the
// activation scale.
inline constexpr float kQ3_5ScalePow = 0x1p108f;
inline float q3_5_scale(uint8_t k) {
    if (k < 16) return static_cast<float>(k) * 0x1p-22f;
    return std::bit_cast<float>(static_cast<uint32_t>(k) << 19) * kQ3_5ScalePow;
}

// One row x[0..n) -> R x group by group, in place (n a multiple of 32). The activation side.
void rotate_q3_5(float* x, int64_t n);
// The inverse (R^T c), in place: the dequantizer's last step.
void unrotate_q3_5(float* x, int64_t n);

// Reference (de)quantizers of one row (quant/ref/q3_5.cpp). The quantizer searches each
// sub-block's scale code for the least squared error in the rotated domain (= the error in the
// original domain, R being orthonormal). Importance (an imatrix) is not diagonal after the
// rotation (R diag(imp) R^T), so it enters through quantize_row_q3_5_imp's error feedback rather
// than through per-element weights (docs/formats.md).
void dequantize_row_q3_5_ref(const void* src, float* out, int64_t n);
void quantize_row_q3_5_ref(const float* x, void* dst, int64_t n);
// The same bytes from the fastest implementation this CPU has (cpu_kernels(), defined in
// kernels/cpu/dispatch.cpp): what the type table, quantize and synth use.
void quantize_row_q3_5(const float* x, void* dst, int64_t n);
// With an importance vector over the row's columns (imatrix; null = the plain quantizer): the same
// scales, then GPTQ-style rounding with error feedback in the rotated domain (quant/ref/q3_5_gptq.cpp).
void quantize_row_q3_5_imp(const float* x, void* dst, int64_t n, const float* imp);
// GPTQ proper (an imatrix with activation covariances, `imatrix --covariance`): cov holds, per
// full group g of a row, C_g = E[x x^T] of the group's 256 inputs (row-major 256 x 256, original
// domain); the factor of group g is the upper Cholesky factor of (R C_g R^T + damping)^-1, empty
// for a group never observed (trace 0). Computed once per tensor, shared by its rows.
std::vector<std::vector<float>> q3_5_gptq_factors(const float* cov, int64_t n_groups);
// The plain quantizer's scales, then every full group with a factor rounded with error feedback
// through it (groups without one, and the tail, stay plain).
void quantize_row_q3_5_gptq(const float* x, void* dst, int64_t n, const std::vector<std::vector<float>>& factors);

// Internals shared by the reference and the SIMD quantizers (kernels/cpu/x86/avx512/).
inline constexpr float kQ3_5Thresholds[3] = {0.5f * (14 + 44), 0.5f * (44 + 78), 0.5f * (78 + 127)};
inline constexpr int kQ3_5SearchBelow = 14, kQ3_5SearchAbove = 3;  // scale codes tried around k0
// Smallest code k >= 1 with q3_5_scale(k) >= target (255 when none is); target > 0.
int q3_5_first_code_at_least(float target);
// Chooses the scale code, magnitude indices and signs of one rotated 16-value sub-block (in slot
// order s = 4t + j). Every implementation must give the reference's bytes exactly.
using Q3_5SubQuantFn = void (*)(const float* v, uint8_t& k, uint8_t* mag, uint8_t* neg);
void q3_5_quantize_sub_ref(const float* v, uint8_t& k, uint8_t* mag, uint8_t* neg);
// The row quantizer around a sub-block search (quantize_row_q3_5_ref uses the reference one) and a
// rotation (rotate_q3_5 unless given; any other must give its bits, as the kernels' do).
using Q3_5RotateFn = void (*)(float* x, int64_t n);
void quantize_row_q3_5_with(const float* x, void* dst, int64_t n, Q3_5SubQuantFn sub, Q3_5RotateFn rotate = nullptr);

// The reference dot product of one group of g weights (at p) with its int8 activations a (scale
// da): sum over sub-blocks of scale(k_L) * da * (exact int32 sum of +-mag * a). The scalar kernel
// runs it for every group, the AVX2 kernel for tail groups.
float q3_5_group_dot_ref(const uint8_t* p, int64_t g, const int8_t* a, float da);

// Activations for q3.5 rows: x (one row, ALREADY rotated) -> int8 quants with one scale per group
// (amax / 127, round half to even). d and sum keep the per-32 layout of Q8Acts: every 32-block of
// a group gets the group's scale, and its own sum.
void quantize_acts_q3_5_ref(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum);

// Rotated values above 127 * max scale (about 15.5) saturate; this counts the sub-blocks of x (one
// row, unrotated) that would, so the quantizer can warn.
int64_t q3_5_saturated_subblocks(const float* x, int64_t n);

}  // namespace pl
