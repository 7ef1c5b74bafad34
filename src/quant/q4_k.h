// SPDX-License-Identifier: MIT
// Q4_K (GGML type 12, GGUF-compatible): 256 weights per super-block, 144 bytes (4.5 bits/weight).
// 8 sub-blocks of 32 weights, each with a 6-bit scale sc and 6-bit min mn; fp16 d and dmin:
//   w[e] = (d * sc[s]) * q[e] - (dmin * mn[s]),  s = e / 32,  q[e] in [0, 15]
// Quant of element e: c = e / 64, l = e % 32:
//   q[e] = (e % 64) < 32 ? qs[32*c + l] & 0xF : qs[32*c + l] >> 4
// 6-bit scales/mins packed in scales[12] (GGML get_scale_min_k4):
//   s < 4:  sc = scales[s] & 63,                                mn = scales[s + 4] & 63
//   s >= 4: sc = (scales[s + 4] & 0xF) | (scales[s - 4] >> 6) << 4,
//           mn = (scales[s + 4] >> 4)  | (scales[s]     >> 6) << 4
#pragma once

#include "quant/k_quants.h"

#include <cstdint>

namespace pl {

struct BlockQ4_K {
    static constexpr int kElems = kQK_K;
    uint16_t d;                   // fp16 super-scale of the scales
    uint16_t dmin;                // fp16 super-scale of the mins
    uint8_t scales[kKScaleSize];  // 8 scales + 8 mins, 6 bits each, see above
    uint8_t qs[kQK_K / 2];        // 4-bit quants, see above
};
static_assert(sizeof(BlockQ4_K) == 144);

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K/Q5_K `scales` array.
inline void get_scale_min_k4(int s, const uint8_t* scales, uint8_t& sc, uint8_t& mn) {
    if (s < 4) {
        sc = scales[s] & 63;
        mn = scales[s + 4] & 63;
    } else {
        sc = static_cast<uint8_t>((scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4));
        mn = static_cast<uint8_t>((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
    }
}

}  // namespace pl
