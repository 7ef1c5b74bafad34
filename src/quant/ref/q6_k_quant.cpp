// SPDX-License-Identifier: MIT
// Q6_K quantizers (layout: quant/q6_k.h; API: quant/quantize.h). Reproduce GGML's
// quantize_row_q6_K_ref and quantize_row_q6_K_impl byte for byte.
#include "core/fp16.h"
#include "quant/q6_k.h"
#include "quant/quantize.h"
#include "quant/ref/quant_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kSub = 16;
constexpr int kNSub = kQK_K / kSub;

// One super-block: `importance` (256 weights for this block) or nullptr for x^2 weighting.
void quantize_block_q6_k(const float* x, BlockQ6_K& b, const float* importance) {
    int8_t L[kQK_K];
    float scales[kNSub];
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int ib = 0; ib < kNSub; ++ib) {
        const float* qw = importance ? importance + kSub * ib : nullptr;
        scales[ib] = qref::make_qx_quants(kSub, 32, x + kSub * ib, L + kSub * ib, qw);
        const float a = std::fabs(scales[ib]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < qref::kGroupMaxEps) {
        std::memset(&b, 0, sizeof(b));
        b.d = fp32_to_fp16(0.0f);
        return;
    }
    // The largest-magnitude sub-block scale becomes -128 (clamped to 127 on the other side).
    const float iscale = -128.0f / max_scale;
    b.d = fp32_to_fp16(1.0f / iscale);
    for (int ib = 0; ib < kNSub; ++ib)
        b.scales[ib] = static_cast<int8_t>(std::min(127, qref::nearest_int(iscale * scales[ib])));
    const float d_all = fp16_to_fp32(b.d);
    for (int j = 0; j < kNSub; ++j) {
        const float d = d_all * static_cast<float>(b.scales[j]);
        if (d == 0.0f) continue;
        for (int i = 0; i < kSub; ++i) {
            const int l = std::max(-32, std::min(31, qref::nearest_int(x[kSub * j + i] / d)));
            L[kSub * j + i] = static_cast<int8_t>(l + 32);
        }
    }
    // 128 weights per 64 bytes of ql and 32 of qh; group g = (e % 128) / 32 picks the nibble and
    // ql half, qh holds the two high bits of all four groups.
    for (int h = 0; h < 2; ++h) {
        const int8_t* Lh = L + 128 * h;
        uint8_t* ql = b.ql + 64 * h;
        uint8_t* qh = b.qh + 32 * h;
        for (int l = 0; l < 32; ++l) {
            const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

}  // namespace

void quantize_row_q6_k_ref(const float* x, void* dst, int64_t n) { quantize_q6_k(x, dst, n, nullptr); }

void quantize_q6_k(const float* x, void* dst, int64_t n, const float* importance) {
    auto* y = static_cast<BlockQ6_K*>(dst);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i)
        quantize_block_q6_k(x + kQK_K * i, y[i], importance ? importance + kQK_K * i : nullptr);
}

}  // namespace pl
