// SPDX-License-Identifier: MIT
// Importance-weighted Q8_0 quantizer (layout: quant/q8_0.h; API: quant/quantize.h). GGML has no
// weighted Q8_0 (its quantize_q8_0 ignores the imatrix); this one is ours, built from the same
// pieces as the weighted Q4_0: error weights imp * sqrt(sigma^2 + x^2) with sigma^2 over the row,
// 19 trial roundings around 127 / max|x|, each scored with its weighted least-squares scale.
#include "core/fp16.h"
#include "quant/q8_0.h"
#include "quant/quantize.h"
#include "quant/ref/quant_search.h"
#include "quant/ref/ref.h"

#include <algorithm>
#include <cmath>

namespace pl {

void quantize_q8_0(const float* x, void* dst, int64_t n, const float* importance) {
    if (!importance) {
        quantize_row_q8_0_ref(x, dst, n);
        return;
    }
    constexpr int kBlock = BlockQ8_0::kElems;
    constexpr int kMax = 127;  // levels stay in [-127, 127], like the reference's
    auto* y = static_cast<BlockQ8_0*>(dst);
    float sum_x2 = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    const float sigma2 = sum_x2 / static_cast<float>(n);
    float w[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + kBlock * ib;
        const float* qw = importance + kBlock * ib;
        float amax = 0.0f;
        for (int j = 0; j < kBlock; ++j) {
            w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
            amax = std::max(amax, std::fabs(xb[j]));
        }
        if (amax < qref::kGroupMaxEps) {
            y[ib].d = fp32_to_fp16(0.0f);
            for (int j = 0; j < kBlock; ++j) y[ib].qs[j] = 0;
            continue;
        }
        // For fixed levels l the best scale is sum w x l / sum w l^2 and the error falls by
        // (sum w x l)^2 / sum w l^2; trial 0 is the reference rounding.
        float best_gain = -1.0f, best_iscale = kMax / amax, best_scale = amax / kMax;
        for (int k = 0; k <= 18; ++k) {
            const int is = k == 0 ? 0 : (k <= 9 ? -k : k - 9);
            const float iscale = (static_cast<float>(kMax) + 0.1f * static_cast<float>(is)) / amax;
            float sumlx = 0.0f, suml2 = 0.0f;
            for (int j = 0; j < kBlock; ++j) {
                const float l = static_cast<float>(std::clamp(qref::nearest_int(iscale * xb[j]), -kMax, kMax));
                sumlx += w[j] * xb[j] * l;
                suml2 += w[j] * l * l;
            }
            if (suml2 > 0.0f && sumlx * sumlx / suml2 > best_gain) {
                best_gain = sumlx * sumlx / suml2;
                best_iscale = iscale;
                best_scale = sumlx / suml2;
            }
        }
        if (best_gain < 0.0f) best_scale = amax / kMax;  // all importance zero: plain scale
        y[ib].d = fp32_to_fp16(best_scale);
        for (int j = 0; j < kBlock; ++j)
            y[ib].qs[j] = static_cast<int8_t>(std::clamp(qref::nearest_int(best_iscale * xb[j]), -kMax, kMax));
    }
}

}  // namespace pl
