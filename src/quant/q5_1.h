// SPDX-License-Identifier: MIT
// Q5_1 (GGML type 7, GGUF-compatible): 32 weights per block, 24 bytes (6 bits/weight).
//   w[i] = d * q[i] + m,  q[i] in [0, 31]
// Bits as Q5_0: q[i] = low nibble (Q4_0 nibble order) | (bit i of little-endian uint32 qh) << 4.
// Reference quantizer: as Q4_1 with d = (max - min) / 31 and q = min(31, trunc((x-m)/d + 0.5)).
#pragma once

#include <cstdint>

namespace pl {

struct BlockQ5_1 {
    static constexpr int kElems = 32;
    uint16_t d;              // fp16 scale
    uint16_t m;              // fp16 offset (block minimum)
    uint8_t qh[4];           // fifth bits, little-endian uint32, bit i = element i
    uint8_t qs[kElems / 2];  // low nibbles, Q4_0 order
};
static_assert(sizeof(BlockQ5_1) == 24);

}  // namespace pl
