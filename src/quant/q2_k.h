// SPDX-License-Identifier: MIT
// Q2_K (GGML type 10, GGUF-compatible): 256 weights per super-block, 84 bytes (2.625 bits/weight).
// 16 sub-blocks of 16 weights; each has a 4-bit scale and a 4-bit min, both scaled by fp16 super
// scales d and dmin:
//   sub-block s = e / 16:   sc = scales[s] & 0xF,  mn = scales[s] >> 4
//   w[e] = (d * sc) * q[e] - (dmin * mn),  q[e] in [0, 3]
// 2-bit quants for element e: h = e / 128, j = (e % 128) / 32, l = e % 32:
//   q[e] = (qs[32*h + l] >> (2*j)) & 3
// i.e. each 32-byte half of qs holds 128 weights, in four 2-bit planes of 32.
#pragma once

#include "quant/k_quants.h"

#include <cstdint>

namespace pl {

struct BlockQ2_K {
    static constexpr int kElems = kQK_K;
    uint8_t scales[kQK_K / 16];  // low nibble: scale, high nibble: min, per 16 weights
    uint8_t qs[kQK_K / 4];       // 2-bit quants, see above
    uint16_t d;                  // fp16 super-scale of the scales
    uint16_t dmin;               // fp16 super-scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

}  // namespace pl
