// SPDX-License-Identifier: MIT
// Importance-weighted Q4_0 and Q5_0 quantizers (layouts: quant/q4_0.h, quant/q5_0.h; API:
// quant/quantize.h). Reproduce GGML's quantize_row_q4_0_impl / quantize_row_q5_0_impl; without
// importance they are the plain references (quant/ref/q4_0.cpp, q5_0.cpp).
#include "core/fp16.h"
#include "quant/q4_0.h"
#include "quant/q5_0.h"
#include "quant/quantize.h"
#include "quant/ref/quant_search.h"
#include "quant/ref/ref.h"

#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kBlock = 32;

// Mean of x^2 over the whole row (GGML's sigma^2 for the 32-weight formats).
float row_sigma2(const float* x, int64_t n) {
    float sum_x2 = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / static_cast<float>(n);
}

void block_weights(const float* xb, const float* qw, float sigma2, float* weight) {
    for (int j = 0; j < kBlock; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

}  // namespace

void quantize_q4_0(const float* x, void* dst, int64_t n, const float* importance) {
    if (!importance) {
        quantize_row_q4_0_ref(x, dst, n);
        return;
    }
    auto* y = static_cast<BlockQ4_0*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[kBlock];
    int8_t L[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + kBlock * ib;
        block_weights(xb, importance + kBlock * ib, sigma2, weight);
        const float d = qref::make_qx_quants(kBlock, 8, xb, L, weight);  // L in 0..15
        y[ib].d = fp32_to_fp16(d);
        for (int j = 0; j < kBlock / 2; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
    }
}

void quantize_q5_0(const float* x, void* dst, int64_t n, const float* importance) {
    if (!importance) {
        quantize_row_q5_0_ref(x, dst, n);
        return;
    }
    auto* y = static_cast<BlockQ5_0*>(dst);
    const float sigma2 = row_sigma2(x, n);
    float weight[kBlock];
    int8_t L[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + kBlock * ib;
        block_weights(xb, importance + kBlock * ib, sigma2, weight);
        const float d = qref::make_qx_quants(kBlock, 16, xb, L, weight);  // L in 0..31
        y[ib].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < kBlock / 2; ++j) {
            const int q0 = L[j], q1 = L[j + 16];
            y[ib].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= static_cast<uint32_t>(q0 >> 4) << j;
            qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
        }
        std::memcpy(y[ib].qh, &qh, sizeof qh);
    }
}

}  // namespace pl
