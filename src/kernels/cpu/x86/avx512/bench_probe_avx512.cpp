// SPDX-License-Identifier: MIT
// AVX-512 machine-probe loops for `parallama bench` (see bench/probe_kernels.h): a 512-bit
// streaming read, 12 independent FMA chains (2 FMA pipes x 4-cycle latency, with headroom) and
// 12 independent vpdpbusd chains.
#include "bench/probe_kernels.h"

#include <immintrin.h>

namespace pl::bench {
namespace {

constexpr int kChains = 12;

uint64_t read_avx512(const void* p, size_t n) {
    const auto* b = static_cast<const __m512i*>(p);
    const size_t nv = n / 64;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < nv; i += 4) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512(b + i));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512(b + i + 1));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512(b + i + 2));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512(b + i + 3));
    }
    const __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    alignas(64) uint64_t lanes[8];  // (not _mm512_reduce_*: gcc 12 warns inside them)
    _mm512_store_si512(lanes, x);
    uint64_t r = 0;
    for (uint64_t l : lanes) r |= l;
    return r;
}

float fma_avx512(int64_t iters) {
    __m512 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
    __m512 s = acc[0];
    for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    float r = 0;
    for (float l : lanes) r += l;
    return r;
}

float dot_avx512(int64_t iters) {
    __m512i acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    for (int64_t i = 0; i < iters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], u, s);
    __m512i t = acc[0];
    for (int c = 1; c < kChains; ++c) t = _mm512_add_epi32(t, acc[c]);
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, t);
    int64_t r = 0;
    for (int32_t l : lanes) r += l;
    return static_cast<float>(r);
}

}  // namespace

void install_probe_avx512(ProbeKernels& k) {
    k.read = read_avx512;
    k.fma_f32 = fma_avx512;
    k.fma_flops_per_iter = kChains * 16 * 2;
    k.dot_i8 = dot_avx512;
    k.dot_ops_per_iter = kChains * 64 * 2;
    k.dot_instr = "vpdpbusd zmm";
}

}  // namespace pl::bench
