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
#include "kernels/cpu/count_dispatch.h"
#include "kernels/cpu/x86/avx512/q3_5_mags_avx512.h"
#include "quant/q3_5.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q8_0.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

// Software prefetch of the weight stream kPrefetchBytes ahead: one core's hardware prefetchers
// alone keep about half of the DRAM bandwidth busy for these loops (measured: a q3.5 GEMV streams
// 7 GB/s without and 9-11 GB/s with it, on one thread). Rows are contiguous, so running past a
// row's end prefetches the next row; prefetches past the mapping cannot fault.
// Into L2 (T2), 10 KiB ahead: a prefetch into L1 holds one of the core's few L1 fill buffers for
// a whole DRAM latency, one into L2 only an L2 miss slot, of which there are several times more.
// Measured 2026-12-01 (2 threads, through scripts/bench-prio.sh, 3 alternating runs each, % of
// the probe's bandwidth): q3.5 GEMV 8192x28672 67/64/69 % with T0 at 3 KiB, 72/76/73 % with T2 at
// 10 KiB; 4096x11008 66/69/65 -> 70/71/75 %; LLaMA-7B (8 layers) tg16 5.61/5.88/5.46 ->
// 6.09/6.10/5.73 tok/s. T2 at 4, 6 and 16 KiB and T1 at 6 KiB measured between the two.
constexpr int kPrefetchBytes = 10240;
inline void prefetch_weights(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p) + kPrefetchBytes;
    _mm_prefetch(c, _MM_HINT_T2);
    if (bytes > 64) _mm_prefetch(c + 64, _MM_HINT_T2);
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
        prefetch_weights(&blocks[b], 2 * sizeof(typename Fmt::Block));
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
// Per group, four steps of p = g/4 elements (64 in a full group): one load of the group's mag
// bytes serves all four (vpermb through tables that read bits 2t..2t+1 directly, step 3 after one
// shift: q3_5_mags_avx512.h), the step's 64 sign bits are a mask register that
// negates activation bytes (|a| <= 127, exact), and vpdpbusd accumulates int32 lane L = sub-block
// L over the four steps. Scales are applied once per group: lane L's E4M4 code shifted left by 19
// is a float that, times da * 2^108, is scale(k_L) * da. Tail groups (g < 256) run the same code
// with masked loads of p bytes.

using q3_5_avx512::MagTables;
using q3_5_avx512::step_mags;

inline __m512 q3_5_scale_bits(__m512i k) { return _mm512_castsi512_ps(_mm512_slli_epi32(k, 19)); }

inline uint64_t load_bytes(const uint8_t* p, int64_t nbytes) {
    uint64_t v = 0;
    std::memcpy(&v, p, static_cast<size_t>(nbytes));
    return v;
}

// One group against kTile activation rows (rows t at qs + t*n, scale da[t]); adds to acc[t].
template <int kTile, bool kFull>
inline void q3_5_group(const uint8_t* gp, int64_t g, const int8_t* qs, int64_t n, const float* da, __m512* acc,
                       const MagTables& T) {
    const int64_t step = kFull ? 64 : g / 4;
    const __mmask64 lanes = kFull ? ~0ull : (step == 64 ? ~0ull : ((1ull << step) - 1));
    const __m512i m = kFull ? _mm512_loadu_si512(gp) : _mm512_maskz_loadu_epi8(lanes, gp);
    const uint8_t* signs = gp + q3_5_signs_offset(g);
    const __m512i k = kFull ? _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gp + q3_5_scales_offset(g))))
                            : _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << (g / 16)) - 1),
                                                                        gp + q3_5_scales_offset(g)));
    const __m512 ws = q3_5_scale_bits(k);
    __m512i mag[4];
    __mmask64 neg[4];
    for (int t = 0; t < 4; ++t) mag[t] = step_mags(m, t, T);
    for (int t = 0; t < 4; ++t) {
        if constexpr (kFull) {
            uint64_t bits;
            std::memcpy(&bits, signs + 8 * t, 8);
            neg[t] = _cvtu64_mask64(bits);
        } else {
            neg[t] = _cvtu64_mask64(load_bytes(signs + step / 8 * t, step / 8));
        }
    }
    if constexpr (kTile == 1) {
        // Two chains so consecutive vpdpbusd do not wait on each other.
        __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();
        for (int t = 0; t < 4; ++t) {
            const __m512i a = kFull ? _mm512_loadu_si512(qs + 64 * t) : _mm512_maskz_loadu_epi8(lanes, qs + step * t);
            const __m512i sa = _mm512_mask_sub_epi8(a, neg[t], _mm512_setzero_si512(), a);
            if (t & 1) i1 = _mm512_dpbusd_epi32(i1, mag[t], sa);
            else i0 = _mm512_dpbusd_epi32(i0, mag[t], sa);
        }
        acc[0] = _mm512_fmadd_ps(_mm512_mul_ps(ws, _mm512_set1_ps(da[0] * kQ3_5ScalePow)),
                                 _mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), acc[0]);
    } else {
        __m512i isum[kTile];
        for (int r = 0; r < kTile; ++r) isum[r] = _mm512_setzero_si512();
        for (int t = 0; t < 4; ++t)
            for (int r = 0; r < kTile; ++r) {
                const int8_t* ar = qs + r * n;
                const __m512i a = kFull ? _mm512_loadu_si512(ar + 64 * t) : _mm512_maskz_loadu_epi8(lanes, ar + step * t);
                const __m512i sa = _mm512_mask_sub_epi8(a, neg[t], _mm512_setzero_si512(), a);
                isum[r] = _mm512_dpbusd_epi32(isum[r], mag[t], sa);
            }
        for (int r = 0; r < kTile; ++r)
            acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(ws, _mm512_set1_ps(da[r] * kQ3_5ScalePow)), _mm512_cvtepi32_ps(isum[r]),
                                     acc[r]);
    }
}

// One weight row (n elements) against kTile activation rows; y[t * y_stride] = dot.
template <int kTile>
inline void tile_q3_5(const uint8_t* w, int64_t n, const int8_t* qs, const float* d, float* y, int64_t y_stride) {
    const int64_t nbs = n / kQ8ABlock;
    const MagTables T;
    __m512 acc[kTile];
    for (int t = 0; t < kTile; ++t) acc[t] = _mm512_setzero_ps();
    float da[kTile];
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group) {
        prefetch_weights(w, kQ3_5GroupBytes);
        for (int t = 0; t < kTile; ++t) da[t] = d[t * nbs + g0 / kQ8ABlock];
        q3_5_group<kTile, true>(w, kQ3_5Group, qs + g0, n, da, acc, T);
        w += kQ3_5GroupBytes;
    }
    if (g0 < n) {
        for (int t = 0; t < kTile; ++t) da[t] = d[t * nbs + g0 / kQ8ABlock];
        q3_5_group<kTile, false>(w, n - g0, qs + g0, n, da, acc, T);
    }
    for (int t = 0; t < kTile; ++t) y[t * y_stride] = _mm512_reduce_add_ps(acc[t]);
}

void gemm_q3_5_avx512(const void* w, int64_t n, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t m,
                      float* y, int64_t y_stride) {
    constexpr int kTile = 4;
    const auto* wb = static_cast<const uint8_t*>(w);
    const int64_t nb = n / kQ8ABlock;
    int64_t i = 0;
    for (; i + kTile <= m; i += kTile) tile_q3_5<kTile>(wb, n, qs + i * n, d + i * nb, y + i * y_stride, y_stride);
    for (; i < m; ++i) tile_q3_5<1>(wb, n, qs + i * n, d + i * nb, y + i * y_stride, y_stride);
}

// Two rows, group by group, each with dot_q3_5's operations (tile_q3_5<1>): with the rows far
// apart the core keeps two DRAM streams in flight.
void dot2_q3_5_avx512(const void* w0, const void* w1, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n,
                      float* y) {
    const auto* a = static_cast<const uint8_t*>(w0);
    const auto* b = static_cast<const uint8_t*>(w1);
    const MagTables T;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group) {
        prefetch_weights(a, kQ3_5GroupBytes);
        prefetch_weights(b, kQ3_5GroupBytes);
        const float da = d[g0 / kQ8ABlock];
        q3_5_group<1, true>(a, kQ3_5Group, qs + g0, n, &da, &acc0, T);
        q3_5_group<1, true>(b, kQ3_5Group, qs + g0, n, &da, &acc1, T);
        a += kQ3_5GroupBytes;
        b += kQ3_5GroupBytes;
    }
    if (g0 < n) {
        const float da = d[g0 / kQ8ABlock];
        q3_5_group<1, false>(a, n - g0, qs + g0, n, &da, &acc0, T);
        q3_5_group<1, false>(b, n - g0, qs + g0, n, &da, &acc1, T);
    }
    y[0] = _mm512_reduce_add_ps(acc0);
    y[1] = _mm512_reduce_add_ps(acc1);
}

float dot_q3_5_avx512(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    float y;
    tile_q3_5<1>(static_cast<const uint8_t*>(w), n, qs, d, &y, 1);
    return y;
}

// ---- q3.5 block GEMM: kR weight rows x all m activation rows ------------------------------------
// Per group, each of the kR weight rows is decoded once into signed bytes w (4 steps of 64; lanes
// past a tail group's step are zeroed) together with its lane correction 128 * sum(w) and its
// lane scales; then every activation row t runs 4 vpdpbusd per weight row (offset-binary
// activations x signed weights) and adds scale * da * (isum - correction) to a per-(row, t) lane
// accumulator kept in L1. Weight decode is paid once per group instead of once per tile of
// activation rows, and each activation load serves kR weight rows.
template <int kR, bool kFull>
inline void q3_5_rows_group(const uint8_t* const* gp, int64_t g, const uint8_t* au8, int64_t n, const float* d,
                            int64_t nbs, int64_t m, __m512* acc, const MagTables& T) {
    const int64_t step = kFull ? 64 : g / 4;
    const __mmask64 lanes = (kFull || step == 64) ? ~0ull : ((1ull << step) - 1);
    const __m512i k128 = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i w[kR][4], negc[kR];
    __m512 ws[kR];
    for (int r = 0; r < kR; ++r) {
        const uint8_t* p = gp[r];
        const __m512i mb = kFull ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(lanes, p);
        const uint8_t* signs = p + q3_5_signs_offset(g);
        const __m512i k = kFull ? _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + q3_5_scales_offset(g))))
                                : _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << (g / 16)) - 1),
                                                                            p + q3_5_scales_offset(g)));
        ws[r] = q3_5_scale_bits(k);
        __m512i c = _mm512_setzero_si512();
        for (int t = 0; t < 4; ++t) {
            const __m512i mag = step_mags(mb, t, T);
            uint64_t bits = 0;
            std::memcpy(&bits, signs + step / 8 * t, static_cast<size_t>(step / 8));
            __m512i v = _mm512_mask_sub_epi8(mag, _cvtu64_mask64(bits), _mm512_setzero_si512(), mag);
            if constexpr (!kFull) v = _mm512_maskz_mov_epi8(lanes, v);
            w[r][t] = v;
            c = _mm512_dpbusd_epi32(c, k128, v);
        }
        negc[r] = _mm512_sub_epi32(_mm512_setzero_si512(), c);
    }
    for (int64_t t = 0; t < m; ++t) {
        const uint8_t* at = au8 + t * n;
        __m512i a[4];
        for (int s = 0; s < 4; ++s) a[s] = kFull ? _mm512_loadu_si512(at + 64 * s) : _mm512_maskz_loadu_epi8(lanes, at + step * s);
        const __m512 da = _mm512_set1_ps(d[t * nbs] * kQ3_5ScalePow);
        for (int r = 0; r < kR; ++r) {
            __m512i i = negc[r];
            for (int s = 0; s < 4; ++s) i = _mm512_dpbusd_epi32(i, a[s], w[r][s]);
            // The same float operations, in the same order, as the decode kernel (q3_5_group), so
            // a row's result does not depend on whether it was computed in a batch.
            __m512* ac = acc + r * m + t;
            *ac = _mm512_fmadd_ps(_mm512_mul_ps(ws[r], da), _mm512_cvtepi32_ps(i), *ac);
        }
    }
}

template <int kR>
void q3_5_rows(const uint8_t* w, size_t row_bytes, int64_t n, const uint8_t* au8, const float* d, int64_t m, float* y,
               int64_t ldy) {
    thread_local std::vector<__m512> acc_buf;
    acc_buf.assign(static_cast<size_t>(kR * m), _mm512_setzero_ps());
    __m512* acc = acc_buf.data();
    const MagTables T;
    const int64_t nbs = n / kQ8ABlock;
    const uint8_t* gp[kR];
    for (int r = 0; r < kR; ++r) gp[r] = w + r * row_bytes;
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group) {
        for (int r = 0; r < kR; ++r) prefetch_weights(gp[r], kQ3_5GroupBytes);
        q3_5_rows_group<kR, true>(gp, kQ3_5Group, au8 + g0, n, d + g0 / kQ8ABlock, nbs, m, acc, T);
        for (int r = 0; r < kR; ++r) gp[r] += kQ3_5GroupBytes;
    }
    if (g0 < n) q3_5_rows_group<kR, false>(gp, n - g0, au8 + g0, n, d + g0 / kQ8ABlock, nbs, m, acc, T);
    for (int r = 0; r < kR; ++r)
        for (int64_t t = 0; t < m; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r * m + t]);
}

void gemm_rows_q3_5_avx512(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const uint8_t* au8,
                           const float* d, int64_t m, float* y, int64_t ldy) {
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) q3_5_rows<4>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
    for (; r + 2 <= nrows; r += 2) q3_5_rows<2>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
    for (; r < nrows; ++r) q3_5_rows<1>(w + r * row_bytes, row_bytes, n, au8, d, m, y + r, ldy);
}

// ---- q3.5 rotation (R x, quant/q3_5.h) -----------------------------------------------------------
// The reference's butterflies, a register of 16 floats at a time: for h >= 16 the pairs are whole
// registers; for h < 16 a lane is paired with lane ^ h of its own register (a permute), the lane
// with bit h clear takes a + b and the other a - b, with a = the lower element as in the
// reference. Same operations on the same operands, so the same bits.
template <int kH>
inline __m512 butterfly_in_lanes(__m512 v) {
    static_assert(kH == 1 || kH == 2 || kH == 4 || kH == 8);
    // Lane i's partner is i ^ kH; the lanes with bit kH set take the difference.
    constexpr __mmask16 kHi = kH == 1 ? 0xAAAA : kH == 2 ? 0xCCCC : kH == 4 ? 0xF0F0 : 0xFF00;
    const __m512i idx = _mm512_xor_si512(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(kH));
    const __m512 p = _mm512_permutexvar_ps(idx, v);         // the partner lane
    return _mm512_mask_sub_ps(_mm512_add_ps(v, p), kHi, p, v);  // lo: v + p, hi: p - v
}

// Sign flips of elements e0.. of a group (bits of kQ3_5Signs), as an xor of the sign bit.
inline __m512 flip_signs(__m512 v, int e0) {
    const auto bits = static_cast<__mmask16>(kQ3_5Signs[e0 >> 6] >> (e0 & 63));
    return _mm512_castsi512_ps(
        _mm512_mask_xor_epi32(_mm512_castps_si512(v), bits, _mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
}

// len = 32 or 256 values at x: signs, the Hadamard transform, the scale.
template <int kRegs>
inline void rotate_chunk(float* x, float scale) {
    __m512 v[kRegs];
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) v[r] = flip_signs(_mm512_loadu_ps(x + 16 * r), 16 * r);
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes<1>(v[r]);
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes<2>(v[r]);
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes<4>(v[r]);
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) v[r] = butterfly_in_lanes<8>(v[r]);
#pragma GCC unroll 4
    for (int hr = 1; hr < kRegs; hr <<= 1)
#pragma GCC unroll 16
        for (int j = 0; j < kRegs; ++j)
            if ((j & hr) == 0) {
                const __m512 a = v[j], b = v[j + hr];
                v[j] = _mm512_add_ps(a, b);
                v[j + hr] = _mm512_sub_ps(a, b);
            }
    const __m512 s = _mm512_set1_ps(scale);
#pragma GCC unroll 16
    for (int r = 0; r < kRegs; ++r) _mm512_storeu_ps(x + 16 * r, _mm512_mul_ps(v[r], s));
}

// Activations for q3.5 rows (already rotated): one scale per group, per-32 sums.
void quantize_acts_q3_5_avx512(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum) {
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = std::min<int64_t>(kQ3_5Group, n - g0);
        __m512 mx = _mm512_setzero_ps();
        for (int64_t i = g0; i < g0 + g; i += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
        const float dg = _mm512_reduce_max_ps(mx) / 127.0f;
        const __m512 mul = _mm512_set1_ps(dg != 0.0f ? 1.0f / dg : 0.0f);
        for (int64_t b = g0 / kQ8ABlock; b < (g0 + g) / kQ8ABlock; ++b) {
            const float* xb = x + b * kQ8ABlock;
            const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb), mul));  // nearest-even
            const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16), mul));
            sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQ8ABlock), _mm512_cvtsepi32_epi8(i0));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQ8ABlock + 16), _mm512_cvtsepi32_epi8(i1));
            d[b] = dg;
        }
        g0 += g;
    }
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

// ---- attention over a paged KV head (kernels.h: attn_scores / attn_values) -------------------
// Scores: a key block is (head_dim, 16), so one vector is one dimension of the block's 16 keys and
// q[d] a broadcast; up to kAttnGroup blocks run side by side for independent add chains. Values:
// out stays in registers (16 floats per vector, at most 8 vectors per pass) over all positions.
// Products and sums round separately (mul, then add), in the scalar reference's order.
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

constexpr int kAttnGroup = 8;

template <int kG, class T>
inline void scores_group(const float* q, const T* const* kb, int head_dim, __m512 div, float* att, int n_last) {
    __m512 acc[kG];
    for (int g = 0; g < kG; ++g) acc[g] = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; ++d) {
        const __m512 qd = _mm512_set1_ps(q[d]);
        for (int g = 0; g < kG; ++g) acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(qd, load16(kb[g] + d * kAttnBlock)));
    }
    for (int g = 0; g + 1 < kG; ++g) _mm512_storeu_ps(att + g * kAttnBlock, _mm512_div_ps(acc[g], div));
    _mm512_mask_storeu_ps(att + (kG - 1) * kAttnBlock, static_cast<__mmask16>((1u << n_last) - 1), _mm512_div_ps(acc[kG - 1], div));
}

template <class T>
void attn_scores_avx512(const float* q, const T* kbase, const int32_t* blocks, size_t block_stride, int n, int head_dim,
                        float div, float* att) {
    const __m512 vdiv = _mm512_set1_ps(div);
    const int nb = (n + kAttnBlock - 1) / kAttnBlock;
    for (int b0 = 0; b0 < nb; b0 += kAttnGroup) {
        const int g = std::min(kAttnGroup, nb - b0);
        const T* kb[kAttnGroup];
        for (int j = 0; j < g; ++j) kb[j] = kbase + static_cast<size_t>(blocks[b0 + j]) * block_stride;
        // positions in the group's last block
        const int n_last = std::min(kAttnBlock, n - (b0 + g - 1) * kAttnBlock);
        float* a = att + b0 * kAttnBlock;
        with_count<kAttnGroup>(g, [&](auto G) { scores_group<G()>(q, kb, head_dim, vdiv, a, n_last); });
    }
}

// out[c0, c0 + 16 kV) (the last vector masked to `tail`) over positions 0..n-1.
template <int kV, class T>
inline void values_pass(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n, int head_dim,
                        int c0, __mmask16 tail) {
    __m512 acc[kV];
    for (int v = 0; v < kV; ++v) acc[v] = _mm512_setzero_ps();
    for (int t = 0; t < n; ++t) {
        const T* row = vbase + static_cast<size_t>(blocks[t / kAttnBlock]) * block_stride +
                       static_cast<size_t>(t % kAttnBlock) * static_cast<size_t>(head_dim) + c0;
        const __m512 a = _mm512_set1_ps(att[t]);
        for (int v = 0; v + 1 < kV; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_mul_ps(a, load16(row + 16 * v)));
        acc[kV - 1] = _mm512_add_ps(acc[kV - 1], _mm512_mul_ps(a, load16(row + 16 * (kV - 1), tail)));
    }
    for (int v = 0; v + 1 < kV; ++v) _mm512_storeu_ps(out + c0 + 16 * v, acc[v]);
    _mm512_mask_storeu_ps(out + c0 + 16 * (kV - 1), tail, acc[kV - 1]);
}

template <class T>
void attn_values_avx512(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n, int head_dim) {
    for (int c0 = 0; c0 < head_dim; c0 += 128) {
        const int w = std::min(128, head_dim - c0);
        const int nv = (w + 15) / 16;
        const int rem = w - 16 * (nv - 1);
        const auto tail = static_cast<__mmask16>(rem == 16 ? 0xFFFF : (1u << rem) - 1);
        with_count<8>(nv, [&](auto V) { values_pass<V()>(out, att, vbase, blocks, block_stride, n, head_dim, c0, tail); });
    }
}

void to_f16_avx512(const float* x, uint16_t* h, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) h[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace

void rotate_q3_5_avx512(float* x, int64_t n) {
    int64_t g0 = 0;
    for (; g0 + kQ3_5Group <= n; g0 += kQ3_5Group) rotate_chunk<kQ3_5Group / 16>(x + g0, 0.0625f);
    const float s32 = 1.0f / std::sqrt(32.0f);
    for (; g0 < n; g0 += 32) rotate_chunk<2>(x + g0, s32);
}

void install_avx512(CpuKernels& k) {
    k.attn_scores_f32 = attn_scores_avx512<float>;
    k.attn_values_f32 = attn_values_avx512<float>;
    k.attn_scores_f16 = attn_scores_avx512<uint16_t>;
    k.attn_values_f16 = attn_values_avx512<uint16_t>;
    k.to_f16 = to_f16_avx512;
    k.quantize_acts = quantize_acts_avx512;
    k.dot_q8_0 = dot_avx512<FmtQ8_0>;
    k.dot_q4_0 = dot_avx512<FmtQ4_0>;
    k.dot_q4_1 = dot_avx512<FmtQ4_1>;
    k.gemm_q8_0 = gemm_avx512<FmtQ8_0>;
    k.gemm_q4_0 = gemm_avx512<FmtQ4_0>;
    k.gemm_q4_1 = gemm_avx512<FmtQ4_1>;
    k.dot_q3_5 = dot_q3_5_avx512;
    k.dot2_q3_5 = dot2_q3_5_avx512;
    k.gemm_q3_5 = gemm_q3_5_avx512;
    k.gemm_rows_q3_5 = gemm_rows_q3_5_avx512;
    k.quantize_acts_q3_5 = quantize_acts_q3_5_avx512;
    k.rotate_q3_5 = rotate_q3_5_avx512;
}

}  // namespace pl
