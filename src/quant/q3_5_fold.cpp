// SPDX-License-Identifier: MIT
// q3.5 folded layout (quant/q3_5_fold.h): the repacking, its inverse and the reference dot.
#include "quant/q3_5_fold.h"

#include "quant/q3_5.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kGB = kQ3_5GroupBytes;  // 112
constexpr int kScales = 96;           // offset of the scale (here: mult) bytes in a full group

inline int code_exp(int k) { return std::max(k >> 4, 1); }
inline int code_mant(int k) { return k >= 16 ? 16 + (k & 15) : k; }

// The E4M4 code whose scale is mult * 2^(e_g - 26) (the inverse of q3_5_fold_scales).
uint8_t code_of(uint8_t mult, int e_g) {
    if (mult == 0) return 0;
    for (int e = std::max(1, e_g - 3); e <= e_g; ++e) {
        const int sh = e - e_g + 3, m = mult >> sh;
        if ((m << sh) != mult) continue;
        if (e == 1 && m >= 1 && m <= 31) return static_cast<uint8_t>(m);
        if (e >= 2 && m >= 16 && m <= 31) return static_cast<uint8_t>(e << 4 | (m - 16));
    }
    return 0;  // not reached for bytes fold_row_q3_5 wrote
}

inline float exp_scale(uint8_t biased) { return std::bit_cast<float>(static_cast<uint32_t>(biased) << 23); }

}  // namespace

bool q3_5_fold_scales(const uint8_t* k, uint8_t* mult, int& e_g) {
    int kmax = 0;
    for (int L = 0; L < 16; ++L) kmax = std::max<int>(kmax, k[L]);
    e_g = code_exp(kmax);
    for (int L = 0; L < 16; ++L) {
        if (k[L] == 0) {
            mult[L] = 0;
            continue;
        }
        const int sh = code_exp(k[L]) - e_g + 3;
        if (sh < 0) return false;
        mult[L] = static_cast<uint8_t>(code_mant(k[L]) << sh);
    }
    return true;
}

bool fold_row_q3_5(const uint8_t* src, uint8_t* dst, int64_t n) {
    const int64_t G = n / kQ3_5Group;
    for (int64_t g = 0; g < G; ++g) {
        const uint8_t* gp = src + g * kGB;
        uint8_t* out = dst + q3_5f_group_offset(g);
        std::memcpy(out, gp, kScales);
        int e_g = 0;
        if (!q3_5_fold_scales(gp + kScales, out + kScales, e_g)) return false;
        dst[q3_5f_exp_offset(g, G)] = static_cast<uint8_t>(e_g + kQ3_5FoldExpBias);
    }
    return true;
}

void dequantize_row_q3_5f(const void* src, float* out, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(src);
    const int64_t G = n / kQ3_5Group;
    // Group by group: each is a whole q3.5 group (its own rotation), so one group's bytes at a
    // time give the row's weights without a row-sized buffer.
    uint8_t q[kGB];
    for (int64_t g = 0; g < G; ++g) {
        const uint8_t* gp = p + q3_5f_group_offset(g);
        std::memcpy(q, gp, kScales);
        const int e_g = p[q3_5f_exp_offset(g, G)] - kQ3_5FoldExpBias;
        for (int L = 0; L < 16; ++L) q[kScales + L] = code_of(gp[kScales + L], e_g);
        dequantize_row_q3_5_ref(q, out + g * kQ3_5Group, kQ3_5Group);
    }
}

int32_t q3_5f_group_isum(const uint8_t* p, const int8_t* a) {
    const uint8_t* signs = p + 64;
    const uint8_t* mult = p + kScales;
    int32_t s = 0;
    for (int e = 0; e < kQ3_5Group; ++e) {
        const int t = e / 64, i = e % 64;
        const int32_t w = kQ3_5Mag[(p[i] >> (2 * t)) & 3] * mult[i / 4];
        s += ((signs[e >> 3] >> (e & 7)) & 1) ? -w * a[e] : w * a[e];
    }
    return s;
}

float dot_q3_5f_ref(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(w);
    const int64_t G = n / kQ3_5Group;
    float acc[kQ3_5FoldSuper] = {};
    for (int64_t g = 0; g < G; ++g) {
        const int32_t S = q3_5f_group_isum(p + q3_5f_group_offset(g), qs + g * kQ3_5Group);
        const float s = exp_scale(p[q3_5f_exp_offset(g, G)]) * d[g * (kQ3_5Group / 32)];
        acc[g % kQ3_5FoldSuper] = std::fma(static_cast<float>(S), s, acc[g % kQ3_5FoldSuper]);
    }
    for (int h = kQ3_5FoldSuper / 2; h >= 1; h >>= 1)
        for (int j = 0; j < h; ++j) acc[j] = acc[j] + acc[j + h];
    return acc[0];
}

}  // namespace pl
