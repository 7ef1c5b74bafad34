// SPDX-License-Identifier: MIT
// The q3.5 block GEMM on AMX-INT8 tiles (compiled with the AVX-512 flags plus -mamx-tile
// -mamx-int8; installed by install_amx on top of the avx512 table).
//
// Contract (kernels.h, GemmRowsQ3_5TilesFn): weight rows r < nrows of n elements (n % 256 == 0,
// no tail group) times activation rows t < m packed by pack_acts_q3_5_tiles; y[t * ldy + r] is
// BIT-IDENTICAL to dot_q3_5_avx512(row r, activation row t), so a batched product gives exactly the
// decode GEMV's numbers. That holds because both compute, per (row, activation row):
//   1. for every group g and sub-block L, the exact int32 dot of the 16 elements of sub-block L
//      (vpdpbusd lane L over the four steps there; one TDPBSSD output element here; both exact,
//      |sum| <= 16 * 127 * 127);
//   2. acc_L = fma(ws_L * (d_g * 2^108), float(isum_L), acc_L) in group order, for each L;
//   3. _mm512_reduce_add_ps over the 16 lanes acc_L (GCC's tree, written out below).
// Only the layout differs: here a zmm holds 16 ACTIVATION rows of one (weight row, L), not the 16 L
// of one (weight row, activation row); every element sees the same float operations on the same
// operands in the same order.
//
// Tiles (K = 16 = one sub-block, so a C element is one sub-block's exact dot):
//   A = 16 weight rows x 16 signed bytes: row r = sub-block L of weight row r in element order
//       (dword L of each of the four decoded 64-byte steps); decoded once per 16-row block into
//       `wd` for all groups;
//   B = 4 x 16 words of the packed activations: word (s, t) = the 4 quants of activation row t
//       at 64s + 4L (AMX's VNNI layout, kernels.h);
//   C = 16 x 16 int32: C[r][t] = the exact sub-block dot.
// Per (16 weight rows, 16 activation rows, L) the 16 accumulators (one per weight row, over t)
// stay in registers for all groups; groups go in pairs, pair p + 1's TDPBSSDs issued before pair
// p's float update (two sets of two C tiles).
//
// Status: opt-in (PARALLAMA_AMX=1). It measured 0.4-0.9x the AVX-512 block GEMM: K = 16 leaves a
// TDPBSSD 256 useful sums for 16 tile-unit cycles, each C tile must go through memory to reach the
// vector units, and the float update (the same as the AVX-512 kernel's) did not overlap the tile
// work (docs/performance.md).
//
// Threading: a pure function of its row and activation-row ranges; tile configuration is loaded at
// entry and released at exit (AMX state is per thread).
#include "kernels/cpu/kernels.h"

#include "core/cpu_features.h"
#include "quant/q3_5.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace pl {
namespace {

constexpr int kRows = CpuKernels::kGemmRowsQ3_5Tiles;  // weight rows per A tile
constexpr int kActs = 16;                              // activation rows per B/C tile
constexpr int kSubs = kQ3_5Group / 16;                 // sub-blocks (= K tiles) per group

// ldtilecfg's 64-byte operand (palette 1).
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Tile registers (the _tile_* intrinsics want literal numbers): tmm0..3 = C (two sets of two),
// tmm4/tmm5 = A, tmm6/tmm7 = B.
void configure_tiles() {
    TileConfig c;
    for (int i = 0; i < 8; ++i) {
        c.colsb[i] = i == 4 || i == 5 ? 16 : 4 * kActs;
        c.rows[i] = i >= 6 ? 4 : kRows;
    }
    _tile_loadconfig(&c);
}

// C set `set` (tmm0/1 or tmm2/3) = A(a0) x B(b0), A(a1) x B(b1): two groups' exact sub-block dots.
// Two spelled-out copies because GCC's _tile_* macros paste the tile number into the asm text:
// it must be a literal (a template parameter does not assemble).
inline void tiles_dot(int set, const uint8_t* a0, const uint8_t* b0, const uint8_t* a1, const uint8_t* b1, size_t ldb) {
    if (set == 0) {
        _tile_zero(0);
        _tile_loadd(4, a0, 256);
        _tile_loadd(6, b0, ldb);
        _tile_dpbssd(0, 4, 6);
        _tile_zero(1);
        _tile_loadd(5, a1, 256);
        _tile_loadd(7, b1, ldb);
        _tile_dpbssd(1, 5, 7);
    } else {
        _tile_zero(2);
        _tile_loadd(4, a0, 256);
        _tile_loadd(6, b0, ldb);
        _tile_dpbssd(2, 4, 6);
        _tile_zero(3);
        _tile_loadd(5, a1, 256);
        _tile_loadd(7, b1, ldb);
        _tile_dpbssd(3, 5, 7);
    }
}
inline void tiles_store(int set, int32_t* c0, int32_t* c1) {
    if (set == 0) {
        _tile_stored(0, c0, 4 * kActs);
        _tile_stored(1, c1, 4 * kActs);
    } else {
        _tile_stored(2, c0, 4 * kActs);
        _tile_stored(3, c1, 4 * kActs);
    }
}

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

inline __m512i q3_5_mag_lut() {
    const uint32_t m = static_cast<uint8_t>(kQ3_5Mag[0]) | static_cast<uint32_t>(kQ3_5Mag[1]) << 8 |
                       static_cast<uint32_t>(kQ3_5Mag[2]) << 16 | static_cast<uint32_t>(kQ3_5Mag[3]) << 24;
    return _mm512_set1_epi32(static_cast<int>(m));
}

// The 256-byte A-tile rows of one group of one weight row: chunk 4j + q (16 bytes) = sub-block
// L = 4q + j, so sub-block L sits at chunk_of(L) * 16. Also the 16 lane scales (E4M4 code << 19
// read as float, as in the AVX-512 kernels).
constexpr int chunk_of(int L) { return 4 * (L % 4) + L / 4; }

inline void decode_group(const uint8_t* p, uint8_t* out, float* ws, const __m512i lut) {
    const __m512i mb = _mm512_loadu_si512(p);
    const uint8_t* signs = p + q3_5_signs_offset(kQ3_5Group);
    __m512i v[4];
    for (int s = 0; s < 4; ++s) {
        const __m512i mag = _mm512_permutexvar_epi8(s == 0 ? mb : _mm512_srli_epi16(mb, 2 * s), lut);
        uint64_t bits;
        std::memcpy(&bits, signs + 8 * s, 8);
        v[s] = _mm512_mask_sub_epi8(mag, _cvtu64_mask64(bits), _mm512_setzero_si512(), mag);
    }
    // 4 x 16 dword transpose within 128-bit lanes: u_j lane q = (v0, v1, v2, v3) dword 4q + j.
    const __m512i a = _mm512_unpacklo_epi32(v[0], v[1]), b = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i c = _mm512_unpacklo_epi32(v[2], v[3]), e = _mm512_unpackhi_epi32(v[2], v[3]);
    _mm512_store_si512(out + 0, _mm512_unpacklo_epi64(a, c));
    _mm512_store_si512(out + 64, _mm512_unpackhi_epi64(a, c));
    _mm512_store_si512(out + 128, _mm512_unpacklo_epi64(b, e));
    _mm512_store_si512(out + 192, _mm512_unpackhi_epi64(b, e));
    const __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + q3_5_scales_offset(kQ3_5Group))));
    _mm512_store_ps(ws, _mm512_castsi512_ps(_mm512_slli_epi32(k, 19)));
}

// _mm512_reduce_add_ps's order (GCC's avx512fintrin.h: halves, then quarters, then 0+2 / 1+3, then
// the two), applied lane-wise to 16 vectors v[L]: lane t of the result is reduce_add over L of
// lane t of the v[L].
inline __m512 reduce_add_lanes(const __m512* v) {
    __m512 s[8], u[4];
    for (int i = 0; i < 8; ++i) s[i] = _mm512_add_ps(v[i + 8], v[i]);
    for (int i = 0; i < 4; ++i) u[i] = _mm512_add_ps(s[i + 4], s[i]);
    return _mm512_add_ps(_mm512_add_ps(u[0], u[2]), _mm512_add_ps(u[1], u[3]));
}

// acc[r] += (ws[r][L] * da) * float(c[r]) for the 16 weight rows (one C tile stored at c).
inline void update(__m512* acc, const int32_t* c, const float* ws, int L, const __m512 da) {
    for (int r = 0; r < kRows; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(ws[r * kSubs + L]), da),
                                 _mm512_cvtepi32_ps(_mm512_load_si512(c + r * kActs)), acc[r]);
}

struct alignas(64) Line {  // one cache line; vectors of these are 64-byte aligned
    uint8_t bytes[64];
};

struct Scratch {
    std::vector<Line> wd;   // (groups, kRows, 256 bytes): A-tile rows, see decode_group
    std::vector<Line> ws;   // (groups, kRows, kSubs) float lane scales
    std::vector<Line> da;   // (groups, kActs) float d * 2^108 (0 past the last activation row)
    std::vector<Line> acc;  // (kRows, kSubs, kActs) float accumulators of one 16 x 16 tile
    alignas(64) int32_t c[4][kRows * kActs];  // stored C tiles, two sets of two
};

void gemm_rows_q3_5_amx(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const int32_t* packed, int64_t ldp,
                        const float* d, int64_t m, float* y, int64_t ldy) {
    const int64_t groups = n / kQ3_5Group, nbs = n / kQ8ABlock;
    thread_local Scratch sc;
    sc.wd.resize(static_cast<size_t>(groups * kRows * 4));
    sc.ws.resize(static_cast<size_t>(groups * kRows));
    sc.da.resize(static_cast<size_t>(groups));
    sc.acc.resize(static_cast<size_t>(kRows * kSubs));
    uint8_t* wd = sc.wd.data()->bytes;
    float* wsf = reinterpret_cast<float*>(sc.ws.data());
    float* daf = reinterpret_cast<float*>(sc.da.data());
    __m512* acc_tile = reinterpret_cast<__m512*>(sc.acc.data());
    const __m512i lut = q3_5_mag_lut();
    const size_t ldb = static_cast<size_t>(ldp) * 4;  // bytes from one B-tile row to the next
    configure_tiles();
    for (int64_t r0 = 0; r0 < nrows; r0 += kRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kRows, nrows - r0));
        for (int r = 0; r < kRows; ++r) {
            const uint8_t* p = w + static_cast<size_t>(r0 + std::min(r, nr - 1)) * row_bytes;
            for (int64_t g = 0; g < groups; ++g) {
                uint8_t* out = wd + (g * kRows + r) * 256;
                float* ws = wsf + (g * kRows + r) * kSubs;
                if (r < nr) {
                    decode_group(p + g * kQ3_5GroupBytes, out, ws, lut);
                } else {  // rows past nrows: zero weights and scales, outputs not written
                    std::memset(out, 0, 256);
                    std::memset(ws, 0, kSubs * sizeof(float));
                }
            }
        }
        for (int64_t t0 = 0; t0 < m; t0 += kActs) {
            const int mt = static_cast<int>(std::min<int64_t>(kActs, m - t0));
            for (int64_t g = 0; g < groups; ++g)
                for (int t = 0; t < kActs; ++t)
                    daf[g * kActs + t] = t < mt ? d[(t0 + t) * nbs + g * (kQ3_5Group / kQ8ABlock)] * kQ3_5ScalePow : 0.0f;
            const uint8_t* bt = reinterpret_cast<const uint8_t*>(packed + t0);
            for (int L = 0; L < kSubs; ++L) {
                __m512 acc[kRows];
                for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
                const uint8_t* a = wd + chunk_of(L) * 16;
                const uint8_t* b = bt + static_cast<size_t>(L) * 4 * ldb;
                const size_t a_group = kRows * 256, b_group = kSubs * 4 * ldb;
                // Pairs of groups, software-pipelined: pair p + 1's TDPBSSDs are issued before
                // pair p's float update and stored after it, so the tile unit works while the
                // vector units do, and the update's loads never wait on the newest tile stores.
                // An odd last pair repeats its group in the second slot and ignores it.
                const int64_t pairs = (groups + 1) / 2;
                auto issue = [&](int64_t pr, int set) {
                    const int64_t g0 = 2 * pr, g1 = std::min(2 * pr + 1, groups - 1);
                    tiles_dot(set, a + g0 * a_group, b + g0 * b_group, a + g1 * a_group, b + g1 * b_group, ldb);
                };
                issue(0, 0);
                tiles_store(0, sc.c[0], sc.c[1]);
                for (int64_t pr = 0; pr < pairs; ++pr) {
                    const int set = static_cast<int>(pr & 1);
                    if (pr + 1 < pairs) issue(pr + 1, 1 - set);
                    for (int h = 0; h < 2 && 2 * pr + h < groups; ++h) {
                        const int64_t g = 2 * pr + h;
                        update(acc, sc.c[2 * set + h], wsf + g * kRows * kSubs, L, _mm512_load_ps(daf + g * kActs));
                    }
                    if (pr + 1 < pairs) tiles_store(1 - set, sc.c[2 * (1 - set)], sc.c[2 * (1 - set) + 1]);
                }
                for (int r = 0; r < kRows; ++r) acc_tile[r * kSubs + L] = acc[r];
            }
            for (int r = 0; r < nr; ++r) {
                alignas(64) float out[kActs];
                _mm512_store_ps(out, reduce_add_lanes(acc_tile + r * kSubs));
                for (int t = 0; t < mt; ++t) y[(t0 + t) * ldy + r0 + r] = out[t];
            }
        }
    }
    _tile_release();
}

// qs (m, n) int8 -> packed (n/4 lines, ldp words), see kernels.h: line 64g + 4L + s holds word
// 16s + L of each row's group g.
void pack_acts_q3_5_amx(const int8_t* qs, int64_t n, int64_t m, int32_t* packed, int64_t ldp) {
    const int64_t lines = n / 4;
    for (int64_t t = 0; t < m; ++t) {
        const int8_t* row = qs + t * n;
        for (int64_t g = 0; g < n / kQ3_5Group; ++g)
            for (int wi = 0; wi < 64; ++wi) {
                int32_t v;
                std::memcpy(&v, row + g * kQ3_5Group + 4 * wi, 4);
                packed[(g * 64 + 4 * (wi % 16) + wi / 16) * ldp + t] = v;
            }
    }
    for (int64_t l = 0; l < lines; ++l) std::fill(packed + l * ldp + m, packed + (l + 1) * ldp, 0);
}

}  // namespace

bool install_amx(CpuKernels& k) {
    const CpuFeatures& f = cpu_features();
    if (k.isa < Isa::Avx512 || !f.amx_tile || !f.amx_int8 || !amx_permitted()) return false;
    k.pack_acts_q3_5_tiles = pack_acts_q3_5_amx;
    k.gemm_rows_q3_5_tiles = gemm_rows_q3_5_amx;
    k.amx = true;
    return true;
}

}  // namespace pl
