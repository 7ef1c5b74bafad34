// SPDX-License-Identifier: MIT
// Q8_0 reference (layout: quant/q8_0.h).
#include "core/fp16.h"
#include "quant/q8_0.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cmath>

namespace pl {

void dequantize_row_q8_0_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ8_0*>(src);
    const int64_t nb = n / BlockQ8_0::kElems;
    for (int64_t i = 0; i < nb; ++i, out += BlockQ8_0::kElems) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < BlockQ8_0::kElems; ++j) out[j] = static_cast<float>(b[i].qs[j]) * d;
    }
}

void quantize_row_q8_0_ref(const float* x, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_0*>(dst);
    const int64_t nb = n / BlockQ8_0::kElems;
    for (int64_t i = 0; i < nb; ++i, x += BlockQ8_0::kElems) {
        float amax = 0.0f;
        for (int j = 0; j < BlockQ8_0::kElems; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        // roundf: half away from zero. |x*id| <= 127 up to one rounding step, which roundf keeps.
        for (int j = 0; j < BlockQ8_0::kElems; ++j) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    }
}

}  // namespace pl
