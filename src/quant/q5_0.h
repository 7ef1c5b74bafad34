// SPDX-License-Identifier: MIT
// Q5_0 (GGML type 6, GGUF-compatible): 32 weights per block, 22 bytes (5.5 bits/weight).
//   w[i] = d * (q[i] - 16),  q[i] in [0, 31]
// q[i] = low nibble | (bit i of qh) << 4, where qh is the 4 bytes read as a little-endian uint32
// and the low nibble of element j (j < 16) is qs[j] & 0xF, of element j+16 is qs[j] >> 4.
// Reference quantizer: as Q4_0 with d = m / -16 and q = min(31, trunc(x/d + 16.5)).
#pragma once

#include <cstdint>

namespace pl {

struct BlockQ5_0 {
    static constexpr int kElems = 32;
    uint16_t d;              // fp16 scale
    uint8_t qh[4];           // fifth bits, little-endian uint32, bit i = element i
    uint8_t qs[kElems / 2];  // low nibbles, Q4_0 order
};
static_assert(sizeof(BlockQ5_0) == 22);

}  // namespace pl
