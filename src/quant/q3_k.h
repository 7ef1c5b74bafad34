// SPDX-License-Identifier: MIT
// Q3_K (GGML type 11, GGUF-compatible): 256 weights per super-block, 110 bytes (3.4375 bits/weight).
// 16 sub-blocks of 16 weights, each with a signed 6-bit scale (stored +32), one fp16 super scale d:
//   w[e] = (d * (sc[e/16] - 32)) * q[e],  q[e] in [-4, 3]
// Quant of element e: h = e / 128, j = (e % 128) / 32, l = e % 32:
//   low2 = (qs[32*h + l] >> (2*j)) & 3
//   hbit = (hmask[l] >> (4*h + j)) & 1
//   q[e] = low2 - (hbit ? 0 : 4)          (a SET high bit means no offset)
// 6-bit scales sc[s], s in [0, 16), packed in 12 bytes:
//   low 4 bits:  s < 8 ? scales[s] & 0xF : scales[s - 8] >> 4
//   high 2 bits: (scales[8 + s % 4] >> (2 * (s / 4))) & 3
#pragma once

#include "quant/k_quants.h"

#include <cstdint>

namespace pl {

struct BlockQ3_K {
    static constexpr int kElems = kQK_K;
    uint8_t hmask[kQK_K / 8];  // high bit of each quant, see above
    uint8_t qs[kQK_K / 4];     // low 2 bits, same plane layout as Q2_K
    uint8_t scales[12];        // 16 x 6-bit scales, see above
    uint16_t d;                // fp16 super-scale
};
static_assert(sizeof(BlockQ3_K) == 110);

}  // namespace pl
