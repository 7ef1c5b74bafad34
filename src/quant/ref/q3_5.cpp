// SPDX-License-Identifier: MIT
// q3.5 reference: rotation, dequantizer and quantizer (layout in quant/q3_5.h, docs/formats.md).
#include "quant/q3_5.h"

#include "quant/ref/ref.h"

#include <cmath>
#include <cstring>

namespace pl {
namespace {

constexpr int kChunk = 32;
constexpr int kSub = 16;
const float kInvSqrt32 = 1.0f / std::sqrt(32.0f);

// In-place Sylvester-Hadamard transform of 32 values (unnormalised): H32 x.
inline void fwht32(float* v) {
    for (int len = 1; len < kChunk; len <<= 1)
        for (int i = 0; i < kChunk; i += 2 * len)
            for (int j = i; j < i + len; ++j) {
                const float a = v[j], b = v[j + len];
                v[j] = a + b;
                v[j + len] = a - b;
            }
}

inline void set_bit(uint8_t* plane, int i) { plane[i >> 3] = static_cast<uint8_t>(plane[i >> 3] | (1u << (i & 7))); }
inline int get_bit(const uint8_t* plane, int i) { return (plane[i >> 3] >> (i & 7)) & 1; }

// Index of the magnitude level nearest to z (z >= 0, in units of d); ties go to the lower level.
inline int nearest_mag(float z) {
    constexpr float t0 = 0.5f * (kQ3_5Mag[0] + kQ3_5Mag[1]);
    constexpr float t1 = 0.5f * (kQ3_5Mag[1] + kQ3_5Mag[2]);
    constexpr float t2 = 0.5f * (kQ3_5Mag[2] + kQ3_5Mag[3]);
    return (z > t0) + (z > t1) + (z > t2);
}

// Smallest code k >= 1 with q3_5_scale(k) >= target (255 when none is); target > 0.
inline int scale_code_at_least(float target) {
    int lo = 1, hi = 255;
    if (q3_5_scale(255) < target) return 255;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (q3_5_scale(static_cast<uint8_t>(mid)) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// One 16-value rotated sub-block: the scale code with the least squared error over codes from
// about 0.55x to 1.2x of the one that just fits the largest magnitude at level 127, then the
// magnitudes and signs for it. Ties keep the smaller code.
void quantize_sub(const float* v, uint8_t& k_out, uint8_t mag[kSub], uint8_t neg[kSub]) {
    float amax = 0.0f;
    for (int i = 0; i < kSub; ++i) amax = std::max(amax, std::fabs(v[i]));
    for (int i = 0; i < kSub; ++i) neg[i] = std::signbit(v[i]) ? 1 : 0;
    if (!(amax > 0.0f) || !std::isfinite(amax)) {  // zeros (or non-finite input): the zero scale
        k_out = 0;
        for (int i = 0; i < kSub; ++i) mag[i] = 0;
        return;
    }
    const int k0 = scale_code_at_least(amax / 127.0f);
    int best_k = k0;
    double best_err = INFINITY;
    for (int k = std::max(1, k0 - 14); k <= std::min(255, k0 + 3); ++k) {
        const float d = q3_5_scale(static_cast<uint8_t>(k));
        const float id = 1.0f / d;
        double err = 0.0;
        for (int i = 0; i < kSub; ++i) {
            const float a = std::fabs(v[i]);
            const float e = a - d * static_cast<float>(kQ3_5Mag[nearest_mag(a * id)]);
            err += static_cast<double>(e) * e;
        }
        if (err < best_err) {
            best_err = err;
            best_k = k;
        }
    }
    const float id = 1.0f / q3_5_scale(static_cast<uint8_t>(best_k));
    for (int i = 0; i < kSub; ++i) mag[i] = static_cast<uint8_t>(nearest_mag(std::fabs(v[i]) * id));
    k_out = static_cast<uint8_t>(best_k);
}

}  // namespace

void rotate_q3_5(float* x, int64_t n) {
    for (int64_t c = 0; c < n; c += kChunk) {
        float* v = x + c;
        for (int i = 0; i < kChunk; ++i)
            if ((kQ3_5Signs >> i) & 1u) v[i] = -v[i];
        fwht32(v);
        for (int i = 0; i < kChunk; ++i) v[i] *= kInvSqrt32;
    }
}

void unrotate_q3_5(float* x, int64_t n) {
    for (int64_t c = 0; c < n; c += kChunk) {
        float* v = x + c;
        fwht32(v);
        for (int i = 0; i < kChunk; ++i) {
            v[i] *= kInvSqrt32;
            if ((kQ3_5Signs >> i) & 1u) v[i] = -v[i];
        }
    }
}

void dequantize_row_q3_5_ref(const void* src, float* out, int64_t n) {
    const auto* blocks = static_cast<const BlockQ3_5*>(src);
    for (int64_t b = 0; b < n / kChunk; ++b) {
        const BlockQ3_5& blk = blocks[b];
        float* o = out + b * kChunk;
        for (int i = 0; i < kChunk; ++i) {
            const int mag = get_bit(blk.planes, i) | (get_bit(blk.planes + 4, i) << 1);
            const float v = q3_5_scale(blk.scales[i / kSub]) * static_cast<float>(kQ3_5Mag[mag]);
            o[i] = get_bit(blk.planes + 8, i) ? -v : v;
        }
    }
    unrotate_q3_5(out, n);
}

void quantize_row_q3_5_ref(const float* x, void* dst, int64_t n) {
    auto* blocks = static_cast<BlockQ3_5*>(dst);
    float v[kChunk];
    for (int64_t b = 0; b < n / kChunk; ++b) {
        std::memcpy(v, x + b * kChunk, sizeof v);
        rotate_q3_5(v, kChunk);
        BlockQ3_5& blk = blocks[b];
        std::memset(&blk, 0, sizeof blk);
        for (int s = 0; s < 2; ++s) {
            uint8_t mag[kSub], neg[kSub];
            quantize_sub(v + s * kSub, blk.scales[s], mag, neg);
            for (int i = 0; i < kSub; ++i) {
                const int e = s * kSub + i;
                if (mag[i] & 1) set_bit(blk.planes, e);
                if (mag[i] & 2) set_bit(blk.planes + 4, e);
                if (neg[i] && blk.scales[s] != 0) set_bit(blk.planes + 8, e);
            }
        }
    }
}

int64_t q3_5_saturated_subblocks(const float* x, int64_t n) {
    const float limit = 127.0f * q3_5_scale(255);
    int64_t count = 0;
    float v[kChunk];
    for (int64_t b = 0; b < n / kChunk; ++b) {
        std::memcpy(v, x + b * kChunk, sizeof v);
        rotate_q3_5(v, kChunk);
        for (int s = 0; s < 2; ++s) {
            float amax = 0.0f;
            for (int i = 0; i < kSub; ++i) amax = std::max(amax, std::fabs(v[s * kSub + i]));
            count += amax > limit;
        }
    }
    return count;
}

}  // namespace pl
