// SPDX-License-Identifier: MIT
// Q5_K (GGML type 13, GGUF-compatible): 256 weights per super-block, 176 bytes (5.5 bits/weight).
// As Q4_K plus a fifth bit per weight:
//   w[e] = (d * sc[s]) * q[e] - (dmin * mn[s]),  s = e / 32,  q[e] in [0, 31]
//   q[e] = low4 + 16 * ((qh[e % 32] >> s) & 1)
// low4 and the 6-bit sc/mn are exactly as in Q4_K (quant/q4_k.h, get_scale_min_k4).
#pragma once

#include "quant/k_quants.h"
#include "quant/q4_k.h"

#include <cstdint>

namespace pl {

struct BlockQ5_K {
    static constexpr int kElems = kQK_K;
    uint16_t d;                   // fp16 super-scale of the scales
    uint16_t dmin;                // fp16 super-scale of the mins
    uint8_t scales[kKScaleSize];  // 6-bit scales and mins, Q4_K packing
    uint8_t qh[kQK_K / 8];        // bit s of qh[l] = fifth bit of element 32*s + l
    uint8_t qs[kQK_K / 2];        // low 4 bits, Q4_K layout
};
static_assert(sizeof(BlockQ5_K) == 176);

}  // namespace pl
