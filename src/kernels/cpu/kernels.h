// SPDX-License-Identifier: MIT
// The CPU kernel table: integer dot products of quantized weight rows with int8-quantized
// activations, one implementation per ISA level (scalar reference, AVX2, AVX-512), chosen once at
// start from cpuid (PARALLAMA_ISA=scalar|avx2|avx512 forces one) and logged. On avx512 with
// AMX-INT8 (PARALLAMA_AMX=0 turns it off), q3.5 matrices are folded at load (quant/q3_5_fold.h)
// and their block GEMM runs on AMX tiles.
//
// Activations ("Q8A", our internal format, never stored in files): blocks of 32 values, each with
// a float scale d = amax/127 and the int32 sum of its quants; quants are nearbyint(x / d)
// (round-half-even), in [-127, 127]. Stored struct-of-arrays so SIMD loads are contiguous:
//   qs (n) int8, d (n/32) float, sum (n/32) int32.
//
// Kernel naming: <op>_<weight>_<act>_<isa>, e.g. dot_q4_0_q8a_avx512. Every SIMD kernel equals the
// scalar reference exactly in its integer part; float accumulation order may differ (tests bound
// the normalised error). Kernels are pure functions; callers split rows across threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pl {

inline constexpr int kQ8ABlock = 32;

// A quantized activation vector (or several, row-major, for batches).
struct Q8Acts {
    int64_t n = 0;             // elements per row, a multiple of 32
    int64_t rows = 0;
    std::vector<int8_t> qs;    // (rows, n)
    std::vector<float> d;      // (rows, n/32)
    std::vector<int32_t> sum;  // (rows, n/32)
    bool rotated = false;      // quantized for q3.5 rows (rotate_q3_5 + quantize_acts_q3_5) rather than plain
    void resize(int64_t n_, int64_t rows_ = 1) {
        n = n_;
        rows = rows_;
        qs.resize(static_cast<size_t>(n * rows));
        d.resize(static_cast<size_t>(n / kQ8ABlock * rows));
        sum.resize(static_cast<size_t>(n / kQ8ABlock * rows));
    }
    const int8_t* row_qs(int64_t r) const { return qs.data() + r * n; }
    const float* row_d(int64_t r) const { return d.data() + r * (n / kQ8ABlock); }
    const int32_t* row_sum(int64_t r) const { return sum.data() + r * (n / kQ8ABlock); }
};

// x[0..n) -> qs, d, sum (n a multiple of 32).
using QuantizeActsFn = void (*)(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum);
// dot(weight row of n elements, activation row) for one weight format.
using DotQ8AFn = float (*)(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n);

// Two weight rows against one activation row (decode): y[0] = dot(w0, a), y[1] = dot(w1, a), each
// bit-identical to the format's dot kernel. Callers pass rows far apart: two DRAM streams keep one
// core's prefetchers busier than one (docs/performance.md).
using Dot2Q8AFn = void (*)(const void* w0, const void* w1, const int8_t* qs, const float* d, const int32_t* sum, int64_t n,
                           float* y);

// One weight row against m activation rows: y[i * y_stride] = dot(w, activation row i), where
// activation row i is qs + i*n, d + i*n/32, sum + i*n/32. Unpacks each weight block once per tile
// of activation rows (prompt processing and batches).
using GemmQ8AFn = void (*)(const void* w, int64_t n, const int8_t* qs, const float* d, const int32_t* sum, int64_t m,
                           float* y, int64_t y_stride);

// q3.5 weight rows against many activation rows (prompt processing, batches): for weight rows
// r < nrows (row r at w + r * row_bytes, n elements) and activation rows t < m,
// y[t * ldy + r] = dot(row r, activation row t). The activations come as offset-binary bytes
// au8 = quant + 128 (so vpdpbusd takes them as its unsigned operand and signed weights as the
// other; the +128 is taken out exactly per lane), with d as in Q8Acts (one scale per q3.5 group).
// Each weight group is decoded once for all m activation rows.
using GemmRowsQ3_5Fn = void (*)(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const uint8_t* au8,
                                const float* d, int64_t m, float* y, int64_t ldy);

// q3.5 rows in the folded layout (quant/q3_5_fold.h, an in-memory layout of q3.5) on AMX tiles
// (kernels/cpu/x86/amx/): the activations come packed ONCE per call by PackActsQ3_5fFn into
// 1 KiB B tiles, q3_5f_packed_bytes(n, m) bytes:
//   packed[(((tb * G + g) * 4 + s) * 16 + k4) * 64 + 4 t + j] = quant of activation row
//   16 tb + t at 256 g + 64 s + 4 k4 + j   (G = n / 256; 0 for rows t >= m),
// token block by token block, so rows from 16 tb0 on start at q3_5f_packed_bytes(n, 16 tb0).
// For weight rows r < nrows (row r at w + r * row_bytes) and activation rows t < m,
// y[t * ldy + r] is BIT-IDENTICAL to dot_q3_5f (every ISA's; the numerics of quant/q3_5_fold.h).
using PackActsQ3_5fFn = void (*)(const int8_t* qs, int64_t n, int64_t m, uint8_t* packed);
using GemmRowsQ3_5fFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t nrows, int64_t n, const uint8_t* packed,
                                 const float* d, int64_t m, float* y, int64_t ldy);
inline constexpr int64_t kQ3_5fTileTokens = 16;  // activation rows per B tile
inline size_t q3_5f_packed_bytes(int64_t n, int64_t m) {
    return static_cast<size_t>(n / 256) * static_cast<size_t>((m + kQ3_5fTileTokens - 1) / kQ3_5fTileTokens) * 4096;
}

// Attention over one KV head of a paged cache (Session's KV layout). Position t of the head lies
// in block blocks[t / kAttnBlock], which starts at base + blocks[t / kAttnBlock] * block_stride
// (elements). A KEY block is dim-major, (head_dim, kAttnBlock): element (d, t % kAttnBlock), so
// one vector holds one dimension of 16 keys and the scores need no horizontal sums. A VALUE block
// is position-major, (kAttnBlock, head_dim). Numerics, the same on every ISA (bit-identical to the
// scalar reference): each product rounds, then adds, in index order, starting from 0:
//   scores: att[t] = (sum over d of q[d] * k_t[d]) / div, for t < n
//   values: out[c] = sum over t < n of att[t] * v_t[c], for c < head_dim
// Lanes of the last key block past n are read (any finite or non-finite value) but not stored.
inline constexpr int kAttnBlock = 16;
template <class T>
using AttnScoresFn = void (*)(const float* q, const T* kbase, const int32_t* blocks, size_t block_stride, int n, int head_dim,
                              float div, float* att);
template <class T>
using AttnValuesFn = void (*)(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n,
                              int head_dim);

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa);

struct CpuKernels {
    Isa isa = Isa::Scalar;
    QuantizeActsFn quantize_acts = nullptr;
    // For q3.5 rows: the ALREADY ROTATED row (rotate_q3_5) with one scale per q3.5 group
    // (quantize_acts_q3_5_ref); d/sum keep the per-32 layout.
    QuantizeActsFn quantize_acts_q3_5 = nullptr;
    // R x in place for a q3.5 row of n elements (bit-identical to rotate_q3_5, quant/q3_5.h).
    void (*rotate_q3_5)(float* x, int64_t n) = nullptr;
    // The q3.5 weight quantizer (same bytes as quantize_row_q3_5_ref, faster where SIMD exists).
    void (*quantize_row_q3_5)(const float* x, void* dst, int64_t n) = nullptr;
    DotQ8AFn dot_q8_0 = nullptr;
    DotQ8AFn dot_q4_0 = nullptr;
    DotQ8AFn dot_q4_1 = nullptr;
    DotQ8AFn dot_q3_5 = nullptr;  // q3.5: activations must be rotated first (rotate_q3_5)
    Dot2Q8AFn dot2_q3_5 = nullptr;  // optional (AVX-512): two rows at once
    GemmQ8AFn gemm_q8_0 = nullptr;  // optional: nullptr means "loop over the dot kernel"
    GemmQ8AFn gemm_q4_0 = nullptr;
    GemmQ8AFn gemm_q4_1 = nullptr;
    GemmQ8AFn gemm_q3_5 = nullptr;
    GemmRowsQ3_5Fn gemm_rows_q3_5 = nullptr;  // optional (AVX-512); matmul_q8a prefers it for m > 1
    static constexpr int kGemmRowsQ3_5 = 4;    // weight rows per call that the kernel handles at once
    // q3.5 folded rows (quant/q3_5_fold.h): the decode kernels (every ISA: the scalar reference,
    // or AVX-512), and the AMX block GEMM (installed on top of avx512 when the CPU and OS allow it,
    // unless PARALLAMA_AMX=0). Model::load folds q3.5 matrices only when gemm_rows_q3_5f exists,
    // and matmul_q8a then keeps blocks of kGemmRowsQ3_5f weight rows whole.
    DotQ8AFn dot_q3_5f = nullptr;
    Dot2Q8AFn dot2_q3_5f = nullptr;
    PackActsQ3_5fFn pack_acts_q3_5f = nullptr;
    GemmRowsQ3_5fFn gemm_rows_q3_5f = nullptr;
    static constexpr int kGemmRowsQ3_5f = 16;
    // The same products for fewer than kQ3_5fAmxMinActs activation rows (AVX-512; offset-binary
    // activations as GemmRowsQ3_5Fn's), where the AMX kernel's per-16-row weight decode dominates
    // (it costs at 2-15 tokens what it costs at 16; docs/performance.md); the same bits.
    GemmRowsQ3_5Fn gemm_rows_q3_5f_few = nullptr;
    static constexpr int kQ3_5fAmxMinActs = 10;
    bool amx = false;  // the AMX kernels above are installed (for logs and reports)

    // Attention over an f32 or an f16 (Session with KvType::F16) KV cache, layout above.
    AttnScoresFn<float> attn_scores_f32 = nullptr;
    AttnValuesFn<float> attn_values_f32 = nullptr;
    AttnScoresFn<uint16_t> attn_scores_f16 = nullptr;
    AttnValuesFn<uint16_t> attn_values_f16 = nullptr;
    void (*to_f16)(const float* x, uint16_t* h, int64_t n) = nullptr;  // round to nearest even

    // The activation quantizer the dot/gemm kernels of a weight type expect.
    QuantizeActsFn quantize_acts_for(uint32_t type) const;
    // The dot kernel for a GGML weight type id, or nullptr when the type has none (float path).
    DotQ8AFn dot_for(uint32_t type) const;
    // The two-row dot kernel for a type, or nullptr (then callers use dot_for() per row).
    Dot2Q8AFn dot2_for(uint32_t type) const;
    // The row-times-many kernel for a type, or nullptr (then callers loop over dot_for()).
    GemmQ8AFn gemm_for(uint32_t type) const;
    // True when matmul_q8a runs a product of several activation rows of this weight type through
    // a block kernel (gemm_for, or q3.5's and folded q3.5's row-block GEMMs), false when it loops
    // over the dot kernel row by row.
    bool has_block_product(uint32_t type) const;
};

// True when q3.5 matrices of `cols` columns run folded (quant/q3_5_fold.h) with these kernels:
// Model::load then repacks them, and the bench suites do the same.
inline bool folds_q3_5(const CpuKernels& k, int64_t cols) {
    return k.gemm_rows_q3_5f && k.dot_q3_5f && cols > 0 && cols % 256 == 0;
}

// The levels this CPU can run, lowest first (always includes Scalar).
std::vector<Isa> supported_isas();
// The table for one level (which must be supported).
CpuKernels kernels_for(Isa isa);
// The process-wide table: the best supported level, or PARALLAMA_ISA's choice. Selected and logged
// once. An unknown or unsupported PARALLAMA_ISA value is reported and ignored.
const CpuKernels& cpu_kernels();

// Installers called by kernels_for(): each overrides the entries its ISA speeds up.
void install_scalar(CpuKernels& k);
void install_avx2(CpuKernels& k);
void install_avx512(CpuKernels& k);
void install_avx512_quant(CpuKernels& k);  // kernels/cpu/x86/avx512/quant_q3_5_avx512.cpp
void rotate_q3_5_avx512(float* x, int64_t n);  // CpuKernels::rotate_q3_5 of install_avx512
// AMX on top of an avx512 table (kernels/cpu/x86/amx/): asks Linux once per process for the tile
// state (arch_prctl ARCH_REQ_XCOMP_PERM) and installs nothing, returning false, when the table is
// below avx512, the CPU lacks amx-tile/amx-int8 or Linux refuses. kernels_for(Avx512) calls it
// unless PARALLAMA_AMX=0; tests call it directly.
bool install_amx(CpuKernels& k);
void install_avx512_q3_5f(CpuKernels& k);  // kernels/cpu/x86/avx512/dot_q3_5f_avx512.cpp

}  // namespace pl
