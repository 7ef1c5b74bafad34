// SPDX-License-Identifier: MIT
// AVX-512 (VNNI + VBMI) decode GEMV for q3.5 rows in the folded layout (quant/q3_5_fold.h):
// bit-identical to dot_q3_5f_ref and to the AMX block GEMM.
//
// Per group, as the q3.5 kernel: one 64-byte load of the mags serves the four steps (vpermb
// through 64-entry tables that read bits 0-1, 2-3 and 4-5 directly; step 3 shifts by 6), the
// step's sign bits negate activation bytes, and four vpdpbusd leave in int32 lane L the exact dot
// of sub-block L. Then lane L times mult_L (vpmulld), and the 16 lanes of 16 consecutive groups
// are summed into one vector (lane j = S of group j: a transpose-add of 16 vectors, 2.8 ops a
// group), which takes one convert, one multiply and one FMA per 16 groups.
#include "kernels/cpu/kernels.h"

#include "kernels/cpu/x86/avx512/q3_5_mags_avx512.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace pl {
namespace {

constexpr int kGB = kQ3_5GroupBytes;
constexpr int kSuper = kQ3_5FoldSuper;

using q3_5_avx512::MagTables;
using q3_5_avx512::step_mags;

inline void prefetch_ahead(const uint8_t* p) {
    // 10 KiB ahead into L2, as the q3.5 GEMV (docs/performance.md): two lines per group.
    _mm_prefetch(reinterpret_cast<const char*>(p) + 10240, _MM_HINT_T2);
    _mm_prefetch(reinterpret_cast<const char*>(p) + 10240 + 64, _MM_HINT_T2);
}

// mult_L * (exact dot of sub-block L) in lane L, for one group at gp with activations a.
inline __m512i group_lanes(const uint8_t* gp, const int8_t* a, const MagTables& T) {
    prefetch_ahead(gp);
    const __m512i mb = _mm512_loadu_si512(gp);
    __m512i i0 = _mm512_setzero_si512(), i1 = i0;
    for (int t = 0; t < 4; ++t) {
        const __m512i mag = step_mags(mb, t, T);
        uint64_t bits;
        std::memcpy(&bits, gp + 64 + 8 * t, 8);
        const __m512i x = _mm512_loadu_si512(a + 64 * t);
        const __m512i sx = _mm512_mask_sub_epi8(x, _cvtu64_mask64(bits), _mm512_setzero_si512(), x);
        if (t & 1)
            i1 = _mm512_dpbusd_epi32(i1, mag, sx);
        else
            i0 = _mm512_dpbusd_epi32(i0, mag, sx);
    }
    const __m512i mu = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gp + 96)));
    return _mm512_mullo_epi32(_mm512_add_epi32(i0, i1), mu);
}

// Transpose-add steps: pairs (lanes 4k+q of 128-bit chunk k hold partial sums of 2, then 4
// vectors), then the four chunks.
inline __m512i add_pairs(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}
inline __m512i add_quads(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
inline __m512i add_chunks(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x88), _mm512_shuffle_i32x4(a, b, 0xDD));
}

// The 16 lanes' tree of quant/q3_5_fold.h: halves, quarters, then pairs.
inline float fold_lanes(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}

// kRows rows (at w[r], folded layout, n = 256 G) against one activation row: y[r].
template <int kRows>
void rows_q3_5f(const uint8_t* const* w, const int8_t* qs, const float* d, int64_t G, float* y) {
    const MagTables T;
    const __m512i gidx = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
    __m512 acc[kRows];
    const uint8_t* p[kRows];
    for (int r = 0; r < kRows; ++r) {
        acc[r] = _mm512_setzero_ps();
        p[r] = w[r];
    }
    for (int64_t gb = 0; gb < G; gb += kSuper) {
        const int c = static_cast<int>(G - gb < kSuper ? G - gb : kSuper);
        const int8_t* a = qs + gb * kQ3_5Group;
        __m512i quad[kRows][4];
        for (int j4 = 0; j4 < 4; ++j4) {
            __m512i pair[kRows][2];
            for (int j2 = 0; j2 < 2; ++j2) {
                __m512i v[kRows][2];
                for (int jj = 0; jj < 2; ++jj) {
                    const int j = 4 * j4 + 2 * j2 + jj;
                    for (int r = 0; r < kRows; ++r)
                        v[r][jj] = j < c ? group_lanes(p[r] + j * kGB, a + j * kQ3_5Group, T) : _mm512_setzero_si512();
                }
                for (int r = 0; r < kRows; ++r) pair[r][j2] = add_pairs(v[r][0], v[r][1]);
            }
            for (int r = 0; r < kRows; ++r) quad[r][j4] = add_quads(pair[r][0], pair[r][1]);
        }
        const __mmask16 lanes = static_cast<__mmask16>((1u << c) - 1);
        const __m512 da = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, gidx, d + gb * (kQ3_5Group / 32), 4);
        for (int r = 0; r < kRows; ++r) {
            const __m512i S = add_chunks(add_chunks(quad[r][0], quad[r][1]), add_chunks(quad[r][2], quad[r][3]));
            const __m512i e = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, p[r] + c * kGB));
            const __m512 cg = _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
            acc[r] = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(S), _mm512_mul_ps(cg, da), acc[r], lanes);
            p[r] += c * kQ3_5FoldGroupBytes;
        }
    }
    for (int r = 0; r < kRows; ++r) y[r] = fold_lanes(acc[r]);
}

float dot_q3_5f_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    const uint8_t* p[1] = {static_cast<const uint8_t*>(w)};
    float y;
    rows_q3_5f<1>(p, qs, d, n / kQ3_5Group, &y);
    return y;
}

void dot2_q3_5f_avx512(const void* w0, const void* w1, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n,
                       float* y) {
    const uint8_t* p[2] = {static_cast<const uint8_t*>(w0), static_cast<const uint8_t*>(w1)};
    rows_q3_5f<2>(p, qs, d, n / kQ3_5Group, y);
}


// ---- folded block GEMM for a few activation rows (the AMX GEMM takes the rest, kernels.h) -------
// Per group, each of kR weight rows is decoded once into signed bytes +-MAG (no multipliers) with
// its lane correction 128 * sum(w) (the activations come offset-binary, a + 128, as vpdpbusd's
// unsigned operand); then per activation row 4 vpdpbusd give sub-block L's exact dot in lane L, a
// vpmulld by mult_L makes it the group's lane sums, kept per (row, activation row, group of the
// super-group) and summed over lanes into S (lane j = group j) once per super-group, as the GEMV.
// m <= kFewChunk here (gemm_rows_q3_5f_avx512 cuts bigger m), so those lane sums stay in L1.
constexpr int64_t kFewChunk = 4;
// Lane-sum slots per (weight row, token): one more than a super-group's groups, so the kR * 4
// slots of one group are not 4 KiB apart (same L1 set: the stores thrashed it, 1.6-2x slower).
constexpr int kPartStride = kSuper + 1;

template <int kR>
void rows_q3_5f_gemm(const uint8_t* w, size_t row_bytes, int64_t n, const uint8_t* au8, const float* d, int64_t m, float* y,
                     int64_t ldy) {
    const int64_t G = n / kQ3_5Group, nbs = n / 32;
    __m512 acc[kR * kFewChunk];
    __m512i part[kR * kFewChunk * kPartStride];
    __m512 da[kFewChunk];
    for (int i = 0; i < kR * kFewChunk; ++i) acc[i] = _mm512_setzero_ps();
    const MagTables T;
    const __m512i k128 = _mm512_set1_epi8(static_cast<char>(0x80));
    const __m512i gidx = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
    const uint8_t* p[kR];
    for (int r = 0; r < kR; ++r) p[r] = w + r * row_bytes;
    for (int64_t gb = 0; gb < G; gb += kSuper) {
        const int c = static_cast<int>(G - gb < kSuper ? G - gb : kSuper);
        for (int j = 0; j < c; ++j) {
            const int64_t g = gb + j;
            __m512i wv[kR][4], negc[kR], mu[kR];
            for (int r = 0; r < kR; ++r) {
                const uint8_t* gp = p[r] + j * kGB;
                prefetch_ahead(gp);
                const __m512i mb = _mm512_loadu_si512(gp);
                __m512i cs = _mm512_setzero_si512();
                for (int t = 0; t < 4; ++t) {
                    const __m512i mag = step_mags(mb, t, T);
                    uint64_t bits;
                    std::memcpy(&bits, gp + 64 + 8 * t, 8);
                    wv[r][t] = _mm512_mask_sub_epi8(mag, _cvtu64_mask64(bits), _mm512_setzero_si512(), mag);
                    cs = _mm512_dpbusd_epi32(cs, k128, wv[r][t]);
                }
                negc[r] = _mm512_sub_epi32(_mm512_setzero_si512(), cs);
                mu[r] = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gp + 96)));
            }
            for (int64_t t = 0; t < m; ++t) {
                const uint8_t* at = au8 + t * n + g * kQ3_5Group;
                __m512i a[4];
                for (int s4 = 0; s4 < 4; ++s4) a[s4] = _mm512_loadu_si512(at + 64 * s4);
                for (int r = 0; r < kR; ++r) {
                    __m512i i = negc[r];
                    for (int s4 = 0; s4 < 4; ++s4) i = _mm512_dpbusd_epi32(i, a[s4], wv[r][s4]);
                    part[(r * kFewChunk + t) * kPartStride + j] = _mm512_mullo_epi32(i, mu[r]);
                }
            }
        }
        const __mmask16 lanes = static_cast<__mmask16>((1u << c) - 1);
        for (int64_t t = 0; t < m; ++t) da[t] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, gidx, d + t * nbs + gb * 8, 4);
        for (int r = 0; r < kR; ++r) {
            const __m512i e = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, p[r] + c * kGB));
            const __m512 cg = _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
            for (int64_t t = 0; t < m; ++t) {
                __m512i* v = part + (r * kFewChunk + t) * kPartStride;
                for (int j = c; j < kSuper; ++j) v[j] = _mm512_setzero_si512();
                __m512i q[4];
                for (int j4 = 0; j4 < 4; ++j4)
                    q[j4] = add_quads(add_pairs(v[4 * j4], v[4 * j4 + 1]), add_pairs(v[4 * j4 + 2], v[4 * j4 + 3]));
                const __m512i S = add_chunks(add_chunks(q[0], q[1]), add_chunks(q[2], q[3]));
                acc[r * kFewChunk + t] = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(S), _mm512_mul_ps(cg, da[t]), acc[r * kFewChunk + t], lanes);
            }
            p[r] += c * kQ3_5FoldGroupBytes;
        }
    }
    for (int r = 0; r < kR; ++r)
        for (int64_t t = 0; t < m; ++t) y[t * ldy + r] = fold_lanes(acc[r * kFewChunk + t]);
}

template <int kR>
void rows_q3_5f_chunks(const uint8_t* w, size_t row_bytes, int64_t n, const uint8_t* au8, const float* d, int64_t m, float* y,
                       int64_t ldy) {
    for (int64_t t0 = 0; t0 < m; t0 += kFewChunk)
        rows_q3_5f_gemm<kR>(w, row_bytes, n, au8 + t0 * n, d + t0 * (n / 32), std::min(kFewChunk, m - t0), y + t0 * ldy, ldy);
}

void gemm_rows_q3_5f_avx512(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const uint8_t* au8, const float* d,
                            int64_t m, float* y, int64_t ldy) {
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) rows_q3_5f_chunks<4>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
    for (; r + 2 <= nrows; r += 2) rows_q3_5f_chunks<2>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
    for (; r < nrows; ++r) rows_q3_5f_chunks<1>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
}

}  // namespace

void install_avx512_q3_5f(CpuKernels& k) {
    k.dot_q3_5f = dot_q3_5f_avx512;
    k.dot2_q3_5f = dot2_q3_5f_avx512;
    k.gemm_rows_q3_5f_few = gemm_rows_q3_5f_avx512;
}

}  // namespace pl
