// SPDX-License-Identifier: MIT
// q3.5 reference: rotation, dequantizer, quantizer and the activation quantizer (layout in
// quant/q3_5.h, docs/formats.md).
#include "quant/q3_5.h"

#include "quant/ref/ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kChunk = 32;
constexpr int kSub = 16;

// Size of the group starting at element g0 of a row of n: 256, or the tail n % 256.
inline int64_t group_at(int64_t g0, int64_t n) { return std::min<int64_t>(kQ3_5Group, n - g0); }

inline bool sign_bit(int e) { return (kQ3_5Signs[e >> 6] >> (e & 63)) & 1u; }

// In-place Sylvester-Hadamard transform of len values (unnormalised), len a power of two.
void fwht(float* v, int len) {
    for (int h = 1; h < len; h <<= 1)
        for (int i = 0; i < len; i += 2 * h)
            for (int j = i; j < i + h; ++j) {
                const float a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
}

// R and R^T on one group of g elements (quant/q3_5.h).
void rotate_group(float* v, int64_t g) {
    if (g == kQ3_5Group) {
        for (int e = 0; e < kQ3_5Group; ++e)
            if (sign_bit(e)) v[e] = -v[e];
        fwht(v, kQ3_5Group);
        for (int e = 0; e < kQ3_5Group; ++e) v[e] *= 0.0625f;
        return;
    }
    const float s = 1.0f / std::sqrt(static_cast<float>(kChunk));
    for (int64_t c = 0; c < g; c += kChunk) {
        float* w = v + c;
        for (int e = 0; e < kChunk; ++e)
            if (sign_bit(e)) w[e] = -w[e];
        fwht(w, kChunk);
        for (int e = 0; e < kChunk; ++e) w[e] *= s;
    }
}
void unrotate_group(float* v, int64_t g) {
    if (g == kQ3_5Group) {
        fwht(v, kQ3_5Group);
        for (int e = 0; e < kQ3_5Group; ++e) v[e] = sign_bit(e) ? -0.0625f * v[e] : 0.0625f * v[e];
        return;
    }
    const float s = 1.0f / std::sqrt(static_cast<float>(kChunk));
    for (int64_t c = 0; c < g; c += kChunk) {
        float* w = v + c;
        fwht(w, kChunk);
        for (int e = 0; e < kChunk; ++e) w[e] = sign_bit(e) ? -s * w[e] : s * w[e];
    }
}

// Element of sub-block L, slot s (s = 4t + j): p*t + 4L + j, p = g/4.
inline int64_t sub_elem(int64_t g, int L, int s) { return g / 4 * (s >> 2) + 4 * L + (s & 3); }

// Index of the magnitude level nearest to z (z >= 0, in units of d); ties go to the lower level.
inline int nearest_mag(float z) {
    return (z > kQ3_5Thresholds[0]) + (z > kQ3_5Thresholds[1]) + (z > kQ3_5Thresholds[2]);
}

// Sum of 16 values in the fixed pairwise order v[i] += v[i + h] for h = 8, 4, 2, 1 (what the SIMD
// quantizer does with shuffles, so both pick the same codes bit for bit).
inline float tree_sum16(float* v) {
    for (int h = 8; h >= 1; h >>= 1)
        for (int i = 0; i < h; ++i) v[i] += v[i + h];
    return v[0];
}

// Squared error of 16 magnitudes a[] at scale d.
inline float sub_error(const float* a, float d) {
    const float id = 1.0f / d;
    float e2[kSub];
    for (int i = 0; i < kSub; ++i) {
        const float e = a[i] - d * static_cast<float>(kQ3_5Mag[nearest_mag(a[i] * id)]);
        e2[i] = e * e;
    }
    return tree_sum16(e2);
}

}  // namespace

int q3_5_first_code_at_least(float target) {
    if (q3_5_scale(255) < target) return 255;
    int lo = 1, hi = 255;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (q3_5_scale(static_cast<uint8_t>(mid)) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// One 16-value rotated sub-block: the scale code with the least squared error among the zero
// code and the codes from about 0.55x to 1.2x of the one that just fits the largest magnitude at
// level 127; then the magnitudes and signs for it. Ties keep the smaller code.
void q3_5_quantize_sub_ref(const float* v, uint8_t& k_out, uint8_t* mag, uint8_t* neg) {
    float a[kSub], sq[kSub], amax = 0.0f;
    for (int i = 0; i < kSub; ++i) {
        a[i] = std::fabs(v[i]);
        amax = std::max(amax, a[i]);
        sq[i] = v[i] * v[i];
        neg[i] = std::signbit(v[i]) ? 1 : 0;
        mag[i] = 0;
    }
    k_out = 0;
    if (!(amax > 0.0f) || !std::isfinite(amax)) return;  // zeros (or non-finite input): the zero code
    const int k0 = q3_5_first_code_at_least(amax / 127.0f);
    int best_k = 0;
    float best_err = tree_sum16(sq);
    for (int k = std::max(1, k0 - kQ3_5SearchBelow); k <= std::min(255, k0 + kQ3_5SearchAbove); ++k) {
        const float err = sub_error(a, q3_5_scale(static_cast<uint8_t>(k)));
        if (err < best_err) {
            best_err = err;
            best_k = k;
        }
    }
    k_out = static_cast<uint8_t>(best_k);
    if (best_k == 0) return;
    const float id = 1.0f / q3_5_scale(k_out);
    for (int i = 0; i < kSub; ++i) mag[i] = static_cast<uint8_t>(nearest_mag(a[i] * id));
}

namespace {
}  // namespace

void rotate_q3_5(float* x, int64_t n) {
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        rotate_group(x + g0, g);
        g0 += g;
    }
}

void unrotate_q3_5(float* x, int64_t n) {
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        unrotate_group(x + g0, g);
        g0 += g;
    }
}

void dequantize_row_q3_5_ref(const void* src, float* out, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(src);
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        const uint8_t* mags = p;
        const uint8_t* signs = p + q3_5_signs_offset(g);
        const uint8_t* scales = p + q3_5_scales_offset(g);
        float* o = out + g0;
        for (int L = 0; L < g / kSub; ++L) {
            const float d = q3_5_scale(scales[L]);
            for (int s = 0; s < kSub; ++s) {
                const int64_t e = sub_elem(g, L, s);
                const int64_t i = e % (g / 4), t = e / (g / 4);
                const int mag = (mags[i] >> (2 * t)) & 3;
                const float v = d * static_cast<float>(kQ3_5Mag[mag]);
                o[e] = ((signs[e >> 3] >> (e & 7)) & 1) ? -v : v;
            }
        }
        unrotate_group(o, g);
        p += q3_5_group_bytes(g);
        g0 += g;
    }
}

void quantize_row_q3_5_with(const float* x, void* dst, int64_t n, Q3_5SubQuantFn sub, Q3_5RotateFn rotate) {
    if (!rotate) rotate = rotate_q3_5;
    auto* p = static_cast<uint8_t*>(dst);
    float c[kQ3_5Group];
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        std::memcpy(c, x + g0, static_cast<size_t>(g) * sizeof(float));
        rotate(c, g);  // one group: rotate_q3_5 of g elements is rotate_group
        std::memset(p, 0, static_cast<size_t>(q3_5_group_bytes(g)));
        uint8_t* mags = p;
        uint8_t* signs = p + q3_5_signs_offset(g);
        uint8_t* scales = p + q3_5_scales_offset(g);
        for (int L = 0; L < g / kSub; ++L) {
            float v[kSub];
            for (int s = 0; s < kSub; ++s) v[s] = c[sub_elem(g, L, s)];
            uint8_t mag[kSub], neg[kSub];
            sub(v, scales[L], mag, neg);
            if (scales[L] == 0) continue;  // all-zero codes
            for (int s = 0; s < kSub; ++s) {
                const int64_t e = sub_elem(g, L, s);
                const int64_t i = e % (g / 4), t = e / (g / 4);
                mags[i] = static_cast<uint8_t>(mags[i] | (mag[s] << (2 * t)));
                if (neg[s]) signs[e >> 3] = static_cast<uint8_t>(signs[e >> 3] | (1u << (e & 7)));
            }
        }
        p += q3_5_group_bytes(g);
        g0 += g;
    }
}

void quantize_row_q3_5_ref(const float* x, void* dst, int64_t n) { quantize_row_q3_5_with(x, dst, n, q3_5_quantize_sub_ref); }

float q3_5_group_dot_ref(const uint8_t* p, int64_t g, const int8_t* a, float da) {
    const int64_t step = g / 4;
    const uint8_t* signs = p + q3_5_signs_offset(g);
    const uint8_t* scales = p + q3_5_scales_offset(g);
    float acc = 0.0f;
    for (int64_t L = 0; L < g / 16; ++L) {
        int32_t isum = 0;
        for (int t = 0; t < 4; ++t)
            for (int j = 0; j < 4; ++j) {
                const int64_t i = 4 * L + j, e = step * t + i;
                const int32_t v = kQ3_5Mag[(p[i] >> (2 * t)) & 3] * a[e];
                isum += ((signs[e >> 3] >> (e & 7)) & 1) ? -v : v;
            }
        acc += q3_5_scale(scales[L]) * da * static_cast<float>(isum);
    }
    return acc;
}

void quantize_acts_q3_5_ref(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum) {
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        float amax = 0.0f;
        for (int64_t i = g0; i < g0 + g; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float dg = amax / 127.0f;
        const float id = dg != 0.0f ? 1.0f / dg : 0.0f;
        for (int64_t b = g0 / kChunk; b < (g0 + g) / kChunk; ++b) {
            int32_t s = 0;
            for (int64_t i = b * kChunk; i < (b + 1) * kChunk; ++i) {
                const int q = static_cast<int>(std::nearbyint(x[i] * id));
                qs[i] = static_cast<int8_t>(q);
                s += q;
            }
            d[b] = dg;
            sum[b] = s;
        }
        g0 += g;
    }
}

int64_t q3_5_saturated_subblocks(const float* x, int64_t n) {
    const float limit = 127.0f * q3_5_scale(255);
    int64_t count = 0;
    float c[kQ3_5Group];
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = group_at(g0, n);
        std::memcpy(c, x + g0, static_cast<size_t>(g) * sizeof(float));
        rotate_group(c, g);
        for (int L = 0; L < g / kSub; ++L) {
            float amax = 0.0f;
            for (int s = 0; s < kSub; ++s) amax = std::max(amax, std::fabs(c[sub_elem(g, L, s)]));
            count += amax > limit;
        }
        g0 += g;
    }
    return count;
}

}  // namespace pl
