// SPDX-License-Identifier: MIT
#include "kernels/cpu/ops.h"

#include "core/check.h"
#include "core/fp16.h"
#include "kernels/cpu/kernels.h"
#include "quant/formats.h"

#include <algorithm>
#include <cmath>
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

void matmul_q8a(const WeightView& W, const Q8Acts& a, float* Y, const CpuKernels& k) {
    const DotQ8AFn dot = k.dot_for(W.type);
    PL_CHECK(dot && a.n == W.cols, "matmul_q8a: no kernel for {} or width mismatch ({} vs {})", W.name, a.n, W.cols);
    const int64_t rows = W.rows;
    const int64_t n = a.rows;
    if (n > 1 && W.type == static_cast<uint32_t>(GgmlType::Q3_5) && k.gemm_rows_q3_5) {
        // Offset-binary activations once per call, then blocks of weight rows against all of them.
        thread_local std::vector<uint8_t> au8;
        au8.resize(a.qs.size());
        for (size_t i = 0; i < au8.size(); ++i) au8[i] = static_cast<uint8_t>(a.qs[i] ^ 0x80);
        constexpr int64_t kR = CpuKernels::kGemmRowsQ3_5;
        const int64_t blocks = (rows + kR - 1) / kR;
        const uint8_t* src = au8.data();
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t r0 = b * kR;
            k.gemm_rows_q3_5(W.row(r0), W.row_bytes, std::min(kR, rows - r0), W.cols, src, a.d.data(), n, Y + r0, rows);
        }
        return;
    }
    const GemmQ8AFn gemm = n > 1 ? k.gemm_for(W.type) : nullptr;
    // Weight-stationary: each weight row is streamed from memory once and used for all n
    // activation rows while it sits in L1.
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* wr = W.row(r);
        if (gemm) {
            gemm(wr, W.cols, a.qs.data(), a.d.data(), a.sum.data(), n, Y + r, rows);
        } else {
            for (int64_t i = 0; i < n; ++i) Y[i * rows + r] = dot(wr, a.row_qs(i), a.row_d(i), a.row_sum(i), W.cols);
        }
    }
}

void matvec_q8a(const WeightView& W, const Q8Acts& a, float* y, const CpuKernels& k) {
    PL_CHECK(a.rows == 1, "matvec_q8a: {} activation rows (use matmul_q8a)", a.rows);
    matmul_q8a(W, a, y, k);
}

}  // namespace pl
