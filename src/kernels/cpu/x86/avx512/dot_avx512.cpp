// SPDX-License-Identifier: MIT
// AVX-512 (F/BW/VL/DQ + VNNI) kernels: two 32-element blocks per 512-bit register, vpdpbusd for
// the unsigned x signed byte products. Integer parts are exact and equal the scalar reference.
#include "kernels/cpu/kernels.h"

#include "core/fp16.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q8_0.h"

#include <immintrin.h>

namespace pl {
namespace {

// Two Q4 blocks' nibbles -> 64 unsigned bytes: [lo(b) hi(b) lo(b+1) hi(b+1)] = element order.
inline __m512i unpack_nibbles2(const uint8_t* qs0, const uint8_t* qs1) {
    const __m256i x = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0)));
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(x, m);                        // lo(b)  | lo(b+1)
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m);  // hi(b)  | hi(b+1)
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
}

// Per-lane scale: lanes 0-7 get s0, lanes 8-15 get s1.
inline __m512 two_scales(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(s0)), _mm256_set1_ps(s1), 1);
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

float dot_q8_0_q8a_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_0*>(w);
    const int64_t nb = n / kQ8ABlock;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i wq = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].qs))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b + 1].qs)), 1);
        const __m512i aq = _mm512_loadu_si512(qs + b * kQ8ABlock);
        // |w| (unsigned) times a with w's sign.
        const __mmask64 neg = _mm512_movepi8_mask(wq);
        const __m512i sa = _mm512_mask_sub_epi8(aq, neg, _mm512_setzero_si512(), aq);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), sa);
        const __m512 s = two_scales(fp16_to_fp32(blocks[b].d) * d[b], fp16_to_fp32(blocks[b + 1].d) * d[b + 1]);
        acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(dot), acc);
    }
    float tail = 0.0f;
    for (; b < nb; ++b) {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].qs));
        const __m256i aq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + b * kQ8ABlock));
        const __mmask32 neg = _mm256_movepi8_mask(wq);
        const __m256i sa = _mm256_mask_sub_epi8(aq, neg, _mm256_setzero_si256(), aq);
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wq), sa);
        tail += fp16_to_fp32(blocks[b].d) * d[b] * static_cast<float>(_mm512_reduce_add_epi32(_mm512_castsi256_si512(dot)) );
    }
    return _mm512_reduce_add_ps(acc) + tail;
}

// Integer dot of one Q4 block (unsigned nibbles) with 32 activations.
inline int32_t dot_q4_block(const uint8_t* q4, const int8_t* a) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q4));
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
    const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(dot), _mm256_extracti128_si256(dot, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

float dot_q4_0_q8a_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_0*>(w);
    const int64_t nb = n / kQ8ABlock;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i u = unpack_nibbles2(blocks[b].qs, blocks[b + 1].qs);
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(qs + b * kQ8ABlock));
        // The -8 offset, exactly: -8 * sum(a) in lane 0 (block b) and lane 8 (block b+1).
        dot = _mm512_mask_sub_epi32(dot, 0x0001, dot, _mm512_set1_epi32(8 * sum[b]));
        dot = _mm512_mask_sub_epi32(dot, 0x0100, dot, _mm512_set1_epi32(8 * sum[b + 1]));
        const __m512 s = two_scales(fp16_to_fp32(blocks[b].d) * d[b], fp16_to_fp32(blocks[b + 1].d) * d[b + 1]);
        acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(dot), acc);
    }
    float tail = 0.0f;
    for (; b < nb; ++b)
        tail += fp16_to_fp32(blocks[b].d) * d[b] *
                static_cast<float>(dot_q4_block(blocks[b].qs, qs + b * kQ8ABlock) - 8 * sum[b]);
    return _mm512_reduce_add_ps(acc) + tail;
}

float dot_q4_1_q8a_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_1*>(w);
    const int64_t nb = n / kQ8ABlock;
    __m512 acc = _mm512_setzero_ps();
    float acc_min = 0.0f;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m512i u = unpack_nibbles2(blocks[b].qs, blocks[b + 1].qs);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(qs + b * kQ8ABlock));
        const __m512 s = two_scales(fp16_to_fp32(blocks[b].d) * d[b], fp16_to_fp32(blocks[b + 1].d) * d[b + 1]);
        acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(dot), acc);
        acc_min += fp16_to_fp32(blocks[b].m) * d[b] * static_cast<float>(sum[b]) +
                   fp16_to_fp32(blocks[b + 1].m) * d[b + 1] * static_cast<float>(sum[b + 1]);
    }
    for (; b < nb; ++b)
        acc_min += fp16_to_fp32(blocks[b].d) * d[b] * static_cast<float>(dot_q4_block(blocks[b].qs, qs + b * kQ8ABlock)) +
                   fp16_to_fp32(blocks[b].m) * d[b] * static_cast<float>(sum[b]);
    return _mm512_reduce_add_ps(acc) + acc_min;
}

}  // namespace

void install_avx512(CpuKernels& k) {
    k.quantize_acts = quantize_acts_avx512;
    k.dot_q8_0 = dot_q8_0_q8a_avx512;
    k.dot_q4_0 = dot_q4_0_q8a_avx512;
    k.dot_q4_1 = dot_q4_1_q8a_avx512;
}

}  // namespace pl
