// SPDX-License-Identifier: MIT
#include "kernels/cpu/ops.h"

#include "core/check.h"
#include "core/fp16.h"
#include "kernels/cpu/kernels.h"
#include "quant/formats.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <optional>
#include <utility>

#include <omp.h>
#include <unistd.h>
#include <memory>
#include <vector>

namespace pl {

float dot_f32(const float* a, const float* b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    ss /= static_cast<float>(n);
    ss += eps;
    const float scale = 1.0f / std::sqrt(ss);
    for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (scale * x[i]);
}

void softmax(float* x, int64_t n) {
    float max_val = x[0];
    for (int64_t i = 1; i < n; ++i) max_val = std::max(max_val, x[i]);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max_val);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

void rope(float* vec, int n_heads, int head_dim, int n_rot, int pos, float base, const float* freq_factors) {
    for (int i = 0; i < n_rot; i += 2) {
        float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(n_rot));
        if (freq_factors) freq /= freq_factors[i / 2];
        const float val = static_cast<float>(pos) * freq;
        const float fcr = std::cos(val);
        const float fci = std::sin(val);
        for (int h = 0; h < n_heads; ++h) {
            float* v = vec + static_cast<size_t>(h) * head_dim + i;
            const float v0 = v[0];
            const float v1 = v[1];
            v[0] = v0 * fcr - v1 * fci;
            v[1] = v0 * fci + v1 * fcr;
        }
    }
}

void swiglu(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        float g = gate[i];
        g *= 1.0f / (1.0f + std::exp(-g));  // silu, in llama2.c's operation order
        gate[i] = g * up[i];
    }
}

void dequantize_row(const WeightView& W, int64_t r, float* out) {
    const TypeTraits* t = type_traits(W.type);
    PL_CHECK(t && t->dequantize_row, "no dequantizer for type {} ({})", type_name(W.type), W.name);
    t->dequantize_row(W.row(r), out, W.cols);
}

void matmul(const WeightView& W, const float* X, int64_t n, float* Y) {
    const TypeTraits* t = type_traits(W.type);
    PL_CHECK(t && (W.type == static_cast<uint32_t>(GgmlType::F32) || t->dequantize_row),
             "matmul: unsupported weight type {} for {}", type_name(W.type), W.name);
    const int64_t rows = W.rows;
    const int64_t cols = W.cols;
    if (W.type == static_cast<uint32_t>(GgmlType::F32)) {
        const auto* w = reinterpret_cast<const float*>(W.data);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < n; ++i) Y[i * rows + r] = dot_f32(w + r * cols, X + i * cols, cols);
        return;
    }
    const DequantizeRowFn deq = t->dequantize_row;
#pragma omp parallel
    {
        // Per-thread scratch row, allocated once per call (not per row); each weight row is
        // dequantized once and used for all n inputs.
        std::unique_ptr<float[]> buf(new float[static_cast<size_t>(cols)]);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            deq(W.row(r), buf.get(), cols);
            for (int64_t i = 0; i < n; ++i) Y[i * rows + r] = dot_f32(buf.get(), X + i * cols, cols);
        }
    }
}

void matvec(const WeightView& W, const float* x, float* y) { matmul(W, x, 1, y); }

const char* threading_name(Threading t) {
    switch (t) {
        case Threading::Rows: return "rows";
        case Threading::Nested: return "nested";
        case Threading::Tiled: return "tiled";
        case Threading::Tasks: return "tasks";
    }
    return "?";
}

std::optional<Threading> parse_threading(std::string_view name) {
    for (Threading t : {Threading::Rows, Threading::Nested, Threading::Tiled, Threading::Tasks})
        if (name == threading_name(t)) return t;
    return std::nullopt;
}

namespace {
std::atomic<Threading> g_threading{Threading::Tasks};

int64_t l2_bytes() {
    static const int64_t v = [] {
        const long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
        return s > 0 ? static_cast<int64_t>(s) : int64_t{1} << 20;
    }();
    return v;
}

// One product, cut into work items: weight rows [r0, r1) x columns [k0, k1) x activation rows
// [t0, t1). Column cuts fall on multiples of 256 (a q3.5 group, eight 32-blocks), so every piece is
// made of whole blocks and only the last piece holds a q3.5 row's tail group.
struct Product {
    const WeightView& W;
    const Q8Acts& a;
    const CpuKernels& k;
    DotQ8AFn dot;
    GemmQ8AFn gemm = nullptr;
    const uint8_t* au8 = nullptr;     // offset-binary activations for the q3.5 block GEMM, or null
    const uint8_t* packed = nullptr;  // B tiles for the AMX q3.5-folded GEMM (kernels.h), or null
    Dot2Q8AFn dot2 = nullptr;         // two-row decode kernel, or null
    // Y[t * ldy + r] for the item; with a column cut only one activation row (t1 = t0 + 1).
    void run(int64_t r0, int64_t r1, int64_t k0, int64_t k1, int64_t t0, int64_t t1, float* Y, int64_t ldy) const {
        const int64_t n = W.cols, nb = n / kQ8ABlock, m = t1 - t0;
        if (r1 <= r0 || m <= 0) return;
        if (k0 != 0 || k1 != n) {
            const int64_t kn = k1 - k0;
            const size_t skip = *row_bytes(W.type, k0);  // k0 is a multiple of 256: whole blocks
            for (int64_t r = r0; r < r1; ++r)
                Y[t0 * ldy + r] = dot(W.row(r) + skip, a.qs.data() + t0 * n + k0, a.d.data() + t0 * nb + k0 / kQ8ABlock,
                                      a.sum.data() + t0 * nb + k0 / kQ8ABlock, kn);
            return;
        }
        if (packed && t0 % kQ3_5fTileTokens == 0 && m >= CpuKernels::kQ3_5fAmxMinActs) {
            // The B tiles of token blocks t0 / 16 onwards (packed token-block-major).
            k.gemm_rows_q3_5f(W.row(r0), W.row_bytes, r1 - r0, n, packed + q3_5f_packed_bytes(n, t0), a.d.data() + t0 * nb, m,
                              Y + t0 * ldy + r0, ldy);
            return;
        }
        if (au8 && W.type == static_cast<uint32_t>(GgmlType::Q3_5F)) {
            k.gemm_rows_q3_5f_few(W.row(r0), W.row_bytes, r1 - r0, n, au8 + t0 * n, a.d.data() + t0 * nb, m, Y + t0 * ldy + r0, ldy);
            return;
        }
        if (au8) {
            constexpr int64_t kR = CpuKernels::kGemmRowsQ3_5;
            for (int64_t r = r0; r < r1; r += kR)
                k.gemm_rows_q3_5(W.row(r), W.row_bytes, std::min(kR, r1 - r), n, au8 + t0 * n, a.d.data() + t0 * nb, m,
                                 Y + t0 * ldy + r, ldy);
            return;
        }
        if (dot2 && m == 1) {
            // Rows r0 + j and r0 + half + j together: two DRAM streams (q3.5 GEMV 76-77 % ->
            // 85-88 % of the read loop's bandwidth, docs/performance.md); each row as dot computes it.
            const int64_t half = (r1 - r0) / 2;
            float y2[2];
            for (int64_t j = 0; j < half; ++j) {
                dot2(W.row(r0 + j), W.row(r0 + half + j), a.row_qs(t0), a.row_d(t0), a.row_sum(t0), n, y2);
                Y[t0 * ldy + r0 + j] = y2[0];
                Y[t0 * ldy + r0 + half + j] = y2[1];
            }
            if ((r1 - r0) % 2) Y[t0 * ldy + r1 - 1] = dot(W.row(r1 - 1), a.row_qs(t0), a.row_d(t0), a.row_sum(t0), n);
            return;
        }
        for (int64_t r = r0; r < r1; ++r) {
            if (gemm && m > 1)
                gemm(W.row(r), n, a.qs.data() + t0 * n, a.d.data() + t0 * nb, a.sum.data() + t0 * nb, m, Y + t0 * ldy + r, ldy);
            else
                for (int64_t t = t0; t < t1; ++t)
                    Y[t * ldy + r] = dot(W.row(r), a.row_qs(t), a.row_d(t), a.row_sum(t), n);
        }
    }
};

// [begin, end) split into `parts` nearly equal pieces, piece i; boundaries rounded to `align`.
std::pair<int64_t, int64_t> split(int64_t begin, int64_t end, int parts, int i, int64_t align) {
    auto at = [&](int j) {
        if (j >= parts) return end;
        const int64_t x = begin + (end - begin) * j / parts;
        return std::min(end, begin + (x - begin) / align * align);
    };
    return {at(i), at(i + 1)};
}

}  // namespace

Threading matmul_threading() { return g_threading.load(std::memory_order_relaxed); }
void set_matmul_threading(Threading t) { g_threading.store(t, std::memory_order_relaxed); }

void matmul_q8a(const WeightView& W, const Q8Acts& a, float* Y, const CpuKernels& k) {
    matmul_q8a(W, a, Y, k, matmul_threading());
}

namespace {

// The per-call activation layouts the q3.5 block GEMMs read, built once per call for every matrix
// of that call (they depend only on the activations, the type and the width).
void prepare_product(Product& P, const WeightView& W, const Q8Acts& a, const CpuKernels& k) {
    const int64_t n = W.cols, m = a.rows;
    P.gemm = m > 1 ? k.gemm_for(W.type) : nullptr;
    P.dot2 = m == 1 ? k.dot2_for(W.type) : nullptr;
    thread_local std::vector<uint8_t> au8;
    const bool folded = W.type == static_cast<uint32_t>(GgmlType::Q3_5F);
    if (m > 1 && ((W.type == static_cast<uint32_t>(GgmlType::Q3_5) && k.gemm_rows_q3_5) || (folded && k.gemm_rows_q3_5f_few))) {
        // Offset-binary activations once per call for the q3.5 block GEMM.
        au8.resize(a.qs.size());
        for (size_t i = 0; i < au8.size(); ++i) au8[i] = static_cast<uint8_t>(a.qs[i] ^ 0x80);
        P.au8 = au8.data();
    }
    thread_local std::vector<uint8_t> packed;
    if (m >= CpuKernels::kQ3_5fAmxMinActs && folded && k.gemm_rows_q3_5f) {
        // B tiles once per call for the AMX block GEMM of folded q3.5 rows.
        packed.resize(q3_5f_packed_bytes(n, m));
        k.pack_acts_q3_5f(a.qs.data(), n, m, packed.data());
        P.packed = packed.data();
    }
}

// The `tasks` strategy over the row blocks (kR rows) of one or more products of the same
// activations: one parallel region, 8 (one activation row) or 32 tasks per thread, Ys[i] = product i.
void run_task_pool(std::span<const Product* const> P, std::span<float* const> Ys, int64_t kR) {
    constexpr size_t kMax = 4;
    PL_CHECK(P.size() <= kMax && P.size() == Ys.size(), "run_task_pool: {} products, {} outputs", P.size(), Ys.size());
    std::array<int64_t, kMax + 1> first{};  // first global block of each product
    for (size_t i = 0; i < P.size(); ++i) first[i + 1] = first[i] + (P[i]->W.rows + kR - 1) / kR;
    const int64_t total = first[P.size()], n = P[0]->a.n, m = P[0]->a.rows;
    // A decode block (one activation row) takes well under a microsecond, so tasks stay coarse
    // there; with several activation rows a block takes microseconds and finer tasks cut the wait
    // for the last one (libgomp's share of a 64-token prompt on the 7B went from 9 % to 4 %,
    // together with the per-entry steps going parallel).
    const int64_t per_thread = m > 1 ? 32 : 8;
    const int64_t grain = std::max<int64_t>(1, total / (per_thread * omp_get_max_threads()));
    // A task is `grain` consecutive blocks, run as one range per product it touches (so that a
    // decode task can stream two halves of its rows at once, Product::run).
    const int64_t tasks = (total + grain - 1) / grain;
#pragma omp parallel
#pragma omp single
#pragma omp taskloop grainsize(1)
    for (int64_t c = 0; c < tasks; ++c) {
        const int64_t end = std::min(total, (c + 1) * grain);
        for (int64_t g = c * grain; g < end;) {
            size_t i = 0;
            while (g >= first[i + 1]) ++i;
            const int64_t b0 = g - first[i], b1 = std::min(end, first[i + 1]) - first[i], rows = P[i]->W.rows;
            P[i]->run(b0 * kR, std::min(rows, b1 * kR), 0, n, 0, m, Ys[i], rows);
            g = first[i] + b1;
        }
    }
}

}  // namespace

void matmul_q8a(const WeightView& W, const Q8Acts& a, float* Y, const CpuKernels& k, Threading threading) {
    const DotQ8AFn dot = k.dot_for(W.type);
    PL_CHECK(dot && a.n == W.cols, "matmul_q8a: no kernel for {} or width mismatch ({} vs {})", W.name, a.n, W.cols);
    const int64_t rows = W.rows, n = W.cols, m = a.rows;
    Product P{W, a, k, dot};
    prepare_product(P, W, a, k);
    // Row blocks stay whole for the block GEMMs.
    const int64_t kR = P.packed ? CpuKernels::kGemmRowsQ3_5f : CpuKernels::kGemmRowsQ3_5;
    // Pieces of activation rows start on the AMX GEMM's 16-token blocks; folded rows cut into
    // columns only on whole super-groups (quant/q3_5_fold.h).
    const int64_t t_align = P.packed ? kQ3_5fTileTokens : 1;
    const int64_t k_align = W.type == static_cast<uint32_t>(GgmlType::Q3_5F) ? int64_t{256} * kQ3_5FoldSuper : 256;
    const int64_t blocks = (rows + kR - 1) / kR;
    switch (threading) {
        case Threading::Rows: {
            // schedule(static)'s split of the blocks, each thread's share as one range.
#pragma omp parallel
            {
                const auto [b0, b1] = split(0, blocks, omp_get_num_threads(), omp_get_thread_num(), 1);
                P.run(b0 * kR, std::min(rows, b1 * kR), 0, n, 0, m, Y, rows);
            }
            return;
        }
        case Threading::Tasks: {
            const Product* ps[] = {&P};
            float* ys[] = {Y};
            run_task_pool(ps, ys, kR);
            return;
        }
        case Threading::Tiled: {
            const int64_t tile = std::max<int64_t>(kR, l2_bytes() / 2 / static_cast<int64_t>(W.row_bytes) / kR * kR);
            const int64_t chunk = std::max(t_align, l2_bytes() / 4 / n / t_align * t_align);
            const int64_t tiles = (rows + tile - 1) / tile;
#pragma omp parallel for schedule(dynamic, 1)
            for (int64_t i = 0; i < tiles; ++i)
                for (int64_t t0 = 0; t0 < m; t0 += chunk)
                    P.run(i * tile, std::min(rows, (i + 1) * tile), 0, n, t0, std::min(m, t0 + chunk), Y, rows);
            return;
        }
        case Threading::Nested: {
            // threads = row parts x second-level parts (2 when the team is even, else 1).
            const int T = omp_get_max_threads();
            const int P2 = (T % 2 == 0 && (m > 1 || n >= 2 * 256)) ? 2 : 1;
            const int PR = std::max(1, T / P2);
            thread_local std::vector<float> part;
            if (m == 1 && P2 > 1) part.assign(static_cast<size_t>(P2) * static_cast<size_t>(rows), 0.0f);
            float* pp = part.data();
#pragma omp parallel num_threads(PR * P2)
            {
                const int id = omp_get_thread_num();
                const int ir = id / P2, i2 = id % P2;
                auto [r0, r1] = split(0, rows, PR, ir, kR);
                if (m == 1 && P2 > 1) {
                    auto [k0, k1] = split(0, n, P2, i2, k_align);
                    P.run(r0, r1, k0, k1, 0, 1, pp + static_cast<size_t>(i2) * rows, 0);
#pragma omp barrier
#pragma omp for schedule(static)
                    for (int64_t r = 0; r < rows; ++r) {
                        float s = 0.0f;
                        for (int j = 0; j < P2; ++j) s += pp[static_cast<size_t>(j) * rows + r];
                        Y[r] = s;
                    }
                } else {
                    auto [t0, t1] = split(0, m, P2, i2, t_align);
                    P.run(r0, r1, 0, n, t0, t1, Y, rows);
                }
            }
            return;
        }
    }
}

void matmul_q8a_multi(std::span<const WeightView* const> Ws, const Q8Acts& a, std::span<float* const> Ys,
                      const CpuKernels& k) {
    PL_CHECK(Ws.size() == Ys.size() && !Ws.empty() && Ws.size() <= 4, "matmul_q8a_multi: {} matrices, {} outputs (1 to 4)",
             Ws.size(), Ys.size());
    bool same = true;
    for (const WeightView* W : Ws) same = same && W->type == Ws[0]->type && W->cols == Ws[0]->cols;
    if (!same || matmul_threading() != Threading::Tasks) {
        for (size_t i = 0; i < Ws.size(); ++i) matmul_q8a(*Ws[i], a, Ys[i], k);
        return;
    }
    // One task pool over the row blocks of every matrix: one parallel region (one barrier)
    // instead of one per matrix. Each block is computed exactly as matmul_q8a computes it.
    const DotQ8AFn dot = k.dot_for(Ws[0]->type);
    PL_CHECK(dot && a.n == Ws[0]->cols, "matmul_q8a: no kernel for {} or width mismatch ({} vs {})", Ws[0]->name, a.n,
             Ws[0]->cols);
    Product base{*Ws[0], a, k, dot};
    prepare_product(base, *Ws[0], a, k);  // the activation layouts depend on type and width only
    std::array<std::optional<Product>, 4> store;
    std::array<const Product*, 4> ps{};
    for (size_t i = 0; i < Ws.size(); ++i)
        ps[i] = &store[i].emplace(Product{*Ws[i], a, k, dot, base.gemm, base.au8, base.packed, base.dot2});
    run_task_pool(std::span(ps.data(), Ws.size()), Ys, base.packed ? CpuKernels::kGemmRowsQ3_5f : CpuKernels::kGemmRowsQ3_5);
}

void matvec_q8a(const WeightView& W, const Q8Acts& a, float* y, const CpuKernels& k) {
    PL_CHECK(a.rows == 1, "matvec_q8a: {} activation rows (use matmul_q8a)", a.rows);
    matmul_q8a(W, a, y, k);
}

}  // namespace pl
