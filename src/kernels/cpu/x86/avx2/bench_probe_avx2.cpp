// SPDX-License-Identifier: MIT
// AVX2 machine-probe loops for `parallama bench` (see bench/probe_kernels.h): a 256-bit streaming
// read, 12 independent FMA chains, and 12 int8 chains of vpmaddubsw + vpmaddwd + vpaddd (what the
// AVX2 dot kernels use; 64 byte products per step).
#include "bench/probe_kernels.h"

#include <immintrin.h>

namespace pl::bench {
namespace {

constexpr int kChains = 12;

uint64_t read_avx2(const void* p, size_t n) {
    const auto* b = static_cast<const __m256i*>(p);
    const size_t nv = n / 32;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < nv; i += 4) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(b + i));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(b + i + 1));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(b + i + 2));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(b + i + 3));
    }
    const __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), x);
    return lanes[0] | lanes[1] | lanes[2] | lanes[3];
}

float fma_avx2(int64_t iters) {
    __m256 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(0.001f * static_cast<float>(c));
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
    alignas(32) float lanes[8];
    __m256 s = acc[0];
    for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
    _mm256_store_ps(lanes, s);
    float r = 0;
    for (float v : lanes) r += v;
    return r;
}

float dot_avx2(int64_t iters) {
    __m256i acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_epi32(c);
    const __m256i s = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    // The accumulator doubles as the unsigned input, so the products cannot be hoisted.
    for (int64_t i = 0; i < iters; ++i)
        for (int c = 0; c < kChains; ++c)
            acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(acc[c], s), ones));
    __m256i t = acc[0];
    for (int c = 1; c < kChains; ++c) t = _mm256_add_epi32(t, acc[c]);
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), t);
    int64_t r = 0;
    for (int32_t v : lanes) r += v;
    return static_cast<float>(r);
}

}  // namespace

void install_probe_avx2(ProbeKernels& k) {
    k.read = read_avx2;
    k.fma_f32 = fma_avx2;
    k.fma_flops_per_iter = kChains * 8 * 2;
    k.dot_i8 = dot_avx2;
    k.dot_ops_per_iter = kChains * 32 * 2;
    k.dot_instr = "vpmaddubsw+vpmaddwd ymm";
}

}  // namespace pl::bench
