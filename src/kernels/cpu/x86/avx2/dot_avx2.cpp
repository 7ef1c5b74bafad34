// SPDX-License-Identifier: MIT
// AVX2 + FMA kernels (compiled with -mavx2 -mfma -mf16c only). Integer parts are exact and equal
// the scalar reference; float accumulation runs in 8 lanes.
#include "kernels/cpu/kernels.h"

#include "core/fp16.h"
#include "kernels/cpu/count_dispatch.h"
#include "quant/q3_5.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q8_0.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pl {
namespace {

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

// 32 nibbles of a Q4 block -> 32 unsigned bytes in element order (low nibbles, then high).
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

// sum(u[i] * a[i]) as 8 int32 lanes, u unsigned (<= 128), a signed.
inline __m256i dot_u8_i8(__m256i u, __m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1));
}

void quantize_acts_avx2(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const float* xb = x + b * kQ8ABlock;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m256 mul = _mm256_set1_ps(id);
        // cvtps rounds to nearest-even under the default MXCSR, like nearbyint in the reference.
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, mul)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, mul));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, mul)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, mul));
        sum[b] = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        // packs work within 128-bit lanes; the final permute restores element order.
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kQ8ABlock), p);
        d[b] = db;
    }
}

float dot_q8_0_q8a_avx2(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_0*>(w);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].qs));
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + b * kQ8ABlock));
        // |w| * (a with w's sign): an unsigned x signed product, as maddubs needs.
        const __m256i dot = dot_u8_i8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq));
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(blocks[b].d) * d[b]);
        acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(dot), acc);
    }
    return hsum_ps(acc);
}

float dot_q4_0_q8a_avx2(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_0*>(w);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + b * kQ8ABlock));
        __m256i dot = dot_u8_i8(unpack_nibbles(blocks[b].qs), aq);
        // The -8 offset, exactly: subtract 8 * sum(a) in lane 0.
        dot = _mm256_sub_epi32(dot, _mm256_zextsi128_si256(_mm_cvtsi32_si128(8 * sum[b])));
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(blocks[b].d) * d[b]);
        acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(dot), acc);
    }
    return hsum_ps(acc);
}

float dot_q4_1_q8a_avx2(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_1*>(w);
    __m256 acc = _mm256_setzero_ps();
    float acc_min = 0.0f;
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + b * kQ8ABlock));
        const __m256i dot = dot_u8_i8(unpack_nibbles(blocks[b].qs), aq);
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(blocks[b].d) * d[b]);
        acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(dot), acc);
        acc_min += _cvtsh_ss(blocks[b].m) * d[b] * static_cast<float>(sum[b]);
    }
    return hsum_ps(acc) + acc_min;
}

// q3.5 (quant/q3_5.h): a full group is four steps of 64 elements, each done as two 32-byte
// halves. Half h of step t: mag bytes 32h.. shifted right by 2t, masked to 2 bits, pshufb'd to
// magnitudes; the 32 sign bits expand to 0x00/0xFF bytes (byte i tests bit i) that flip the
// activations (psignb), so maddubs sees unsigned magnitudes; madd lane l of half h is sub-block
// 8h + l, accumulated in int32 over the four steps and scaled once per group. Tail groups
// (g < 256, rows that are not a multiple of 256) use the scalar reference's arithmetic.
inline __m256i expand_bits(uint32_t plane) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                                          3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(plane)), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

float dot_q3_5_q8a_avx2(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(w);
    const __m256i lut = _mm256_setr_epi8(kQ3_5Mag[0], kQ3_5Mag[1], kQ3_5Mag[2], kQ3_5Mag[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         kQ3_5Mag[0], kQ3_5Mag[1], kQ3_5Mag[2], kQ3_5Mag[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group, p += kQ3_5GroupBytes) {
        const int8_t* a = qs + g0;
        __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int h = 0; h < 2; ++h) {
            const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * h));
            for (int t = 0; t < 4; ++t) {
                const __m256i idx = _mm256_and_si256(_mm256_srli_epi16(m, 2 * t), three);
                const __m256i mag = _mm256_shuffle_epi8(lut, idx);
                uint32_t bits;
                std::memcpy(&bits, p + q3_5_signs_offset(kQ3_5Group) + 8 * t + 4 * h, 4);
                const __m256i sgn = _mm256_or_si256(expand_bits(bits), one);  // -1 or +1
                const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 64 * t + 32 * h));
                isum[h] = _mm256_add_epi32(isum[h], dot_u8_i8(mag, _mm256_sign_epi8(aq, sgn)));
            }
        }
        const __m256 da = _mm256_set1_ps(d[g0 / kQ8ABlock] * kQ3_5ScalePow);
        const uint8_t* sc = p + q3_5_scales_offset(kQ3_5Group);
        for (int h = 0; h < 2; ++h) {
            const __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 8 * h)));
            const __m256 ws = _mm256_castsi256_ps(_mm256_slli_epi32(k, 19));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(ws, da), _mm256_cvtepi32_ps(isum[h]), acc);
        }
    }
    float tail = 0.0f;
    if (g0 < n) tail = q3_5_group_dot_ref(p, n - g0, qs + g0, d[g0 / kQ8ABlock]);
    return hsum_ps(acc) + tail;
}

// ---- q3.5 rotation (R x, quant/q3_5.h), 8 floats a register ----------------------------------
// As the AVX-512 version: for h < 8 lane i pairs with lane i ^ h of its register (the lane with bit
// h clear takes a + b, the other a - b with a the lower element), for h >= 8 whole registers pair.
// The reference's operations on the same operands in the same order: the same bits.
template <int kH>
inline __m256 butterfly_in_lanes_avx2(__m256 v) {
    static_assert(kH == 1 || kH == 2 || kH == 4);
    constexpr int kHi = kH == 1 ? 0xAA : kH == 2 ? 0xCC : 0xF0;
    const __m256i idx = _mm256_xor_si256(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(kH));
    const __m256 p = _mm256_permutevar8x32_ps(v, idx);
    return _mm256_blend_ps(_mm256_add_ps(v, p), _mm256_sub_ps(p, v), kHi);
}

template <int kRegs>
inline void rotate_chunk_avx2(float* x, float scale) {
    __m256 v[kRegs];
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
#pragma GCC unroll 32
    for (int r = 0; r < kRegs; ++r) {
        const int e0 = 8 * r;
        const uint32_t bits = static_cast<uint32_t>(kQ3_5Signs[e0 >> 6] >> (e0 & 63)) & 0xFF;
        const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        const __m256 neg = _mm256_castsi256_ps(
            _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane), lane));
        v[r] = _mm256_xor_ps(_mm256_loadu_ps(x + e0), _mm256_and_ps(neg, sign));
    }
#pragma GCC unroll 32
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes_avx2<1>(v[r]);
#pragma GCC unroll 32
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes_avx2<2>(v[r]);
#pragma GCC unroll 32
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes_avx2<4>(v[r]);
#pragma GCC unroll 5
    for (int hr = 1; hr < kRegs; hr <<= 1)
#pragma GCC unroll 32
        for (int j = 0; j < kRegs; ++j)
            if ((j & hr) == 0) {
                const __m256 a = v[j], b = v[j + hr];
                v[j] = _mm256_add_ps(a, b);
                v[j + hr] = _mm256_sub_ps(a, b);
            }
    const __m256 s = _mm256_set1_ps(scale);
#pragma GCC unroll 32
    for (int r = 0; r < kRegs; ++r) _mm256_storeu_ps(x + 8 * r, _mm256_mul_ps(v[r], s));
}

void rotate_q3_5_avx2(float* x, int64_t n) {
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group) rotate_chunk_avx2<kQ3_5Group / 8>(x + g0, 0.0625f);
    const float s32 = 1.0f / std::sqrt(32.0f);
    for (; g0 < n; g0 += 32) rotate_chunk_avx2<4>(x + g0, s32);
}

// ---- attention over a paged KV head (kernels.h: attn_scores / attn_values) -------------------
// As the AVX-512 kernels with 8 lanes: a key block's dimension is two vectors, up to 4 blocks side
// by side; value columns past the last multiple of 8 are summed by scalar code (same roundings).
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline float kv_value(float x) { return x; }
inline float kv_value(uint16_t h) { return fp16_to_fp32(h); }

template <int kG, class T>
inline void scores_group_avx2(const float* q, const T* const* kb, int head_dim, __m256 div, float* att, int n_last) {
    __m256 acc[2 * kG];
    for (int g = 0; g < 2 * kG; ++g) acc[g] = _mm256_setzero_ps();
    for (int d = 0; d < head_dim; ++d) {
        const __m256 qd = _mm256_set1_ps(q[d]);
        for (int g = 0; g < kG; ++g) {
            const T* k = kb[g] + d * kAttnBlock;
            acc[2 * g] = _mm256_add_ps(acc[2 * g], _mm256_mul_ps(qd, load8(k)));
            acc[2 * g + 1] = _mm256_add_ps(acc[2 * g + 1], _mm256_mul_ps(qd, load8(k + 8)));
        }
    }
    for (int g = 0; g + 1 < kG; ++g) {
        _mm256_storeu_ps(att + g * kAttnBlock, _mm256_div_ps(acc[2 * g], div));
        _mm256_storeu_ps(att + g * kAttnBlock + 8, _mm256_div_ps(acc[2 * g + 1], div));
    }
    alignas(32) float last[kAttnBlock];
    _mm256_store_ps(last, _mm256_div_ps(acc[2 * kG - 2], div));
    _mm256_store_ps(last + 8, _mm256_div_ps(acc[2 * kG - 1], div));
    std::memcpy(att + (kG - 1) * kAttnBlock, last, static_cast<size_t>(n_last) * sizeof(float));
}

template <class T>
void attn_scores_avx2(const float* q, const T* kbase, const int32_t* blocks, size_t block_stride, int n, int head_dim, float div,
                      float* att) {
    constexpr int kGroup = 4;
    const __m256 vdiv = _mm256_set1_ps(div);
    const int nb = (n + kAttnBlock - 1) / kAttnBlock;
    for (int b0 = 0; b0 < nb; b0 += kGroup) {
        const int g = std::min(kGroup, nb - b0);
        const T* kb[kGroup];
        for (int j = 0; j < g; ++j) kb[j] = kbase + static_cast<size_t>(blocks[b0 + j]) * block_stride;
        const int n_last = std::min(kAttnBlock, n - (b0 + g - 1) * kAttnBlock);
        float* a = att + b0 * kAttnBlock;
        with_count<kGroup>(g, [&](auto G) { scores_group_avx2<G()>(q, kb, head_dim, vdiv, a, n_last); });
    }
}

template <int kV, class T>
inline void values_pass_avx2(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n,
                             int head_dim, int c0) {
    __m256 acc[kV];
    for (int v = 0; v < kV; ++v) acc[v] = _mm256_setzero_ps();
    for (int t = 0; t < n; ++t) {
        const T* row = vbase + static_cast<size_t>(blocks[t / kAttnBlock]) * block_stride +
                       static_cast<size_t>(t % kAttnBlock) * static_cast<size_t>(head_dim) + c0;
        const __m256 a = _mm256_set1_ps(att[t]);
        for (int v = 0; v < kV; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(a, load8(row + 8 * v)));
    }
    for (int v = 0; v < kV; ++v) _mm256_storeu_ps(out + c0 + 8 * v, acc[v]);
}

template <class T>
void attn_values_avx2(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n, int head_dim) {
    const int vec_end = head_dim / 8 * 8;
    for (int c0 = 0; c0 < vec_end; c0 += 64) {
        with_count<8>(std::min(64, vec_end - c0) / 8,
                      [&](auto V) { values_pass_avx2<V()>(out, att, vbase, blocks, block_stride, n, head_dim, c0); });
    }
    for (int c = vec_end; c < head_dim; ++c) {
        float s = 0.0f;
        for (int t = 0; t < n; ++t)
            s += att[t] * kv_value(vbase[static_cast<size_t>(blocks[t / kAttnBlock]) * block_stride +
                                         static_cast<size_t>(t % kAttnBlock) * static_cast<size_t>(head_dim) + c]);
        out[c] = s;
    }
}

}  // namespace

void install_avx2(CpuKernels& k) {
    k.quantize_acts = quantize_acts_avx2;
    k.dot_q8_0 = dot_q8_0_q8a_avx2;
    k.dot_q4_0 = dot_q4_0_q8a_avx2;
    k.dot_q4_1 = dot_q4_1_q8a_avx2;
    k.dot_q3_5 = dot_q3_5_q8a_avx2;
    k.rotate_q3_5 = rotate_q3_5_avx2;
    k.attn_scores_f32 = attn_scores_avx2<float>;
    k.attn_values_f32 = attn_values_avx2<float>;
    k.attn_scores_f16 = attn_scores_avx2<uint16_t>;
    k.attn_values_f16 = attn_values_avx2<uint16_t>;
}

}  // namespace pl
