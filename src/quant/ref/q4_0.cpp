// SPDX-License-Identifier: MIT
// Q4_0 reference (layout: quant/q4_0.h).
#include "core/fp16.h"
#include "quant/q4_0.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cmath>

namespace pl {

void dequantize_row_q4_0_ref(const void* src, float* out, int64_t n) {
    constexpr int kHalf = BlockQ4_0::kElems / 2;
    const auto* b = static_cast<const BlockQ4_0*>(src);
    const int64_t nb = n / BlockQ4_0::kElems;
    for (int64_t i = 0; i < nb; ++i, out += BlockQ4_0::kElems) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = (b[i].qs[j] & 0x0F) - 8;
            const int q1 = (b[i].qs[j] >> 4) - 8;
            out[j] = static_cast<float>(q0) * d;
            out[j + kHalf] = static_cast<float>(q1) * d;
        }
    }
}

void quantize_row_q4_0_ref(const float* x, void* dst, int64_t n) {
    constexpr int kHalf = BlockQ4_0::kElems / 2;
    auto* b = static_cast<BlockQ4_0*>(dst);
    const int64_t nb = n / BlockQ4_0::kElems;
    for (int64_t i = 0; i < nb; ++i, x += BlockQ4_0::kElems) {
        // Signed value of the largest magnitude (first one wins ties): it maps to q = 0 (-8).
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < BlockQ4_0::kElems; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < kHalf; ++j) {
            // GGML truncates x*id + 8.5 toward zero (always >= 0 here), then clamps to 15.
            const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
            const int q1 = std::min(15, static_cast<int>(x[j + kHalf] * id + 8.5f));
            b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

}  // namespace pl
