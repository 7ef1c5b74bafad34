// SPDX-License-Identifier: MIT
// Scale searches shared by the reference quantizers (quant/quantize.h). They follow GGML's
// reference algorithms (ggml-quants.c: make_qx_quants, make_q3_quants, make_qkx2/3_quants,
// make_qp_quants) operation for operation, so the bytes match GGML's quantizers: every float
// expression is evaluated in the same order and fp32 precision (and without FMA contraction, which
// the build disables with -ffp-contract=off).
//
// Vocabulary: x = the n values of one group, L = the chosen integer levels (output), w = per-value
// error weights. "Level" l and "scale" d reconstruct x[i] ~ d * l[i] (- min for the affine ones).
// Internal to src/quant/ref; not part of the public API.
#pragma once

#include <bit>
#include <cstdint>

namespace pl::qref {

// Groups whose largest |x| is below this are all-zero (GGML's GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |v| <= 2^22 (GGML's nearest_int: adding 1.5 * 2^23 leaves the
// rounded integer in the low mantissa bits).
inline int nearest_int(float v) {
    const float t = v + 12582912.0f;
    return static_cast<int>(std::bit_cast<uint32_t>(t) & 0x007fffffu) - 0x00400000;
}

// Symmetric levels in [-nmax, nmax - 1] minimising sum w[i] (x[i] - d l[i])^2 over 19 trial scales
// around nmax / max|x| (GGML make_qx_quants with rmse_type 1). w = qw, or x^2 when qw is null.
// Writes L[i] = l[i] + nmax (so 0 .. 2 nmax - 1) and returns d; an all-zero group gives d = 0, L = 0.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw);

// Q3_K's plain search (GGML make_q3_quants with do_rmse): start from nmax / max|x|, then up to five
// passes of per-element level moves that raise (sum w x l)^2 / sum w l^2 with w = x^2.
// L[i] = l[i] + nmax, returns d.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

// Affine levels in [0, nmax] with x[i] ~ d l[i] - m, m >= 0 (GGML make_qkx2_quants and
// make_qkx3_quants, which differ only in their arguments): nstep + 1 trial scales
// (rmin + rdelta * is + nmax) / (max - min), each refined by weighted least squares for d and m.
// use_mad: minimise sum w |err| instead of sum w err^2. Laux: n bytes of scratch.
// Writes L, *the_min = m, returns d.
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, uint8_t* Laux,
                      float rmin, float rdelta, int nstep, bool use_mad);

// Non-negative values (sub-block scales or mins) to levels in [0, nmax] with one scale, weighted by
// quant_weights (GGML make_qp_quants). Writes L, returns d.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);

}  // namespace pl::qref
