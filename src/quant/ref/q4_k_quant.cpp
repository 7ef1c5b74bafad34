// SPDX-License-Identifier: MIT
// Q4_K quantizers (layout: quant/q4_k.h; API: quant/quantize.h). Reproduce GGML's
// quantize_row_q4_K_ref and quantize_row_q4_K_impl byte for byte.
#include "core/fp16.h"
#include "quant/q4_k.h"
#include "quant/quantize.h"
#include "quant/ref/quant_search.h"

#include <algorithm>
#include <cmath>

namespace pl {
namespace {

constexpr int kSub = 32;             // weights per sub-block
constexpr int kNSub = kQK_K / kSub;  // 8 sub-blocks

// Packs 6-bit scale ls and min lm of sub-block j (walk j = 0..7 in order: j >= 4 ORs high bits
// into bytes written for j - 4).
void pack_scale_min(uint8_t* s, int j, int ls, int lm) {
    if (j < 4) {
        s[j] = static_cast<uint8_t>(ls);
        s[j + 4] = static_cast<uint8_t>(lm);
    } else {
        s[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls >> 4) << 6));
        s[j] = static_cast<uint8_t>(s[j] | ((lm >> 4) << 6));
    }
}

// Re-rounds every weight with the final scales and mins, then packs the nibbles.
void finish_block(const float* x, BlockQ4_K& b, uint8_t* L) {
    const float d_all = fp16_to_fp32(b.d), m_all = fp16_to_fp32(b.dmin);
    for (int j = 0; j < kNSub; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, b.scales, sc, m);
        const float d = d_all * static_cast<float>(sc);
        if (d == 0.0f) continue;
        const float dm = m_all * static_cast<float>(m);
        for (int i = 0; i < kSub; ++i) {
            const int l = qref::nearest_int((x[kSub * j + i] + dm) / d);
            L[kSub * j + i] = static_cast<uint8_t>(std::max(0, std::min(15, l)));
        }
    }
    // 64 weights per 32 bytes: low nibble = first 32, high nibble = next 32.
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
            b.qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + l + 32] << 4));
}

}  // namespace

void quantize_row_q4_k_ref(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ4_K*>(dst);
    const int64_t nb = n / kQK_K;
    uint8_t L[kQK_K], Laux[kSub];
    float weights[kSub], mins[kNSub], scales[kNSub];
    for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
        BlockQ4_K& b = y[i];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < kNSub; ++j) {
            const float* xs = x + kSub * j;
            float sum_x2 = 0.0f;
            for (int l = 0; l < kSub; ++l) sum_x2 += xs[l] * xs[l];
            const float av_x = std::sqrt(sum_x2 / kSub);
            for (int l = 0; l < kSub; ++l) weights[l] = av_x + std::fabs(xs[l]);
            scales[j] = qref::make_qkx_quants(kSub, 15, xs, weights, L + kSub * j, &mins[j], Laux, -1.0f, 0.1f, 20, false);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < kNSub; ++j) {
            // GGML keeps these in uint8_t before the clamp to 63.
            const auto ls = static_cast<uint8_t>(qref::nearest_int(inv_scale * scales[j]));
            const auto lm = static_cast<uint8_t>(qref::nearest_int(inv_min * mins[j]));
            pack_scale_min(b.scales, j, std::min<int>(63, ls), std::min<int>(63, lm));
        }
        b.d = fp32_to_fp16(max_scale / 63.0f);
        b.dmin = fp32_to_fp16(max_min / 63.0f);
        finish_block(x, b, L);
    }
}

void quantize_q4_k(const float* x, void* dst, int64_t n, const float* importance) {
    if (!importance) {
        quantize_row_q4_k_ref(x, dst, n);
        return;
    }
    auto* y = static_cast<BlockQ4_K*>(dst);
    const int64_t nb = n / kQK_K;
    uint8_t L[kQK_K], Laux[kSub], Ls[kNSub], Lm[kNSub];
    float weights[kSub], sw[kNSub], mins[kNSub], scales[kNSub];
    for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
        BlockQ4_K& b = y[i];
        float sum_x2 = 0.0f;
        for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
        const float sigma2 = 2 * sum_x2 / kQK_K;
        for (int j = 0; j < kNSub; ++j) {
            const float* qw = importance + kQK_K * i + kSub * j;
            const float* xs = x + kSub * j;
            for (int l = 0; l < kSub; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + xs[l] * xs[l]);
            float sumw = 0.0f;
            for (int l = 0; l < kSub; ++l) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = qref::make_qkx_quants(kSub, 15, xs, weights, L + kSub * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
        }
        const float d_block = qref::make_qp_quants(kNSub, 63, scales, Ls, sw);
        const float m_block = qref::make_qp_quants(kNSub, 63, mins, Lm, sw);
        for (int j = 0; j < kNSub; ++j) pack_scale_min(b.scales, j, Ls[j], Lm[j]);
        b.d = fp32_to_fp16(d_block);
        b.dmin = fp32_to_fp16(m_block);
        finish_block(x, b, L);
    }
}

}  // namespace pl
