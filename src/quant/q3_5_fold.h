// SPDX-License-Identifier: MIT
// q3.5 "folded": an in-memory layout of q3.5 rows (never written to a file) whose numerics let
// one exact int32 cover a whole 256-group, so AMX tiles can use K = 64 (docs/formats.md,
// "Folded scales").
//
// Scale codes (E4M4, quant/q3_5.h) are written as d(k) = M * 2^(E - 23) with
//   E = max(k >> 4, 1),  M = k >= 16 ? 16 + (k & 15) : k.
// Per full group, E_g = max over its sub-blocks of E. When every nonzero sub-block has
// E_L >= E_g - 3, its scale is an integer multiple of 2^(E_g - 26):
//   mult_L = M_L << (E_L - E_g + 3)  (<= 248; 0 for code 0),  d_L = mult_L * 2^(E_g - 26),
// so the group's dot with int8 activations is S_g = sum_e (+-MAG[mag_e] * mult_L) * a_e, an
// exact int32 (|S_g| <= 16 * 16 * 127 * 248 * 127 ~ 1.02e9), and a row's result is
//   acc_j = fma(float(S_g), 2^(E_g - 26) * d_a(g), acc_j)   for the groups g = j (mod 16), in order,
//   y = ((acc_0 + acc_8) + (acc_4 + acc_12)) + ... : lanes folded in halves (8, 4, 2, 1).
// Every q3.5-folded kernel (scalar reference, AVX-512 GEMV, AMX GEMM) computes exactly this, so
// a row's value does not depend on the kernel or on the batch.
//
// Layout of a row of G = n / 256 full groups (n % 256 == 0; rows with a tail group stay q3.5):
// super-groups of c = min(16, G - 16 s) groups, each
//   c x 112 bytes: the groups as in q3.5, the 16 scale bytes replaced by mult_L (u8),
//   c bytes:       E_g + 101 per group (shifted left by 23 it is the float 2^(E_g - 26)).
// So a row takes 113 * G bytes (0.9 % more than q3.5), and a column cut on a multiple of 4096
// (16 groups) is a row of the same layout.
#pragma once

#include <cstdint>

namespace pl {

inline constexpr int kQ3_5FoldSuper = 16;                         // groups per super-group
inline constexpr int kQ3_5FoldGroupBytes = 113;                   // per group, its exponent included
inline constexpr int kQ3_5FoldSuperBytes = kQ3_5FoldSuper * 113;  // 1808
inline constexpr int kQ3_5FoldExpBias = 101;                      // (E_g + 101) << 23 = float 2^(E_g - 26)

// Byte offset of group g (of G) in a folded row, and of its exponent byte.
inline constexpr int64_t q3_5f_group_offset(int64_t g) {
    return g / kQ3_5FoldSuper * kQ3_5FoldSuperBytes + g % kQ3_5FoldSuper * 112;
}
inline constexpr int64_t q3_5f_exp_offset(int64_t g, int64_t G) {
    const int64_t s = g / kQ3_5FoldSuper, c = G - s * kQ3_5FoldSuper < kQ3_5FoldSuper ? G - s * kQ3_5FoldSuper : kQ3_5FoldSuper;
    return s * kQ3_5FoldSuperBytes + c * 112 + g % kQ3_5FoldSuper;
}

// mult[16] and E_g of one q3.5 group (its 16 scale codes at k); false when a nonzero sub-block
// has E_L < E_g - 3 (the group cannot be folded exactly; our quantizer has not produced one in
// the 32k groups checked, docs/formats.md).
bool q3_5_fold_scales(const uint8_t* k, uint8_t* mult, int& e_g);

// One q3.5 row of n elements (n % 256 == 0) -> its folded layout at dst (113 * n / 256 bytes).
// False, with dst partly written, when a group cannot be folded.
bool fold_row_q3_5(const uint8_t* src, uint8_t* dst, int64_t n);

// The weights of a folded row (exactly dequantize_row_q3_5_ref of the row it came from).
void dequantize_row_q3_5f(const void* src, float* out, int64_t n);

// The exact group sum S_g of group g (at p, folded layout) with its 256 int8 activations.
int32_t q3_5f_group_isum(const uint8_t* p, const int8_t* a);

// The reference dot product (scalar, the definition above): d holds the per-32 activation scales
// (Q8Acts layout, quantize_acts_q3_5), so d_a(g) = d[8 g].
float dot_q3_5f_ref(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n);

}  // namespace pl
