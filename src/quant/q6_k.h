// SPDX-License-Identifier: MIT
// Q6_K (GGML type 14, GGUF-compatible): 256 weights per super-block, 210 bytes (6.5625 bits/weight).
// 16 sub-blocks of 16 weights, each with a signed int8 scale; one fp16 super scale d:
//   w[e] = (d * scales[e / 16]) * q[e],  q[e] in [-32, 31]
// Quant of element e: h = e / 128, g = (e % 128) / 32, l = e % 32:
//   low4  = g == 0 ? ql[64*h + l] & 0xF       g == 1 ? ql[64*h + 32 + l] & 0xF
//           g == 2 ? ql[64*h + l] >> 4        g == 3 ? ql[64*h + 32 + l] >> 4
//   high2 = (qh[32*h + l] >> (2*g)) & 3
//   q[e]  = (low4 | high2 << 4) - 32
#pragma once

#include "quant/k_quants.h"

#include <cstdint>

namespace pl {

struct BlockQ6_K {
    static constexpr int kElems = kQK_K;
    uint8_t ql[kQK_K / 2];      // low 4 bits, see above
    uint8_t qh[kQK_K / 4];      // high 2 bits, see above
    int8_t scales[kQK_K / 16];  // signed 8-bit sub-block scales
    uint16_t d;                 // fp16 super-scale
};
static_assert(sizeof(BlockQ6_K) == 210);

}  // namespace pl
