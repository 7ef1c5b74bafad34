// SPDX-License-Identifier: MIT
// Q4_0 (GGML type 2, GGUF-compatible): 32 weights per block, 18 bytes (4.5 bits/weight).
//   w[i] = d * (q[i] - 8),  q[i] in [0, 15]  ->  w in {-8d, ..., 7d}
// Nibble order: qs[j] low nibble = element j, high nibble = element j+16 (j < 16).
// Reference quantizer: m = the signed value of largest |x| (first one on ties), d = m / -8,
// q = min(15, trunc(x/d + 8.5)); so the extreme element maps to q = 0 exactly.
#pragma once

#include <cstdint>

namespace pl {

struct BlockQ4_0 {
    static constexpr int kElems = 32;
    uint16_t d;              // fp16 scale
    uint8_t qs[kElems / 2];  // see nibble order above
};
static_assert(sizeof(BlockQ4_0) == 18);

}  // namespace pl
