// SPDX-License-Identifier: MIT
// The q3.5 block GEMM on AMX-INT8 tiles, folded layout (quant/q3_5_fold.h). Compiled with the
// AVX-512 flags plus -mamx-tile -mamx-int8; installed by install_amx.
//
// Contract (kernels.h, GemmRowsQ3_5fFn): weight rows r < nrows (folded rows of n = 256 G) times
// activation rows t < m packed by pack_acts_q3_5f; y[t * ldy + r] is BIT-IDENTICAL to
// dot_q3_5f_ref(row r, activation row t), hence to the decode GEMV: per (row, token, group) the
// exact S_g, then acc_j = fma(float(S_g), 2^(E_g - 26) * d_a(g), acc_j) with j = g mod 16, then
// the lane tree. Here a zmm holds 16 TOKENS of one (row, lane j); every element sees the same
// float operations in the same order.
//
// Tiles, per (16 weight rows, group g, 16 tokens) "job", K = 64 (one step of the group):
//   A_hi, A_lo = 16 rows x 64 bytes of w' = +-MAG * mult = 256 * hi + lo (hi signed, lo unsigned;
//                |w'| <= 127 * 248), decoded from the weights through per-(row, group) tables
//                indexed by (sign, sub-block, mag);
//   B          = 16 lines x 16 tokens x 4 quants (pack_acts_q3_5f);
//   C_hi, C_lo = TDPBSSD(A_hi, B), TDPBUSD(A_lo, B) over the 4 steps; S = 256 C_hi + C_lo exactly.
// Pipelining (measured in tools/research/amx_fold): a tile store followed by a vector load of the
// same data waits for everything older to retire, so job j's C is stored after job j + 1's TDPs
// are issued and its float update runs one job later still; the weight decode runs two groups
// ahead (three A buffers), interleaved with the tile instructions.
#include "kernels/cpu/kernels.h"

#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"

#include "core/cpu_features.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

namespace pl {
namespace {

// Linux keeps AMX tile data off until a process asks (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); the grant is per process, so once is enough.
bool amx_permitted() {
    static const bool ok = [] {
        constexpr long kArchReqXcompPerm = 0x1023;
        constexpr long kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return ok;
}

constexpr int kRows = CpuKernels::kGemmRowsQ3_5f;  // weight rows per block (A tile rows)
constexpr int kToks = kQ3_5fTileTokens;            // tokens per B/C tile
constexpr int kGB = kQ3_5GroupBytes;
constexpr int kLanes = kQ3_5FoldSuper;

struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

struct Consts {
    __m512i idxw0, idxw1, magw, even, odd, lc, lc64, c3;
    Consts() {
        alignas(64) uint16_t iw0[32], iw1[32], mw[32];
        for (int e = 0; e < 32; ++e) {
            iw0[e] = static_cast<uint16_t>(e >> 2);
            iw1[e] = static_cast<uint16_t>((e + 32) >> 2);
            mw[e] = static_cast<uint16_t>(kQ3_5Mag[e & 3]);
        }
        idxw0 = _mm512_load_si512(iw0);
        idxw1 = _mm512_load_si512(iw1);
        magw = _mm512_load_si512(mw);
        alignas(64) uint8_t ev[64], od[64], l[64], l64[64];
        for (int e = 0; e < 64; ++e) {
            ev[e] = static_cast<uint8_t>(2 * e);
            od[e] = static_cast<uint8_t>(2 * e + 1);
            l[e] = static_cast<uint8_t>(e & 0x3C);
            l64[e] = static_cast<uint8_t>((e & 0x3C) | 64);
        }
        even = _mm512_load_si512(ev);
        odd = _mm512_load_si512(od);
        lc = _mm512_load_si512(l);
        lc64 = _mm512_load_si512(l64);
        c3 = _mm512_set1_epi8(3);
    }
};

struct alignas(64) Scratch {
    uint8_t a[3][2][4][kRows * 64];  // [group % 3][hi, lo][step][row * 64]
    alignas(64) int32_t c[2][2][kRows * kToks];  // [job parity][hi, lo]
    std::vector<float> cg;                         // (groups, kRows): 2^(E_g - 26) per row
    std::vector<__m512> da;                        // (groups, token blocks): d_a of 16 tokens
    std::vector<__m512> acc;                       // (token blocks, kRows, kLanes)
};

// Rows [rb, re) of the block's group g into A buffer b: per row, tables of the 64 (sub-block,
// mag) values of w' and -w', split into hi and lo bytes, then one lookup per step.
inline void decode_rows(const uint8_t* const* rows, int nr, int64_t g, int64_t G, int rb, int re, Scratch& sc, int b,
                        const Consts& k) {
    for (int r = rb; r < re; ++r) {
        uint8_t* hi = sc.a[b][0][0] + 64 * r;  // step s at + s * kRows * 64
        uint8_t* lo = sc.a[b][1][0] + 64 * r;
        if (r >= nr) {  // rows past the end: zero weights, outputs not written
            for (int s = 0; s < 4; ++s) {
                _mm512_store_si512(hi + s * kRows * 64, _mm512_setzero_si512());
                _mm512_store_si512(lo + s * kRows * 64, _mm512_setzero_si512());
            }
            sc.cg[static_cast<size_t>(g * kRows + r)] = 0.0f;
            continue;
        }
        const uint8_t* gp = rows[r] + q3_5f_group_offset(g);
        _mm_prefetch(reinterpret_cast<const char*>(gp) + 8 * kGB, _MM_HINT_T2);  // the weight stream, 8 groups ahead
        _mm_prefetch(reinterpret_cast<const char*>(gp) + 8 * kGB + 64, _MM_HINT_T2);
        sc.cg[static_cast<size_t>(g * kRows + r)] =
            std::bit_cast<float>(static_cast<uint32_t>(rows[r][q3_5f_exp_offset(g, G)]) << 23);
        const __m512i mz =
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gp + 96))));
        const __m512i p0 = _mm512_mullo_epi16(_mm512_permutexvar_epi16(k.idxw0, mz), k.magw);
        const __m512i p1 = _mm512_mullo_epi16(_mm512_permutexvar_epi16(k.idxw1, mz), k.magw);
        const __m512i n0 = _mm512_sub_epi16(_mm512_setzero_si512(), p0), n1 = _mm512_sub_epi16(_mm512_setzero_si512(), p1);
        const __m512i lo_p = _mm512_permutex2var_epi8(p0, k.even, p1), hi_p = _mm512_permutex2var_epi8(p0, k.odd, p1);
        const __m512i lo_n = _mm512_permutex2var_epi8(n0, k.even, n1), hi_n = _mm512_permutex2var_epi8(n0, k.odd, n1);
        const __m512i mb = _mm512_loadu_si512(gp);
        for (int s = 0; s < 4; ++s) {
            const __m512i x = s == 0 ? mb : _mm512_srli_epi16(mb, 2 * s);
            uint64_t bits;
            std::memcpy(&bits, gp + 64 + 8 * s, 8);
            const __m512i base = _mm512_mask_blend_epi8(_cvtu64_mask64(bits), k.lc, k.lc64);
            const __m512i idx = _mm512_ternarylogic_epi32(x, k.c3, base, 0xEA);  // (x & 3) | base
            _mm512_store_si512(hi + s * kRows * 64, _mm512_permutex2var_epi8(hi_p, idx, hi_n));
            _mm512_store_si512(lo + s * kRows * 64, _mm512_permutex2var_epi8(lo_p, idx, lo_n));
        }
    }
}

// GCC's _tile_* macros paste the tile number into the asm text: literal numbers only.
// tmm0/1 = C set 0 (hi, lo), tmm2/3 = C set 1, tmm4/5 = A hi/lo, tmm6 = B.
inline void job_zero(int set) {
    if (set == 0) {
        _tile_zero(0);
        _tile_zero(1);
    } else {
        _tile_zero(2);
        _tile_zero(3);
    }
}
inline void job_step(const Scratch& sc, int b, int s, const uint8_t* bt, int set) {
    _tile_loadd(4, sc.a[b][0][s], 64);
    _tile_loadd(5, sc.a[b][1][s], 64);
    _tile_loadd(6, bt, 64);
    if (set == 0) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbusd(1, 5, 6);
    } else {
        _tile_dpbssd(2, 4, 6);
        _tile_dpbusd(3, 5, 6);
    }
}
inline void job_store(Scratch& sc, int set) {
    if (set == 0) {
        _tile_stored(0, sc.c[0][0], 64);
        _tile_stored(1, sc.c[0][1], 64);
    } else {
        _tile_stored(2, sc.c[1][0], 64);
        _tile_stored(3, sc.c[1][1], 64);
    }
}

void gemm_rows_q3_5f_amx(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const uint8_t* packed,
                         const float* d, int64_t m, float* y, int64_t ldy) {
    static const Consts k;
    thread_local Scratch sc;
    const int64_t G = n / kQ3_5Group, nbs = n / kQ8ABlock, tbs = (m + kToks - 1) / kToks;
    sc.cg.resize(static_cast<size_t>(G * kRows));
    sc.da.resize(static_cast<size_t>(G * tbs));
    sc.acc.resize(static_cast<size_t>(tbs * kRows * kLanes));
    for (int64_t g = 0; g < G; ++g)
        for (int64_t tb = 0; tb < tbs; ++tb) {
            alignas(64) float v[kToks];
            for (int t = 0; t < kToks; ++t) {
                const int64_t tok = tb * kToks + t;
                v[t] = tok < m ? d[tok * nbs + g * (kQ3_5Group / kQ8ABlock)] : 0.0f;
            }
            sc.da[static_cast<size_t>(g * tbs + tb)] = _mm512_load_ps(v);
        }
    TileConfig cfg;
    for (int i = 0; i < 7; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    const int64_t jobs = G * tbs;
    const int chunks = static_cast<int>(4 * tbs);
    for (int64_t r0 = 0; r0 < nrows; r0 += kRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kRows, nrows - r0));
        const uint8_t* rows[kRows];
        for (int r = 0; r < kRows; ++r) rows[r] = w + static_cast<size_t>(r0 + std::min(r, nr - 1)) * row_bytes;
        __m512* acc = sc.acc.data();
        for (size_t i = 0; i < sc.acc.size(); ++i) acc[i] = _mm512_setzero_ps();
        auto update = [&](int64_t j) {
            const int set = static_cast<int>(j & 1);
            const int64_t g = j / tbs, tb = j % tbs;
            const __m512 da = sc.da[static_cast<size_t>(g * tbs + tb)];
            const float* cg = sc.cg.data() + g * kRows;
            __m512* a = acc + (tb * kRows) * kLanes + g % kLanes;
            for (int r = 0; r < kRows; ++r) {
                const __m512i S = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(sc.c[set][0] + kToks * r), 8),
                                                   _mm512_load_si512(sc.c[set][1] + kToks * r));
                a[r * kLanes] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S), _mm512_mul_ps(_mm512_set1_ps(cg[r]), da), a[r * kLanes]);
            }
        };
        for (int64_t g = 0; g < std::min<int64_t>(2, G); ++g) decode_rows(rows, nr, g, G, 0, kRows, sc, static_cast<int>(g), k);
        for (int64_t g = 0; g < G; ++g) {
            const int b = static_cast<int>(g % 3), bn = static_cast<int>((g + 2) % 3);
            const bool ahead = g + 2 < G;
            const uint8_t* bg = packed + static_cast<size_t>(g) * 4096;
            for (int64_t tb = 0; tb < tbs; ++tb) {
                const int64_t j = g * tbs + tb;
                const int set = static_cast<int>(j & 1);
                job_zero(set);
                for (int s = 0; s < 4; ++s) {
                    job_step(sc, b, s, bg + static_cast<size_t>(tb * G) * 4096 + s * 1024, set);
                    if (ahead) {  // the decode of group g + 2, between the tile instructions
                        const int ch = static_cast<int>(4 * tb + s);
                        decode_rows(rows, nr, g + 2, G, kRows * ch / chunks, kRows * (ch + 1) / chunks, sc, bn, k);
                    }
                }
                if (j >= 2) update(j - 2);
                if (j >= 1) job_store(sc, static_cast<int>((j - 1) & 1));
            }
        }
        job_store(sc, static_cast<int>((jobs - 1) & 1));
        if (jobs >= 2) update(jobs - 2);
        update(jobs - 1);
        for (int64_t tb = 0; tb < tbs; ++tb) {
            const int mt = static_cast<int>(std::min<int64_t>(kToks, m - tb * kToks));
            for (int r = 0; r < nr; ++r) {
                const __m512* v = acc + (tb * kRows + r) * kLanes;
                __m512 s8[8], s4[4];
                for (int i = 0; i < 8; ++i) s8[i] = _mm512_add_ps(v[i], v[i + 8]);
                for (int i = 0; i < 4; ++i) s4[i] = _mm512_add_ps(s8[i], s8[i + 4]);
                const __m512 out = _mm512_add_ps(_mm512_add_ps(s4[0], s4[2]), _mm512_add_ps(s4[1], s4[3]));
                alignas(64) float o[kToks];
                _mm512_store_ps(o, out);
                for (int t = 0; t < mt; ++t) y[(tb * kToks + t) * ldy + r0 + r] = o[t];
            }
        }
    }
    _tile_release();
}

// qs (m, n) int8 -> B tiles: byte (((tb * G + g) * 4 + s) * 16 + k4) * 64 + 4 t + j = quant of
// token 16 tb + t at 256 g + 64 s + 4 k4 + j (0 for tokens past m).
void pack_acts_q3_5f_amx(const int8_t* qs, int64_t n, int64_t m, uint8_t* out) {
    const int64_t G = n / kQ3_5Group, tbs = (m + kToks - 1) / kToks;
    for (int64_t g = 0; g < G; ++g)
        for (int64_t tb = 0; tb < tbs; ++tb)
            for (int s = 0; s < 4; ++s) {
                uint8_t* tile = out + static_cast<size_t>(((tb * G + g) * 4 + s)) * 1024;
                for (int t = 0; t < kToks; ++t) {
                    const int64_t tok = tb * kToks + t;
                    if (tok >= m) {
                        for (int k4 = 0; k4 < 16; ++k4) std::memset(tile + k4 * 64 + 4 * t, 0, 4);
                        continue;
                    }
                    const int8_t* src = qs + tok * n + g * kQ3_5Group + 64 * s;
                    for (int k4 = 0; k4 < 16; ++k4) std::memcpy(tile + k4 * 64 + 4 * t, src + 4 * k4, 4);
                }
            }
}

}  // namespace

bool install_amx(CpuKernels& k) {
    const CpuFeatures& f = cpu_features();
    if (k.isa < Isa::Avx512 || !f.amx_tile || !f.amx_int8 || !amx_permitted()) return false;
    k.pack_acts_q3_5f = pack_acts_q3_5f_amx;
    k.gemm_rows_q3_5f = gemm_rows_q3_5f_amx;
    k.amx = true;
    return true;
}

}  // namespace pl
