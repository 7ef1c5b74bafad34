// SPDX-License-Identifier: MIT
// Q8_K (GGML type 15): 256 weights per block, 292 bytes. Activation-side format of the k-quant
// dot products (never stored in model files in practice).
//   w[e] = d * qs[e]   (d is a plain fp32, not fp16)
// bsums[k] = sum of qs[16k .. 16k+15], precomputed for the min terms of Q2_K/Q4_K/Q5_K dots.
#pragma once

#include "quant/k_quants.h"

#include <cstdint>

namespace pl {

struct BlockQ8_K {
    static constexpr int kElems = kQK_K;
    float d;                     // fp32 scale
    int8_t qs[kQK_K];            // quants
    int16_t bsums[kQK_K / 16];   // sums of groups of 16 quants
};
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace pl
