// SPDX-License-Identifier: MIT
// Q5_1 reference (layout: quant/q5_1.h).
#include "core/fp16.h"
#include "quant/q5_1.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cfloat>
#include <cstring>

namespace pl {

void dequantize_row_q5_1_ref(const void* src, float* out, int64_t n) {
    constexpr int kHalf = BlockQ5_1::kElems / 2;
    const auto* b = static_cast<const BlockQ5_1*>(src);
    const int64_t nb = n / BlockQ5_1::kElems;
    for (int64_t i = 0; i < nb; ++i, out += BlockQ5_1::kElems) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, sizeof qh);
        for (int j = 0; j < kHalf; ++j) {
            const int h0 = static_cast<int>((qh >> j) & 1) << 4;
            const int h1 = static_cast<int>((qh >> (j + kHalf)) & 1) << 4;
            const int q0 = (b[i].qs[j] & 0x0F) | h0;
            const int q1 = (b[i].qs[j] >> 4) | h1;
            out[j] = static_cast<float>(q0) * d + m;
            out[j + kHalf] = static_cast<float>(q1) * d + m;
        }
    }
}

void quantize_row_q5_1_ref(const float* x, void* dst, int64_t n) {
    constexpr int kHalf = BlockQ5_1::kElems / 2;
    auto* b = static_cast<BlockQ5_1*>(dst);
    const int64_t nb = n / BlockQ5_1::kElems;
    for (int64_t i = 0; i < nb; ++i, x += BlockQ5_1::kElems) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < BlockQ5_1::kElems; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = std::min(31, static_cast<int>((x[j] - min) * id + 0.5f));
            const int q1 = std::min(31, static_cast<int>((x[j + kHalf] - min) * id + 0.5f));
            b[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + kHalf);
        }
        std::memcpy(b[i].qh, &qh, sizeof qh);
    }
}

}  // namespace pl
