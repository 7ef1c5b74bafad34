// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/VL/DQ + VNNI) kernels. Every weight format is brought to the same shape: unsigned
// bytes u with w = dw * (u - offset) + min, so one vpdpbusd (unsigned x signed) per 64 weights
// gives sum(u * a) exactly, and the offset is an exact integer correction offset * sum(a):
//   Q4_0: u = nibble, offset 8;  Q8_0: u = q ^ 0x80 (= q + 128), offset 128;  Q4_1: u = nibble,
//   offset 0, plus min * da * sum(a).
// Two 32-element blocks share a 512-bit register (lanes 0-7: block b, lanes 8-15: block b+1).
// The gemm kernels unpack each weight block pair once per tile of kTile activation rows; the dot
// kernels are the one-row case of the same code.
#include "kernels/cpu/kernels.h"

#include "core/fp16.h"
#include "quant/q3_5.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q8_0.h"

#include <immintrin.h>
#include <cstring>

namespace pl {
namespace {

struct FmtQ4_0 {
    using Block = BlockQ4_0;
    static constexpr int32_t kOffset = 8;
    static constexpr bool kHasMin = false;
    static float min(const Block&) { return 0.0f; }
};
struct FmtQ4_1 {
    using Block = BlockQ4_1;
    static constexpr int32_t kOffset = 0;
    static constexpr bool kHasMin = true;
    static float min(const Block& b) { return _cvtsh_ss(b.m); }
};
struct FmtQ8_0 {
    using Block = BlockQ8_0;
    static constexpr int32_t kOffset = 128;
    static constexpr bool kHasMin = false;
    static float min(const Block&) { return 0.0f; }
};

// 32 unsigned weights of one block in element order.
inline __m256i unsigned_block(const BlockQ4_0& b) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}
inline __m256i unsigned_block(const BlockQ4_1& b) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}
inline __m256i unsigned_block(const BlockQ8_0& b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
}

inline __m512 two_scales(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(s0)), _mm256_set1_ps(s1), 1);
}

template <class Fmt, int kTile>
inline void tile(const typename Fmt::Block* blocks, int64_t nb, const int8_t* qs, const float* d, const int32_t* sum,
                 int64_t n, float* y, int64_t y_stride) {
    const int64_t nbs = n / kQ8ABlock;  // activation blocks per row
    __m512 acc[kTile];
    float tail[kTile];
    for (int t = 0; t < kTile; ++t) {
        acc[t] = _mm512_setzero_ps();
        tail[t] = 0.0f;
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(unsigned_block(blocks[b])), unsigned_block(blocks[b + 1]), 1);
        const float dw0 = _cvtsh_ss(blocks[b].d), dw1 = _cvtsh_ss(blocks[b + 1].d);
        for (int t = 0; t < kTile; ++t) {
            const int8_t* a = qs + t * n + b * kQ8ABlock;
            const float* da = d + t * nbs + b;
            const int32_t* sa = sum + t * nbs + b;
            __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(a));
            if constexpr (Fmt::kOffset != 0) {
                dot = _mm512_mask_sub_epi32(dot, 0x0001, dot, _mm512_set1_epi32(Fmt::kOffset * sa[0]));
                dot = _mm512_mask_sub_epi32(dot, 0x0100, dot, _mm512_set1_epi32(Fmt::kOffset * sa[1]));
            }
            acc[t] = _mm512_fmadd_ps(two_scales(dw0 * da[0], dw1 * da[1]), _mm512_cvtepi32_ps(dot), acc[t]);
            if constexpr (Fmt::kHasMin)
                tail[t] += Fmt::min(blocks[b]) * da[0] * static_cast<float>(sa[0]) +
                           Fmt::min(blocks[b + 1]) * da[1] * static_cast<float>(sa[1]);
        }
    }
    if (b < nb) {  // odd block count: the last block on 256-bit lanes
        const __m256i u = unsigned_block(blocks[b]);
        const float dw = _cvtsh_ss(blocks[b].d);
        for (int t = 0; t < kTile; ++t) {
            const int8_t* a = qs + t * n + b * kQ8ABlock;
            const float da = d[t * nbs + b];
            const int32_t sa = sum[t * nbs + b];
            const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
            const int32_t isum = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(dot)) - Fmt::kOffset * sa;
            tail[t] += dw * da * static_cast<float>(isum);
            if constexpr (Fmt::kHasMin) tail[t] += Fmt::min(blocks[b]) * da * static_cast<float>(sa);
        }
    }
    for (int t = 0; t < kTile; ++t) y[t * y_stride] = _mm512_reduce_add_ps(acc[t]) + tail[t];
}

template <class Fmt>
void gemm_avx512(const void* w, int64_t n, const int8_t* qs, const float* d, const int32_t* sum, int64_t m, float* y,
                 int64_t y_stride) {
    constexpr int kTile = 4;
    const auto* blocks = static_cast<const typename Fmt::Block*>(w);
    const int64_t nb = n / kQ8ABlock;
    int64_t i = 0;
    for (; i + kTile <= m; i += kTile)
        tile<Fmt, kTile>(blocks, nb, qs + i * n, d + i * nb, sum + i * nb, n, y + i * y_stride, y_stride);
    for (; i < m; ++i) tile<Fmt, 1>(blocks, nb, qs + i * n, d + i * nb, sum + i * nb, n, y + i * y_stride, y_stride);
}

template <class Fmt>
float dot_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    float y;
    tile<Fmt, 1>(static_cast<const typename Fmt::Block*>(w), n / kQ8ABlock, qs, d, sum, n, &y, 1);
    return y;
}

// ---- q3.5 (quant/q3_5.h) ---------------------------------------------------------------------
// Two blocks (64 weights) per step: the three bit-planes become 64-bit masks; magnitudes come from
// a pshufb lookup of (plane0 | plane1 << 1), the sign plane negates the activation bytes
// (|a| <= 127, so exact), and one vpdpbusd gives 16 int32 lanes = four 4-lane groups, one per
// 16-element sub-block, each scaled by its E4M4 scale times the activation block's scale.

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Per-lane weight scales of the four sub-blocks of blocks b, b+1 (lanes 4j..4j+3 = sub-block j).
inline __m512 q3_5_lane_scales(const uint8_t* s0, const uint8_t* s1) {
    const uint32_t codes = static_cast<uint32_t>(s0[0]) | static_cast<uint32_t>(s0[1]) << 8 |
                           static_cast<uint32_t>(s1[0]) << 16 | static_cast<uint32_t>(s1[1]) << 24;
    const __m128i spread = _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(codes)),
                                            _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    const __m512i k = _mm512_cvtepu8_epi32(spread);
    const __m512i bits = _mm512_add_epi32(_mm512_slli_epi32(k, 19), _mm512_set1_epi32((127 - kQ3_5ScaleBias) << 23));
    return _mm512_maskz_mov_ps(_mm512_test_epi32_mask(k, k), _mm512_castsi512_ps(bits));
}

inline __m512i q3_5_mag_lut() {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(kQ3_5Mag[0], kQ3_5Mag[1], kQ3_5Mag[2], kQ3_5Mag[3], 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0));
}

template <int kTile>
inline void tile_q3_5(const BlockQ3_5* blocks, int64_t nb, const int8_t* qs, const float* d, int64_t n, float* y,
                      int64_t y_stride) {
    const int64_t nbs = n / kQ8ABlock;
    const __m512i lut = q3_5_mag_lut();
    const __m512i one = _mm512_set1_epi8(1), two = _mm512_set1_epi8(2);
    const __m512i spread_da = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    __m512 acc[kTile];
    for (int t = 0; t < kTile; ++t) acc[t] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t* p = blocks[b].planes;
        const uint8_t* q = blocks[b + 1].planes;
        const __mmask64 m0 = _cvtu64_mask64(load_u32(p) | static_cast<uint64_t>(load_u32(q)) << 32);
        const __mmask64 m1 = _cvtu64_mask64(load_u32(p + 4) | static_cast<uint64_t>(load_u32(q + 4)) << 32);
        const __mmask64 neg = _cvtu64_mask64(load_u32(p + 8) | static_cast<uint64_t>(load_u32(q + 8)) << 32);
        const __m512i bit0 = _mm512_maskz_mov_epi8(m0, one);
        const __m512i idx = _mm512_mask_add_epi8(bit0, m1, bit0, two);
        const __m512i mag = _mm512_shuffle_epi8(lut, idx);
        const __m512 ws = q3_5_lane_scales(blocks[b].scales, blocks[b + 1].scales);
        for (int t = 0; t < kTile; ++t) {
            const __m512i a = _mm512_loadu_si512(qs + t * n + b * kQ8ABlock);
            const __m512i sa = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), mag, sa);
            const __m512 da = _mm512_permutexvar_ps(
                spread_da, _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d + t * nbs + b)))));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ws, da), _mm512_cvtepi32_ps(dot), acc[t]);
        }
    }
    float tail[kTile] = {};
    if (b < nb) {  // odd block count: the last block on 256-bit lanes
        const uint8_t* p = blocks[b].planes;
        const __mmask32 m0 = _cvtu32_mask32(load_u32(p)), m1 = _cvtu32_mask32(load_u32(p + 4));
        const __mmask32 neg = _cvtu32_mask32(load_u32(p + 8));
        const __m256i one8 = _mm256_set1_epi8(1);
        const __m256i bit0 = _mm256_maskz_mov_epi8(m0, one8);
        const __m256i idx = _mm256_mask_add_epi8(bit0, m1, bit0, _mm256_set1_epi8(2));
        const __m256i mag = _mm256_shuffle_epi8(_mm512_castsi512_si256(lut), idx);
        const float w0 = q3_5_scale(blocks[b].scales[0]), w1 = q3_5_scale(blocks[b].scales[1]);
        for (int t = 0; t < kTile; ++t) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + t * n + b * kQ8ABlock));
            const __m256i sa = _mm256_mask_sub_epi8(a, neg, _mm256_setzero_si256(), a);
            const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), mag, sa);
            alignas(32) int32_t lanes[8];
            _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), dot);
            const int32_t s0 = lanes[0] + lanes[1] + lanes[2] + lanes[3], s1 = lanes[4] + lanes[5] + lanes[6] + lanes[7];
            tail[t] = d[t * nbs + b] * (w0 * static_cast<float>(s0) + w1 * static_cast<float>(s1));
        }
    }
    for (int t = 0; t < kTile; ++t) y[t * y_stride] = _mm512_reduce_add_ps(acc[t]) + tail[t];
}

void gemm_q3_5_avx512(const void* w, int64_t n, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t m,
                      float* y, int64_t y_stride) {
    constexpr int kTile = 4;
    const auto* blocks = static_cast<const BlockQ3_5*>(w);
    const int64_t nb = n / kQ8ABlock;
    int64_t i = 0;
    for (; i + kTile <= m; i += kTile) tile_q3_5<kTile>(blocks, nb, qs + i * n, d + i * nb, n, y + i * y_stride, y_stride);
    for (; i < m; ++i) tile_q3_5<1>(blocks, nb, qs + i * n, d + i * nb, n, y + i * y_stride, y_stride);
}

float dot_q3_5_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    float y;
    tile_q3_5<1>(static_cast<const BlockQ3_5*>(w), n / kQ8ABlock, qs, d, n, &y, 1);
    return y;
}

void quantize_acts_avx512(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum) {
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const float* xb = x + b * kQ8ABlock;
        const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m512 mul = _mm512_set1_ps(id);
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, mul));  // nearest-even
        const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, mul));
        sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQ8ABlock), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQ8ABlock + 16), _mm512_cvtsepi32_epi8(i1));
        d[b] = db;
    }
}

}  // namespace

void install_avx512(CpuKernels& k) {
    k.quantize_acts = quantize_acts_avx512;
    k.dot_q8_0 = dot_avx512<FmtQ8_0>;
    k.dot_q4_0 = dot_avx512<FmtQ4_0>;
    k.dot_q4_1 = dot_avx512<FmtQ4_1>;
    k.gemm_q8_0 = gemm_avx512<FmtQ8_0>;
    k.gemm_q4_0 = gemm_avx512<FmtQ4_0>;
    k.gemm_q4_1 = gemm_avx512<FmtQ4_1>;
    k.dot_q3_5 = dot_q3_5_avx512;
    k.gemm_q3_5 = gemm_q3_5_avx512;
}

}  // namespace pl
