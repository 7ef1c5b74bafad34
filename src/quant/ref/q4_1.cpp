// SPDX-License-Identifier: MIT
// Q4_1 reference (layout: quant/q4_1.h).
#include "core/fp16.h"
#include "quant/q4_1.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cfloat>

namespace pl {

void dequantize_row_q4_1_ref(const void* src, float* out, int64_t n) {
    constexpr int kHalf = BlockQ4_1::kElems / 2;
    const auto* b = static_cast<const BlockQ4_1*>(src);
    const int64_t nb = n / BlockQ4_1::kElems;
    for (int64_t i = 0; i < nb; ++i, out += BlockQ4_1::kElems) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = b[i].qs[j] & 0x0F;
            const int q1 = b[i].qs[j] >> 4;
            out[j] = static_cast<float>(q0) * d + m;
            out[j + kHalf] = static_cast<float>(q1) * d + m;
        }
    }
}

void quantize_row_q4_1_ref(const float* x, void* dst, int64_t n) {
    constexpr int kHalf = BlockQ4_1::kElems / 2;
    auto* b = static_cast<BlockQ4_1*>(dst);
    const int64_t nb = n / BlockQ4_1::kElems;
    for (int64_t i = 0; i < nb; ++i, x += BlockQ4_1::kElems) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < BlockQ4_1::kElems; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(min);
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
            const int q1 = std::min(15, static_cast<int>((x[j + kHalf] - min) * id + 0.5f));
            b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

}  // namespace pl
