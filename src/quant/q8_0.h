// SPDX-License-Identifier: MIT
// Q8_0 (GGML type 8, GGUF-compatible): 32 weights per block, 34 bytes (8.5 bits/weight).
//   w[i] = d * qs[i],  qs[i] int8 (the reference quantizer only produces [-127, 127])
// Reference quantizer: d = max|x| / 127, qs = roundf(x / d) (round half away from zero),
// computed as x * (1/d); an all-zero block gets d = 0 and qs = 0.
// Also the activation format that Q4_0/Q4_1/Q5_x/Q8_0 dot products pair with.
#pragma once

#include <cstdint>

namespace pl {

struct BlockQ8_0 {
    static constexpr int kElems = 32;
    uint16_t d;          // fp16 scale
    int8_t qs[kElems];   // element i = qs[i]
};
static_assert(sizeof(BlockQ8_0) == 34);

}  // namespace pl
