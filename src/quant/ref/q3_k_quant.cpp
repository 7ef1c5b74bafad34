// SPDX-License-Identifier: MIT
// Q3_K quantizers (layout: quant/q3_k.h; API: quant/quantize.h). Reproduce GGML's
// quantize_row_q3_K_ref and quantize_row_q3_K_impl byte for byte.
#include "core/fp16.h"
#include "quant/q3_k.h"
#include "quant/quantize.h"
#include "quant/ref/quant_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kSub = 16;                 // weights per sub-block
constexpr int kNSub = kQK_K / kSub;      // 16 sub-blocks per super-block

// Stores the 6-bit biased scale `l` (0..63) of sub-block j in the 12-byte packing of q3_k.h.
// `scales` must start zeroed.
void pack_scale(uint8_t* scales, int j, int l) {
    if (j < 8)
        scales[j] = static_cast<uint8_t>(l & 0xF);
    else
        scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((l & 0xF) << 4));
    scales[8 + j % 4] = static_cast<uint8_t>(scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
}

int unpack_scale(const uint8_t* scales, int j) {
    const int lo = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
    return (lo | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Re-rounds every weight with its final scale (fp16 d times the 6-bit sub-block scale), then packs
// levels L (0..7 = q + 4) into hmask (bit 2) and qs (bits 0..1).
void finish_block(const float* x, BlockQ3_K& b, int8_t* L) {
    const float d_all = fp16_to_fp32(b.d);
    for (int j = 0; j < kNSub; ++j) {
        const float d = d_all * static_cast<float>(unpack_scale(b.scales, j));
        if (d == 0.0f) continue;  // keep the search's levels (they decode to 0 anyway)
        for (int i = 0; i < kSub; ++i) {
            const int l = std::max(-4, std::min(3, qref::nearest_int(x[kSub * j + i] / d)));
            L[kSub * j + i] = static_cast<int8_t>(l + 4);
        }
    }
    // Element e's high bit lives in hmask[e % 32], bit e / 32.
    std::memset(b.hmask, 0, sizeof(b.hmask));
    for (int e = 0; e < kQK_K; ++e) {
        if (L[e] > 3) {
            b.hmask[e % 32] = static_cast<uint8_t>(b.hmask[e % 32] | (1 << (e / 32)));
            L[e] = static_cast<int8_t>(L[e] - 4);
        }
    }
    // Low two bits: 128 weights per 32 bytes, element 32*p + l of the half in bits 2p of qs[l].
    for (int h = 0; h < 2; ++h) {
        const int8_t* Lh = L + 128 * h;
        for (int l = 0; l < 32; ++l)
            b.qs[32 * h + l] = static_cast<uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
    }
}

}  // namespace

void quantize_row_q3_k_ref(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ3_K*>(dst);
    const int64_t nb = n / kQK_K;
    int8_t L[kQK_K];
    float scales[kNSub];
    for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
        BlockQ3_K& b = y[i];
        // Sub-block scales, and the signed one of largest magnitude: it becomes level -32.
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < kNSub; ++j) {
            scales[j] = qref::make_q3_quants(kSub, 4, x + kSub * j, L + kSub * j);
            const float a = std::fabs(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        std::memset(b.scales, 0, sizeof(b.scales));
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < kNSub; ++j) {
                // GGML stores the rounded value in an int8 before clamping; |iscale * s| <= 32.
                const int l = std::max(-32, std::min(31, qref::nearest_int(iscale * scales[j]))) + 32;
                pack_scale(b.scales, j, l);
            }
            b.d = fp32_to_fp16(1.0f / iscale);
        } else {
            b.d = fp32_to_fp16(0.0f);
        }
        finish_block(x, b, L);
    }
}

void quantize_q3_k(const float* x, void* dst, int64_t n, const float* importance) {
    if (!importance) {
        quantize_row_q3_k_ref(x, dst, n);
        return;
    }
    auto* y = static_cast<BlockQ3_K*>(dst);
    const int64_t nb = n / kQK_K;
    int8_t L[kQK_K];
    float scales[kNSub], weight[kSub], sw[kNSub];
    int8_t Ls[kNSub];
    for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
        BlockQ3_K& b = y[i];
        float sumx2 = 0.0f;
        for (int j = 0; j < kQK_K; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / kQK_K;
        for (int j = 0; j < kNSub; ++j) {
            const float* qw = importance + kQK_K * i + kSub * j;
            const float* xs = x + kSub * j;
            for (int l = 0; l < kSub; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + xs[l] * xs[l]);
            float sumw = 0.0f;
            for (int l = 0; l < kSub; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = qref::make_qx_quants(kSub, 4, xs, L + kSub * j, weight);
        }
        // The 16 scales are themselves quantized to 6 bits (levels 0..63 = s + 32), weighted by
        // each sub-block's total importance.
        std::memset(b.scales, 0, sizeof(b.scales));
        const float d_block = qref::make_qx_quants(kNSub, 32, scales, Ls, sw);
        for (int j = 0; j < kNSub; ++j) pack_scale(b.scales, j, Ls[j]);
        b.d = fp32_to_fp16(d_block);
        finish_block(x, b, L);
    }
}

}  // namespace pl
