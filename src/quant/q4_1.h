// SPDX-License-Identifier: MIT
// Q4_1 (GGML type 3, GGUF-compatible): 32 weights per block, 20 bytes (5 bits/weight).
//   w[i] = d * q[i] + m,  q[i] in [0, 15]
// Nibble order: qs[j] low nibble = element j, high nibble = element j+16 (j < 16).
// Reference quantizer: m = min(x), d = (max(x) - min(x)) / 15, q = min(15, trunc((x-m)/d + 0.5)).
#pragma once

#include <cstdint>

namespace pl {

struct BlockQ4_1 {
    static constexpr int kElems = 32;
    uint16_t d;              // fp16 scale
    uint16_t m;              // fp16 offset (block minimum)
    uint8_t qs[kElems / 2];  // see nibble order above
};
static_assert(sizeof(BlockQ4_1) == 20);

}  // namespace pl
