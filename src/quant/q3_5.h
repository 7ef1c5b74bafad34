// SPDX-License-Identifier: MIT
// q3.5 (parallama type id 200, not a GGML type): 32 weights per block, 14 bytes = 3.5 bits/weight,
// every scale included. Full layout, arithmetic and measurements: docs/formats.md.
//
// Each 32-weight chunk of a row is stored ROTATED: c = R w with R = H32 * S / sqrt(32), H32 the
// Sylvester Hadamard matrix and S = diag(signs of kQ3_5Signs). R is orthonormal, so
//   dot(w, x) = dot(c, R x)
// and the int8 kernels dot the stored codes with the rotated activations R x (rotate_q3_5). The
// rotation spreads outliers over the chunk, so heavy-tailed weights quantize like Gaussian ones.
//
// Rotated values, per 16-element sub-block j (elements 16j..16j+15 of the chunk):
//   c[i] = d_j * (sign_i ? -1 : +1) * kQ3_5Mag[mag_i]
//   mag_i  = bit i of plane 0 | (bit i of plane 1) << 1   (planes are little-endian uint32)
//   sign_i = bit i of plane 2                              (1 = negative)
//   d_j    = 0 when scale byte k_j == 0, else 2^((k_j >> 4) - 19) * (1 + (k_j & 15) / 16)
// The magnitudes are the 8-level Lloyd-Max quantizer of a Gaussian scaled to int8 (max 127), so
// SIMD kernels look them up with vpermb/pshufb and multiply them with int8 activations exactly.
#pragma once

#include <bit>
#include <cstdint>

namespace pl {

struct BlockQ3_5 {
    static constexpr int kElems = 32;
    uint8_t planes[12];  // plane 0 (bytes 0-3), plane 1 (4-7), plane 2 = signs (8-11)
    uint8_t scales[2];   // E4M4 codes of sub-blocks 0 (elements 0-15) and 1 (16-31)
};
static_assert(sizeof(BlockQ3_5) == 14);

inline constexpr uint32_t kQ3_5TypeId = 200;
inline constexpr int8_t kQ3_5Mag[4] = {14, 44, 78, 127};
inline constexpr int kQ3_5ScaleBias = 19;  // d = 2^(e - 19) * (1 + m/16), e = k >> 4 in [0, 15]
// Sign vector of the rotation: bit i set = element i of each chunk is negated before H32.
inline constexpr uint32_t kQ3_5Signs = 0x9E3779B9u;

// Scale of an E4M4 code (0 -> 0). Exact in float: the same bits the SIMD decoders build with
// (k << 19) + ((127 - 19) << 23).
inline float q3_5_scale(uint8_t k) {
    if (k == 0) return 0.0f;
    return std::bit_cast<float>((static_cast<uint32_t>(k) << 19) + (static_cast<uint32_t>(127 - kQ3_5ScaleBias) << 23));
}

// x[0..n) -> R x per 32-chunk, in place (n a multiple of 32). The activation side of q3.5.
void rotate_q3_5(float* x, int64_t n);
// The inverse (R^T c per chunk), in place: the dequantizer's last step.
void unrotate_q3_5(float* x, int64_t n);

// Reference (de)quantizers (quant/ref/q3_5.cpp). The quantizer searches each sub-block's scale
// code for the least squared error in the rotated domain (= the error in the original domain, R
// being orthonormal). An importance vector over input columns cannot change its choices: the
// diagonal of R diag(imp) R^T is the chunk's mean importance, one constant per 32-chunk, and each
// sub-block is solved on its own, so q3.5 takes no importance argument (docs/formats.md).
void dequantize_row_q3_5_ref(const void* src, float* out, int64_t n);
void quantize_row_q3_5_ref(const float* x, void* dst, int64_t n);

// Values > 127 * max scale (about 15.5 after rotation) saturate; this counts the sub-blocks of x
// (one row, unrotated) that would, so the quantizer can warn.
int64_t q3_5_saturated_subblocks(const float* x, int64_t n);

}  // namespace pl
