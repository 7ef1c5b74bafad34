// SPDX-License-Identifier: MIT
// Q5_0 reference (layout: quant/q5_0.h).
#include "core/fp16.h"
#include "quant/q5_0.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pl {

void dequantize_row_q5_0_ref(const void* src, float* out, int64_t n) {
    constexpr int kHalf = BlockQ5_0::kElems / 2;
    const auto* b = static_cast<const BlockQ5_0*>(src);
    const int64_t nb = n / BlockQ5_0::kElems;
    for (int64_t i = 0; i < nb; ++i, out += BlockQ5_0::kElems) {
        const float d = fp16_to_fp32(b[i].d);
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, sizeof qh);  // little-endian host assumed (as GGUF itself)
        for (int j = 0; j < kHalf; ++j) {
            const int h0 = static_cast<int>((qh >> j) & 1) << 4;
            const int h1 = static_cast<int>((qh >> (j + kHalf)) & 1) << 4;
            const int q0 = ((b[i].qs[j] & 0x0F) | h0) - 16;
            const int q1 = ((b[i].qs[j] >> 4) | h1) - 16;
            out[j] = static_cast<float>(q0) * d;
            out[j + kHalf] = static_cast<float>(q1) * d;
        }
    }
}

void quantize_row_q5_0_ref(const float* x, void* dst, int64_t n) {
    constexpr int kHalf = BlockQ5_0::kElems / 2;
    auto* b = static_cast<BlockQ5_0*>(dst);
    const int64_t nb = n / BlockQ5_0::kElems;
    for (int64_t i = 0; i < nb; ++i, x += BlockQ5_0::kElems) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < BlockQ5_0::kElems; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < kHalf; ++j) {
            const int q0 = std::min(31, static_cast<int>(x[j] * id + 16.5f));
            const int q1 = std::min(31, static_cast<int>(x[j + kHalf] * id + 16.5f));
            b[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + kHalf);
        }
        std::memcpy(b[i].qh, &qh, sizeof qh);
    }
}

}  // namespace pl
