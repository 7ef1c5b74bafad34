// SPDX-License-Identifier: MIT
// Research microbenchmark (not part of the build): "folded-scale" numerics for q3.5.
//
// Per (weight row, token, group g): S_g = sum_e w'_e * a_e, an EXACT int32, with
//   w'_e = (+-)MAG[mag_e] * mult_L,  mult_L = M_L << (E_L - E_g + 3) <= 248,
//   E4M4 code k: E = max(k >> 4, 1), M = k >= 16 ? 16 + (k & 15) : k, d(k) = M * 2^(E - 23),
//   E_g = max(max_L k_L >> 4, 1) (= max E_L over nonzero sub-blocks; 1 for an all-zero group),
// valid when every nonzero sub-block has E_L >= E_g - 3 (enforced here on the quantizer's output).
// Then y = fold over g: acc = fma(float(S_g), 2^(E_g - 26) * d_a(g), acc), the same float ops in
// the same order in every kernel, so GEMV, AVX-512 GEMM and AMX GEMM are bit-identical.
//
// Kernels here: scalar reference, AMX block GEMM (16 weight rows x 16 tokens, K = 64 per tile,
// w' = 256 * hi + lo, TDPBSSD(hi) + TDPBUSD(lo)), AVX-512 GEMV (16 rows at once, vpmulld by mult,
// transpose-reduce). Compared against the project's kernels (libparallama.a).
#include "kernels/cpu/kernels.h"
#include "quant/q3_5.h"

#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace pl;

namespace {

constexpr int kG = 256, kGB = 112, kScOff = 96, kSgOff = 64;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class T>
T* alloc_big(size_t count) {
    constexpr size_t kHuge = size_t{1} << 21;
    size_t bytes = (count * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, bytes);
    madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
    return static_cast<T*>(p);
}

// ---------------------------------------------------------------- folded-scale parameters
inline int e4m4_E(int k) { return std::max(k >> 4, 1); }
inline int e4m4_M(int k) { return k >= 16 ? 16 + (k & 15) : k; }

// Returns false when the group violates the constraint.
bool fold_params(const uint8_t* gp, int* mult, int& Eg) {
    const uint8_t* k = gp + kScOff;
    int kmax = 0;
    for (int L = 0; L < 16; ++L) kmax = std::max<int>(kmax, k[L]);
    Eg = std::max(kmax >> 4, 1);
    bool ok = true;
    for (int L = 0; L < 16; ++L) {
        if (k[L] == 0) { mult[L] = 0; continue; }
        const int sh = e4m4_E(k[L]) - Eg + 3;
        if (sh < 0) { ok = false; mult[L] = 0; continue; }
        mult[L] = e4m4_M(k[L]) << sh;
    }
    return ok;
}
inline float cg_of(int Eg) { return std::ldexp(1.0f, Eg - 26); }

// Raises violating codes to the smallest allowed exponent (M = 16, E = E_g - 3); counts.
void enforce(uint8_t* row, int64_t n, int64_t& groups_bad, int64_t& subs_bad, int64_t& subs_zero) {
    for (int64_t g = 0; g < n / kG; ++g) {
        uint8_t* k = row + g * kGB + kScOff;
        int kmax = 0;
        for (int L = 0; L < 16; ++L) kmax = std::max<int>(kmax, k[L]);
        const int Eg = std::max(kmax >> 4, 1);
        bool bad = false;
        for (int L = 0; L < 16; ++L) {
            if (k[L] == 0) { ++subs_zero; continue; }
            if (e4m4_E(k[L]) < Eg - 3) { ++subs_bad; bad = true; k[L] = static_cast<uint8_t>((Eg - 3) << 4); }
        }
        groups_bad += bad;
    }
}

// Check of the formats.md decode: d(k) == M * 2^(E - 23) for all k.
bool check_e4m4() {
    for (int k = 0; k < 256; ++k)
        if (q3_5_scale(static_cast<uint8_t>(k)) != std::ldexp(static_cast<float>(e4m4_M(k)), e4m4_E(k) - 23)) return false;
    return true;
}

// ---------------------------------------------------------------- scalar reference
int64_t g_max_abs_S = 0;
void ref_fold(const uint8_t* w, size_t rb, int64_t nrows, int64_t n, const int8_t* qs, const float* d, int64_t m, float* y,
              int64_t ldy) {
    const int64_t groups = n / kG, nbs = n / 32;
    for (int64_t r = 0; r < nrows; ++r)
        for (int64_t t = 0; t < m; ++t) {
            float acc = 0.0f;
            for (int64_t g = 0; g < groups; ++g) {
                const uint8_t* gp = w + r * rb + g * kGB;
                int mult[16], Eg;
                fold_params(gp, mult, Eg);
                const int8_t* a = qs + t * n + g * kG;
                int64_t S = 0;
                for (int e = 0; e < kG; ++e) {
                    const int i = e & 63, st = e >> 6;
                    const int mag = (gp[i] >> (2 * st)) & 3, sg = (gp[kSgOff + e / 8] >> (e % 8)) & 1;
                    const int wp = (sg ? -1 : 1) * kQ3_5Mag[mag] * mult[i / 4];
                    S += static_cast<int64_t>(wp) * a[e];
                }
                g_max_abs_S = std::max<int64_t>(g_max_abs_S, S < 0 ? -S : S);
                acc = std::fma(static_cast<float>(static_cast<int32_t>(S)), cg_of(Eg) * d[t * nbs + g * 8], acc);
            }
            y[t * ldy + r] = acc;
        }
}

// ---------------------------------------------------------------- shared SIMD pieces
struct Consts {
    __m512i T0, T1;          // mult table: idx = sh * 32 + M -> (M << sh) & 255
    __m512i c0F, c1, c3, c16;
    __m512i gather_e, gather_e2;
    __m512i idxw0, idxw1, magw, even, odd, Lc, Lc64, c3b;
    Consts() {
        alignas(64) uint8_t t[128];
        for (int i = 0; i < 128; ++i) t[i] = static_cast<uint8_t>(((i & 31) << (i >> 5)) & 255);
        T0 = _mm512_load_si512(t);
        T1 = _mm512_load_si512(t + 64);
        c0F = _mm512_set1_epi8(0x0F);
        c1 = _mm512_set1_epi8(1);
        c3 = _mm512_set1_epi8(3);
        c16 = _mm512_set1_epi8(16);
        alignas(64) uint8_t ge[64] = {}, ge2[64] = {};
        for (int i = 0; i < 8; ++i) ge[i] = static_cast<uint8_t>(16 * i);        // bytes 0,16,..,112 of (a,b)
        for (int i = 0; i < 16; ++i) ge2[i] = static_cast<uint8_t>(i < 8 ? i : 64 + i - 8);
        gather_e = _mm512_load_si512(ge);
        gather_e2 = _mm512_load_si512(ge2);
        alignas(64) uint16_t iw0[32], iw1[32], mw[32];
        for (int e = 0; e < 32; ++e) {
            iw0[e] = static_cast<uint16_t>(e >> 2);
            iw1[e] = static_cast<uint16_t>((e + 32) >> 2);
            mw[e] = static_cast<uint16_t>(kQ3_5Mag[e & 3]);
        }
        idxw0 = _mm512_load_si512(iw0);
        idxw1 = _mm512_load_si512(iw1);
        magw = _mm512_load_si512(mw);
        alignas(64) uint8_t ev[64], od[64], lc[64], lc64[64];
        for (int e = 0; e < 64; ++e) {
            ev[e] = static_cast<uint8_t>(2 * e);
            od[e] = static_cast<uint8_t>(2 * e + 1);
            lc[e] = static_cast<uint8_t>(e & 0x3C);
            lc64[e] = static_cast<uint8_t>((e & 0x3C) | 64);
        }
        even = _mm512_load_si512(ev);
        odd = _mm512_load_si512(od);
        Lc = _mm512_load_si512(lc);
        Lc64 = _mm512_load_si512(lc64);
        c3b = _mm512_set1_epi8(3);
    }
};

// For 16 rows' group (p = first row's group, rows rb apart): mult bytes (16 rows x 16 sub-blocks,
// row r at mult + 16 r) and the 16 rows' E_g as int32 lanes.
inline __m512i scales16(const uint8_t* p, size_t rb, uint8_t* mult, const Consts& c) {
    __m512i egz[4];
    for (int q = 0; q < 4; ++q) {
        const uint8_t* s = p + 4 * q * rb + kScOff;
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + rb)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * rb)), 2);
        z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 3 * rb)), 3);
        __m512i t = _mm512_max_epu8(z, _mm512_bsrli_epi128(z, 8));
        t = _mm512_max_epu8(t, _mm512_bsrli_epi128(t, 4));
        t = _mm512_max_epu8(t, _mm512_bsrli_epi128(t, 2));
        t = _mm512_max_epu8(t, _mm512_bsrli_epi128(t, 1));
        t = _mm512_shuffle_epi8(t, _mm512_setzero_si512());
        const __m512i Eg = _mm512_max_epu8(_mm512_and_si512(_mm512_srli_epi16(t, 4), c.c0F), c.c1);
        const __m512i EL = _mm512_max_epu8(_mm512_and_si512(_mm512_srli_epi16(z, 4), c.c0F), c.c1);
        const __m512i M = _mm512_ternarylogic_epi32(z, c.c0F, _mm512_min_epu8(z, c.c16), 0xEA);
        const __m512i sh = _mm512_max_epi8(_mm512_sub_epi8(_mm512_add_epi8(EL, c.c3), Eg), _mm512_setzero_si512());
        const __m512i idx = _mm512_or_si512(_mm512_slli_epi16(sh, 5), M);
        _mm512_store_si512(mult + 64 * q, _mm512_permutex2var_epi8(c.T0, idx, c.T1));
        egz[q] = Eg;
    }
    const __m512i a = _mm512_permutex2var_epi8(egz[0], c.gather_e, egz[1]);
    const __m512i b = _mm512_permutex2var_epi8(egz[2], c.gather_e, egz[3]);
    return _mm512_cvtepu8_epi32(_mm512_castsi512_si128(_mm512_permutex2var_epi8(a, c.gather_e2, b)));
}
// 2^(E_g - 26) per lane.
inline __m512 cg_vec(__m512i eg) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(eg, _mm512_set1_epi32(101)), 23)); }

// ---------------------------------------------------------------- AMX folded GEMM
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

bool amx_ok() {
    static const bool ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    return ok;
}

struct alignas(64) AmxScratch {
    uint8_t A[3][2][4][16 * 64];  // [buffer = group % 3][hi, lo][step][row * 64]
    uint8_t mult[2][256];
    alignas(64) int32_t C[2][4][256];  // [job parity][tile]
    float cg[128][16];                    // per group of the row block (n <= 32768)
};

// Decodes rows [r_begin, r_end) of group g (16-row block at p, rows rb apart) into buffer b.
inline void amx_decode_rows(const uint8_t* p, size_t rb, int r_begin, int r_end, AmxScratch& sc, int b, const Consts& c) {
    for (int r = r_begin; r < r_end; ++r) {
        const uint8_t* gp = p + r * rb;
        _mm_prefetch(reinterpret_cast<const char*>(gp) + 8 * kGB, _MM_HINT_T2);  // weight stream, 8 groups ahead
        _mm_prefetch(reinterpret_cast<const char*>(gp) + 8 * kGB + 64, _MM_HINT_T2);
        const __m512i mz = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(sc.mult[0] + 16 * r))));
        const __m512i P0 = _mm512_mullo_epi16(_mm512_permutexvar_epi16(c.idxw0, mz), c.magw);
        const __m512i P1 = _mm512_mullo_epi16(_mm512_permutexvar_epi16(c.idxw1, mz), c.magw);
        const __m512i N0 = _mm512_sub_epi16(_mm512_setzero_si512(), P0), N1 = _mm512_sub_epi16(_mm512_setzero_si512(), P1);
        const __m512i loP = _mm512_permutex2var_epi8(P0, c.even, P1), hiP = _mm512_permutex2var_epi8(P0, c.odd, P1);
        const __m512i loN = _mm512_permutex2var_epi8(N0, c.even, N1), hiN = _mm512_permutex2var_epi8(N0, c.odd, N1);
        const __m512i mb = _mm512_loadu_si512(gp);
        for (int s = 0; s < 4; ++s) {
            const __m512i x = s == 0 ? mb : _mm512_srli_epi16(mb, 2 * s);
            uint64_t bits;
            std::memcpy(&bits, gp + kSgOff + 8 * s, 8);
            const __m512i base = _mm512_mask_blend_epi8(_cvtu64_mask64(bits), c.Lc, c.Lc64);
            const __m512i idx = _mm512_ternarylogic_epi32(x, c.c3b, base, 0xEA);
            _mm512_store_si512(sc.A[b][0][s] + 64 * r, _mm512_permutex2var_epi8(hiP, idx, hiN));
            _mm512_store_si512(sc.A[b][1][s] + 64 * r, _mm512_permutex2var_epi8(loP, idx, loN));
        }
    }
}
inline void amx_decode_scales(const uint8_t* p, size_t rb, AmxScratch& sc, int b, int64_t g, const Consts& c) {
    _mm512_store_ps(sc.cg[g], cg_vec(scales16(p, rb, sc.mult[b], c)));
}

// Tiles: set 0 = tmm0 (hi), tmm1 (lo); set 1 = tmm2, tmm3 (C of one (group, token block) job,
// alternating); tmm4/5 = A hi/lo; tmm6 = B. B here: our own packing (pack_fold): per (group,
// token block, step) one contiguous 1 KiB tile, row k4 = 16 tokens x 4 quants at 64 s + 4 k4.
inline void amx_zero(int set) {
    if (set == 0) {
        _tile_zero(0);
        _tile_zero(1);
    } else {
        _tile_zero(2);
        _tile_zero(3);
    }
}
inline void amx_step(const AmxScratch& sc, int b, int s, const uint8_t* B, int set) {
    _tile_loadd(4, sc.A[b][0][s], 64);
    _tile_loadd(5, sc.A[b][1][s], 64);
    _tile_loadd(6, B + s * 1024, 64);
    if (set == 0) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbusd(1, 5, 6);
    } else {
        _tile_dpbssd(2, 4, 6);
        _tile_dpbusd(3, 5, 6);
    }
}
inline void amx_store(int32_t (*C)[256], int set) {
    if (set == 0) {
        _tile_stored(0, C[0], 64);
        _tile_stored(1, C[1], 64);
    } else {
        _tile_stored(2, C[2], 64);
        _tile_stored(3, C[3], 64);
    }
}
inline void amx_update(__m512* acc, const int32_t* chi, const int32_t* clo, const float* cg, const __m512 da) {
    for (int r = 0; r < 16; ++r) {
        const __m512i S = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(chi + 16 * r), 8), _mm512_load_si512(clo + 16 * r));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S), _mm512_mul_ps(da, _mm512_set1_ps(cg[r])), acc[r]);
    }
}

// Same contract as gemm_rows_q3_5_tiles (packed from pack_acts_q3_5_tiles, ldp words per line),
// nrows % 16 == 0, m % 16 == 0 (research code).
// mode: 0 = full, 1 = tile work only (decode once per row block, no float update), 2 = decode only,
// 3 = tiles + float update (no decode), 4 = tiles + decode (no update).
void gemm_fold_amx(const uint8_t* w, size_t rb, int64_t nrows, int64_t n, const uint8_t* packed_fold, const float* d,
                   int64_t m, float* y, int64_t ldy, int mode = 0) {
    static const Consts c;
    thread_local AmxScratch sc;
    thread_local std::vector<__m512> acc_buf, da_buf;
    const int64_t groups = n / kG, nbs = n / 32, tbs = m / 16;
    acc_buf.resize(static_cast<size_t>(16 * tbs));
    da_buf.resize(static_cast<size_t>(groups * tbs));
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t tb = 0; tb < tbs; ++tb) {
            alignas(64) float v[16];
            for (int t = 0; t < 16; ++t) v[t] = d[(tb * 16 + t) * nbs + g * 8];
            da_buf[g * tbs + tb] = _mm512_load_ps(v);
        }
    TileConfig cfg;
    for (int i = 0; i < 8; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    for (int64_t r0 = 0; r0 < nrows; r0 += 16) {
        const uint8_t* wb = w + r0 * rb;
        __m512* acc = acc_buf.data();
        for (int64_t i = 0; i < 16 * tbs; ++i) acc[i] = _mm512_setzero_ps();
        if (mode == 2) {
            for (int64_t g = 0; g < groups; ++g) {
                amx_decode_scales(wb + g * kGB, rb, sc, 0, g, c);
                amx_decode_rows(wb + g * kGB, rb, 0, 16, sc, static_cast<int>(g % 3), c);
            }
            continue;
        }
        const bool upd = mode == 0 || mode == 3;
        // Jobs j = (group g, token block tb) in order; job j's TDPs go to tile set j & 1.
        // AMX-vector data goes through memory, and a load of data just stored (tile store -> zmm
        // load, or zmm store -> tile load) waits for the store to commit, i.e. for everything
        // older, the TDPs included, to retire. So: set j - 1 is stored after job j's TDPs are
        // issued, its float update runs one job later still, and the weight decode runs two
        // groups ahead (three A buffers).
        auto store = [&](int64_t j) { amx_store(sc.C[j & 1], static_cast<int>(j & 1)); };
        auto update = [&](int64_t j) {
            if (!upd) return;
            const int set = static_cast<int>(j & 1);
            const int64_t g = j / tbs, tb = j % tbs;
            amx_update(acc + tb * 16, sc.C[set][set * 2], sc.C[set][set * 2 + 1], sc.cg[g], da_buf[g * tbs + tb]);
        };
        for (int64_t g = 0; g < std::min<int64_t>(2, groups); ++g) {
            amx_decode_scales(wb + g * kGB, rb, sc, 0, g, c);
            amx_decode_rows(wb + g * kGB, rb, 0, 16, sc, static_cast<int>(g), c);
        }
        const int chunks = static_cast<int>(4 * tbs);
        const int64_t jobs = groups * tbs;
        for (int64_t g = 0; g < groups; ++g) {
            const int b = static_cast<int>(g % 3), bn = static_cast<int>((g + 2) % 3);
            const bool ahead = g + 2 < groups && (mode == 0 || mode == 4);
            const uint8_t* gn = wb + (g + 2) * kGB;
            if (ahead) amx_decode_scales(gn, rb, sc, 0, g + 2, c);
            const uint8_t* Bg = packed_fold + g * tbs * 4096;
            for (int64_t tb = 0; tb < tbs; ++tb) {
                const int64_t j = g * tbs + tb;
                const int set = static_cast<int>(j & 1);
                amx_zero(set);
                for (int s = 0; s < 4; ++s) {
                    amx_step(sc, b, s, Bg + tb * 4096, set);
                    if (ahead) {  // the decode of group g + 2, interleaved with the tile instructions
                        const int ch = static_cast<int>(4 * tb + s);
                        amx_decode_rows(gn, rb, 16 * ch / chunks, 16 * (ch + 1) / chunks, sc, bn, c);
                    }
                }
                if (j >= 2) update(j - 2);
                if (j >= 1) store(j - 1);
            }
        }
        store(jobs - 1);
        if (jobs >= 2) update(jobs - 2);
        update(jobs - 1);
        if (mode != 0 && mode != 3) continue;
        for (int64_t tb = 0; tb < tbs; ++tb)
            for (int r = 0; r < 16; ++r) {
                alignas(64) float out[16];
                _mm512_store_ps(out, acc[tb * 16 + r]);
                for (int t = 0; t < 16; ++t) y[(tb * 16 + t) * ldy + r0 + r] = out[t];
            }
    }
    _tile_release();
}

// Activations (m tokens, m % 16 == 0) -> tiles: byte (((g * tbs + tb) * 4 + s) * 16 + k4) * 64 + 4 t + j
// = quant of token 16 tb + t at 256 g + 64 s + 4 k4 + j.
void pack_fold(const int8_t* qs, int64_t n, int64_t m, uint8_t* out) {
    const int64_t tbs = m / 16;
    for (int64_t tok = 0; tok < m; ++tok)
        for (int64_t e = 0; e < n; ++e) {
            const int64_t g = e / 256, s = (e / 64) % 4, k4 = (e / 4) % 16, j = e % 4, tb = tok / 16, t = tok % 16;
            out[(((g * tbs + tb) * 4 + s) * 16 + k4) * 64 + 4 * t + j] = static_cast<uint8_t>(qs[tok * n + e]);
        }
}

// Calibration: ns per TDPBSSD (4 independent accumulators, operands in tiles) and per 1 KiB tile
// load from L1.
void tile_calibration(double& ns_tdp, double& ns_load) {
    TileConfig cfg;
    for (int i = 0; i < 8; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    alignas(64) static uint8_t buf[4096];
    _tile_loadconfig(&cfg);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const int iters = 20000;
    double best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
        const double t0 = now_s();
        for (int i = 0; i < iters; ++i) {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbusd(1, 5, 6);
            _tile_dpbssd(2, 4, 6);
            _tile_dpbusd(3, 5, 6);
        }
        best = std::min(best, now_s() - t0);
    }
    ns_tdp = best * 1e9 / (4.0 * iters);
    best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
        const double t0 = now_s();
        for (int i = 0; i < iters; ++i) {
            _tile_loadd(4, buf, 64);
            _tile_loadd(5, buf + 1024, 64);
            _tile_loadd(6, buf + 2048, 64);
            _tile_loadd(7, buf + 3072, 64);
        }
        best = std::min(best, now_s() - t0);
    }
    ns_load = best * 1e9 / (4.0 * iters);
    _tile_release();
}

// ---------------------------------------------------------------- AVX-512 folded GEMV
inline __m512i reduce16(__m512i* v) {
    __m512i s[8], t[4], u[2];
    for (int i = 0; i < 8; ++i)
        s[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; ++i)
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(s[2 * i], s[2 * i + 1]), _mm512_unpackhi_epi64(s[2 * i], s[2 * i + 1]));
    // t[i] 128-bit chunk j: rows 4i..4i+3 (partial sums of chunk j)
    for (int i = 0; i < 2; ++i)
        u[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(t[2 * i], t[2 * i + 1], 0x88), _mm512_shuffle_i32x4(t[2 * i], t[2 * i + 1], 0xDD));
    // u[i] chunks: [t2i c0+c1, t2i c2+c3, t2i+1 c0+c1, t2i+1 c2+c3]
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88), _mm512_shuffle_i32x4(u[0], u[1], 0xDD));
}

inline __m512i mag_lut() {
    const uint32_t m = static_cast<uint32_t>(kQ3_5Mag[0]) | static_cast<uint32_t>(kQ3_5Mag[1]) << 8 |
                       static_cast<uint32_t>(kQ3_5Mag[2]) << 16 | static_cast<uint32_t>(kQ3_5Mag[3]) << 24;
    return _mm512_set1_epi32(static_cast<int>(m));
}

constexpr int kPf = 2048;  // per-row prefetch distance (16 row streams)
void gemv_fold(const uint8_t* w, size_t rb, int64_t r_begin, int64_t r_end, int64_t n, const int8_t* qs, const float* d,
               float* y) {
    static const Consts c;
    const __m512i lut = mag_lut();
    const int64_t groups = n / kG;
    alignas(64) uint8_t mult[256];
    for (int64_t r0 = r_begin; r0 < r_end; r0 += 16) {
        const uint8_t* wb = w + r0 * rb;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t g = 0; g < groups; ++g) {
            const uint8_t* p = wb + g * kGB;
            const __m512 cg = cg_vec(scales16(p, rb, mult, c));
            __m512i a[4];
            for (int s = 0; s < 4; ++s) a[s] = _mm512_loadu_si512(qs + g * kG + 64 * s);
            __m512i v[16];
            for (int r = 0; r < 16; ++r) {
                const uint8_t* gp = p + r * rb;
                _mm_prefetch(reinterpret_cast<const char*>(gp) + kPf, _MM_HINT_T2);
                _mm_prefetch(reinterpret_cast<const char*>(gp) + kPf + 64, _MM_HINT_T2);
                const __m512i mb = _mm512_loadu_si512(gp);
                __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();
                for (int s = 0; s < 4; ++s) {
                    const __m512i mag = _mm512_permutexvar_epi8(s == 0 ? mb : _mm512_srli_epi16(mb, 2 * s), lut);
                    uint64_t bits;
                    std::memcpy(&bits, gp + kSgOff + 8 * s, 8);
                    const __m512i sa = _mm512_mask_sub_epi8(a[s], _cvtu64_mask64(bits), _mm512_setzero_si512(), a[s]);
                    if (s & 1) i1 = _mm512_dpbusd_epi32(i1, mag, sa);
                    else i0 = _mm512_dpbusd_epi32(i0, mag, sa);
                }
                const __m512i mu = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(mult + 16 * r)));
                v[r] = _mm512_mullo_epi32(_mm512_add_epi32(i0, i1), mu);
            }
            const __m512i S = reduce16(v);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S), _mm512_mul_ps(cg, _mm512_set1_ps(d[g * 8])), acc);
        }
        _mm512_storeu_ps(y + r0, acc);
    }
}

// ---------------------------------------------------------------- data
struct Mat {
    int64_t rows = 0, n = 0;
    size_t rb = 0;
    uint8_t* w = nullptr;
};

void gaussian_row(float* x, int64_t n, std::mt19937_64& rng, bool student3) {
    std::normal_distribution<float> N(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
        float z = N(rng);
        if (student3) {
            float a = N(rng), b = N(rng), cc = N(rng);
            z = z / std::sqrt((a * a + b * b + cc * cc) / 3.0f);
        }
        x[i] = 0.02f * z;
    }
}

Mat make_mat(int64_t rows, int64_t n, uint64_t seed, bool student3, int64_t* gbad, int64_t* sbad, int64_t* szero) {
    Mat M;
    M.rows = rows;
    M.n = n;
    M.rb = static_cast<size_t>(n / kG * kGB);
    M.w = alloc_big<uint8_t>(M.rb * rows + 4096);
    int64_t gb = 0, sb = 0, sz = 0;
#pragma omp parallel reduction(+ : gb, sb, sz)
    {
        std::vector<float> x(n);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            std::mt19937_64 rng(seed * 1000003 + r);
            gaussian_row(x.data(), n, rng, student3);
            quantize_row_q3_5(x.data(), M.w + r * M.rb, n);
            enforce(M.w + r * M.rb, n, gb, sb, sz);
        }
    }
    if (gbad) *gbad = gb;
    if (sbad) *sbad = sb;
    if (szero) *szero = sz;
    return M;
}

// Bigger matrices: rows replicated from a quantized pool (only the bytes' volume matters).
Mat make_big(int64_t rows, int64_t n, const Mat& pool) {
    Mat M;
    M.rows = rows;
    M.n = n;
    M.rb = static_cast<size_t>(n / kG * kGB);
    M.w = alloc_big<uint8_t>(M.rb * rows + 4096);
    const size_t prb = pool.rb;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
        for (size_t off = 0; off < M.rb; off += prb) {
            const size_t len = std::min(prb, M.rb - off);
            std::memcpy(M.w + r * M.rb + off, pool.w + ((r * 7 + off / prb) % pool.rows) * prb, len);
        }
    return M;
}

struct Acts {
    int64_t m = 0, n = 0, ldp = 0;
    std::vector<int8_t> qs;
    std::vector<uint8_t> au8;
    std::vector<float> d;
    std::vector<int32_t> sum;
    std::vector<int32_t, std::allocator<int32_t>> packed;
    std::vector<uint8_t> pf;
};

Acts make_acts(const CpuKernels& k, int64_t m, int64_t n, uint64_t seed) {
    Acts A;
    A.m = m;
    A.n = n;
    A.qs.resize(m * n);
    A.au8.resize(m * n);
    A.d.resize(m * n / 32);
    A.sum.resize(m * n / 32);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> N(0.0f, 1.0f);
    std::vector<float> x(n);
    for (int64_t t = 0; t < m; ++t) {
        for (auto& v : x) v = N(rng) * (0.5f + (t % 5));
        k.quantize_acts_q3_5(x.data(), n, A.qs.data() + t * n, A.d.data() + t * n / 32, A.sum.data() + t * n / 32);
    }
    for (int64_t i = 0; i < m * n; ++i) A.au8[i] = static_cast<uint8_t>(A.qs[i] + 128);
    A.ldp = m + kQ3_5TilePad;
    A.packed.assign(static_cast<size_t>(n / 4 * A.ldp) + 64, 0);
    if (k.pack_acts_q3_5_tiles) k.pack_acts_q3_5_tiles(A.qs.data(), n, m, A.packed.data(), A.ldp);
    if (m % 16 == 0) {
        A.pf.assign(static_cast<size_t>(m * n) + 64, 0);
        pack_fold(A.qs.data(), n, m, A.pf.data());
    }
    return A;
}

// ---------------------------------------------------------------- timing helpers
template <class F>
double time_once(F&& f) {
    const double t0 = now_s();
    f();
    return now_s() - t0;
}

}  // namespace

int main(int argc, char** argv) {
    const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
    const int reps = quick ? 3 : 15;
    std::printf("E4M4 decode M*2^(E-23) matches q3_5_scale for all 256 codes: %s\n", check_e4m4() ? "yes" : "NO");
    std::printf("bound: |w'| <= 127*248 = %d, |S_g| <= 256*%d*127 = %lld (2^31 = %lld)\n", 127 * 248, 127 * 248,
                256LL * 127 * 248 * 127, 1LL << 31);
    CpuKernels k = kernels_for(Isa::Avx512);
    const bool have_amx_old = install_amx(k);
    if (!amx_ok()) {
        std::printf("no AMX permission\n");
        return 1;
    }
    std::printf("old AMX tiles kernel installed: %s\n", have_amx_old ? "yes" : "no");

    // 1. constraint violations on real quantizer output
    {
        for (int st = 0; st < 2; ++st) {
            int64_t gb, sb, sz;
            const int64_t rows = quick ? 128 : 1024, n = 4096;
            Mat M = make_mat(rows, n, 77 + st, st == 1, &gb, &sb, &sz);
            const int64_t groups = rows * n / kG, subs = groups * 16;
            std::printf("constraint E_L >= E_g - 3, %s rows (%lld x %lld): groups violating %lld / %lld (%.4f%%), sub-blocks %lld / %lld (%.5f%%), zero sub-blocks %lld\n",
                        st ? "Student-t(3)" : "Gaussian", (long long)rows, (long long)n, (long long)gb, (long long)groups,
                        100.0 * gb / groups, (long long)sb, (long long)subs, 100.0 * sb / subs, (long long)sz);
            std::free(M.w);
        }
    }

    // 2. correctness
    {
        const int64_t rows = 64, n = 4096, m = 64;
        Mat M = make_mat(rows, n, 5, false, nullptr, nullptr, nullptr);
        Mat Mt = make_mat(rows, n, 6, true, nullptr, nullptr, nullptr);
        Acts A = make_acts(k, m, n, 9);
        Acts A16 = make_acts(k, m, n, 9);
        A16.pf.assign(16 * n + 64, 0);
        pack_fold(A.qs.data(), n, 16, A16.pf.data());
        for (const Mat* W : {&M, &Mt}) {
            std::vector<float> yr(m * rows), ya(m * rows), yv(m * rows), yo(m * rows);
            ref_fold(W->w, W->rb, rows, n, A.qs.data(), A.d.data(), m, yr.data(), rows);
            gemm_fold_amx(W->w, W->rb, rows, n, A.pf.data(), A.d.data(), m, ya.data(), rows);
            gemm_fold_amx(W->w, W->rb, rows, n, A16.pf.data(), A.d.data(), 16, yo.data(), rows);
            for (int64_t t = 0; t < m; ++t) gemv_fold(W->w, W->rb, 0, rows, n, A.qs.data() + t * n, A.d.data() + t * n / 32, yv.data() + t * rows);
            int64_t bad_a = 0, bad_v = 0, bad_o = 0;
            for (int64_t i = 0; i < m * rows; ++i) {
                bad_a += std::bit_cast<uint32_t>(yr[i]) != std::bit_cast<uint32_t>(ya[i]);
                bad_v += std::bit_cast<uint32_t>(yr[i]) != std::bit_cast<uint32_t>(yv[i]);
                if (i < 16 * rows) bad_o += std::bit_cast<uint32_t>(yr[i]) != std::bit_cast<uint32_t>(yo[i]);
            }
            // vs the current numerics (float rounding only)
            double num = 0, den = 0;
            for (int64_t t = 0; t < m; ++t)
                for (int64_t r = 0; r < rows; ++r) {
                    const float cur = k.dot_q3_5(W->w + r * W->rb, A.qs.data() + t * n, A.d.data() + t * n / 32, nullptr, n);
                    num += (cur - yr[t * rows + r]) * (cur - yr[t * rows + r]);
                    den += cur * cur;
                }
            std::printf("bit-identity vs scalar ref (%s, %lld rows x %lld tokens): AMX m=64 %lld mismatches, AMX m=16 %lld, GEMV %lld; rel. rms vs current dot_q3_5 %.2e; max |S_g| seen %lld\n",
                        W == &M ? "Gaussian" : "t(3)", (long long)rows, (long long)m, (long long)bad_a, (long long)bad_o,
                        (long long)bad_v, std::sqrt(num / den), (long long)g_max_abs_S);
        }
        std::free(M.w);
        std::free(Mt.w);
    }

    {
        double a, b;
        tile_calibration(a, b);
        std::printf("calibration: %.2f ns per TDPBSSD/TDPBUSD (16x16x64, independent C), %.2f ns per 1 KiB tile load from L1\n", a, b);
    }
    // 3. GEMM timings
    const int64_t n = 4096;
    Mat pool = make_mat(256, n, 11, false, nullptr, nullptr, nullptr);
    for (int64_t nrows : {int64_t{4096}, int64_t{11008}}) {
        if (quick && nrows != 4096) continue;
        Mat W = nrows == 256 ? pool : make_big(nrows, n, pool);
        for (int64_t m : {int64_t{16}, int64_t{64}}) {
            Acts A = make_acts(k, m, n, 21 + m);
            std::vector<float> y(m * nrows);
            const double units = static_cast<double>(nrows / 16) * (m / 16) * (n / kG);
            constexpr int K = 7;
            double best[K];
            for (double& b : best) b = 1e9;
            const char* names[K] = {"current AVX-512 gemm_rows_q3_5", "current AMX gemm_rows_q3_5_tiles", "new AMX folded (full)",
                                    "  part: tile work + C stores only", "  part: weight decode only", "  part: tiles + float update (no decode)",
                                    "  part: tiles + decode (no update)"};
            for (int it = 0; it < reps; ++it) {
                best[0] = std::min(best[0], time_once([&] { k.gemm_rows_q3_5(W.w, W.rb, nrows, n, A.au8.data(), A.d.data(), m, y.data(), nrows); }));
                if (have_amx_old)
                    best[1] = std::min(best[1], time_once([&] { k.gemm_rows_q3_5_tiles(W.w, W.rb, nrows, n, A.packed.data(), A.ldp, A.d.data(), m, y.data(), nrows); }));
                const int modes[5] = {0, 1, 2, 3, 4};
                for (int i = 0; i < 5; ++i)
                    best[2 + i] = std::min(best[2 + i], time_once([&] { gemm_fold_amx(W.w, W.rb, nrows, n, A.pf.data(), A.d.data(), m, y.data(), nrows, modes[i]); }));
            }
            std::printf("\nGEMM %lldx%lld, m = %lld, 1 thread, best of %d alternating: ns per (16 rows x 16 tokens x group)\n",
                        (long long)nrows, (long long)n, (long long)m, reps);
            for (int i = 0; i < K; ++i)
                if (best[i] < 1e8)
                    std::printf("  %-45s %8.1f ns  (%.2fx current AVX-512)  call %.2f ms\n", names[i], best[i] * 1e9 / units,
                                best[0] / best[i], best[i] * 1e3);
        }
        if (W.w != pool.w) std::free(W.w);
    }

    // 4. GEMV timings
    {
        struct Shape { int64_t rows, n, copies; int threads; const char* what; };
        const Shape shapes[] = {{256, 4096, 1, 1, "L2-hot 256x4096, 1 thread"},
                                {8192, 28672, quick ? 1 : 4, 2, "streamed 8192x28672 (x copies), 2 threads"},
                                {8192, 28672, quick ? 1 : 4, 1, "streamed 8192x28672 (x copies), 1 thread"}};
        for (const Shape& s : shapes) {
            Mat W = s.rows == 256 ? make_mat(256, 4096, 31, false, nullptr, nullptr, nullptr) : make_big(s.rows * s.copies, s.n, pool);
            Acts A = make_acts(k, 1, s.n, 41);
            std::vector<float> y(s.rows);
            const double bytes = static_cast<double>(W.rb) * s.rows;
            double best_old = 1e9, best_new = 1e9;
            int64_t copy = 0;
            const int inner = s.rows == 256 ? 20 : 1;
            for (int it = 0; it < reps * (s.rows == 256 ? 1 : 2); ++it) {
                const uint8_t* base = W.w + (copy++ % s.copies) * W.rb * s.rows;
                best_old = std::min(best_old, time_once([&] {
                    for (int rep = 0; rep < inner; ++rep) {
#pragma omp parallel for schedule(static) num_threads(s.threads)
                        for (int64_t r = 0; r < s.rows; ++r) y[r] = k.dot_q3_5(base + r * W.rb, A.qs.data(), A.d.data(), nullptr, s.n);
                    }
                }) / inner);
                base = W.w + (copy++ % s.copies) * W.rb * s.rows;
                best_new = std::min(best_new, time_once([&] {
                    for (int rep = 0; rep < inner; ++rep) {
#pragma omp parallel num_threads(s.threads)
                        {
                            const int nt = omp_get_num_threads(), id = omp_get_thread_num();
                            const int64_t blocks = s.rows / 16, b0 = blocks * id / nt, b1 = blocks * (id + 1) / nt;
                            gemv_fold(base, W.rb, b0 * 16, b1 * 16, s.n, A.qs.data(), A.d.data(), y.data());
                        }
                    }
                }) / inner);
            }
            std::printf("\nGEMV %s, best of %d alternating: current dot_q3_5 %.1f GB/s, new folded GEMV %.1f GB/s (new/current %.2fx)\n",
                        s.what, reps, bytes / best_old * 1e-9, bytes / best_new * 1e-9, best_old / best_new);
            std::free(W.w);
        }
    }
    std::free(pool.w);
    return 0;
}
