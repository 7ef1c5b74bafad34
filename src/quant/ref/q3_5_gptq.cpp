// SPDX-License-Identifier: MIT
// q3.5 with an importance matrix (imatrix), GPTQ-style. An imatrix weights the error of input
// column k by imp_k; in q3.5's rotated domain that metric is H = R diag(imp) R^T, not diagonal, so
// per-coordinate weights cannot express it (quant/q3_5.h). Instead, per full group: the scales are
// chosen as without importance, then the 256 rotated values are rounded in order, each rounding
// error fed forward to the values not yet rounded through the upper Cholesky factor of H^-1
// (GPTQ, Frantar et al. 2022, on one 256-block with the imatrix diagonal as the Hessian). For the
// rotation, H_ij depends only on i ^ j: H_ij = WHT(imp)[i ^ j] / 256. Tail groups, and rows
// without importance, use the plain quantizer. With constant importance the result is exactly
// the plain quantizer's bytes (H is then a multiple of I).
#include "quant/q3_5.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace pl {
namespace {

constexpr int G = kQ3_5Group;
constexpr double kDamp = 0.01;  // H += kDamp * mean(diag H) * I, GPTQ's usual dampening

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), as floats, row-major G x G, for a symmetric
// positive semi-definite H (row-major, doubles), dampened by kDamp * mean(diag H).
std::vector<float> gptq_factor_of(std::vector<double> H) {
    double mean_diag = 0;
    for (int i = 0; i < G; ++i) mean_diag += H[static_cast<size_t>(i * G + i)];
    const double damp = kDamp * mean_diag / G + 1e-30;
    for (int i = 0; i < G; ++i) H[static_cast<size_t>(i * G + i)] += damp;
    std::vector<double> L(G * G, 0.0);  // H = L L^T
    for (int i = 0; i < G; ++i)
        for (int j = 0; j <= i; ++j) {
            double s = H[static_cast<size_t>(i * G + j)];
            for (int k = 0; k < j; ++k) s -= L[i * G + k] * L[j * G + k];
            L[i * G + j] = i == j ? std::sqrt(std::max(s, 1e-300)) : s / L[j * G + j];
        }
    std::vector<double> Li(G * G, 0.0);  // L^-1 (lower)
    for (int i = 0; i < G; ++i) {
        Li[i * G + i] = 1.0 / L[i * G + i];
        for (int j = 0; j < i; ++j) {
            double s = 0;
            for (int k = j; k < i; ++k) s -= L[i * G + k] * Li[k * G + j];
            Li[i * G + j] = s / L[i * G + i];
        }
    }
    std::vector<double> Hi(G * G, 0.0);  // H^-1 = L^-T L^-1
    for (int i = 0; i < G; ++i)
        for (int j = i; j < G; ++j) {
            double s = 0;
            for (int k = j; k < G; ++k) s += Li[k * G + i] * Li[k * G + j];
            Hi[i * G + j] = Hi[j * G + i] = s;
        }
    std::vector<double> U(G * G, 0.0);  // H^-1 = U^T U
    for (int i = 0; i < G; ++i) {
        double s = Hi[i * G + i];
        for (int k = 0; k < i; ++k) s -= U[k * G + i] * U[k * G + i];
        U[i * G + i] = std::sqrt(std::max(s, 1e-300));
        for (int j = i + 1; j < G; ++j) {
            double t = Hi[i * G + j];
            for (int k = 0; k < i; ++k) t -= U[k * G + i] * U[k * G + j];
            U[i * G + j] = t / U[i * G + i];
        }
    }
    return std::vector<float>(U.begin(), U.end());
}

// For a diagonal imatrix: H_ij = WHT(imp)[i ^ j] / G (the rotation of diag(imp)).
std::vector<float> gptq_factor(const float* imp) {
    std::vector<double> f(G);
    for (int m = 0; m < G; ++m) {
        double s = 0;
        for (int k = 0; k < G; ++k) s += (__builtin_popcount(static_cast<unsigned>(m & k)) & 1 ? -1.0 : 1.0) * imp[k];
        f[static_cast<size_t>(m)] = s / G;
    }
    std::vector<double> H(G * G);
    for (int i = 0; i < G; ++i)
        for (int j = 0; j < G; ++j) H[static_cast<size_t>(i * G + j)] = f[static_cast<size_t>(i ^ j)];
    return gptq_factor_of(std::move(H));
}

// Factors of recently seen importance groups (keyed by the 256 values themselves, so a vector
// freed and reallocated at the same address cannot alias). All rows of a tensor share them.
struct FactorCache {
    struct Entry {
        std::array<float, G> imp;
        std::shared_ptr<const std::vector<float>> U;
    };
    std::mutex mu;
    std::vector<Entry> entries;
    std::shared_ptr<const std::vector<float>> get(const float* imp) {
        {
            std::lock_guard<std::mutex> lock(mu);
            for (const Entry& e : entries)
                if (std::memcmp(e.imp.data(), imp, sizeof(float) * G) == 0) return e.U;
        }
        auto U = std::make_shared<const std::vector<float>>(gptq_factor(imp));
        std::lock_guard<std::mutex> lock(mu);
        if (entries.size() >= 128) entries.clear();  // a tensor's groups at most (28672 / 256 = 112)
        Entry e;
        std::memcpy(e.imp.data(), imp, sizeof(float) * G);
        e.U = U;
        entries.push_back(std::move(e));
        return U;
    }
};
FactorCache g_cache;

inline int nearest_mag(float z) {
    return (z > kQ3_5Thresholds[0]) + (z > kQ3_5Thresholds[1]) + (z > kQ3_5Thresholds[2]);
}

}  // namespace

namespace {

// GPTQ rounding of one full group (x: its G original values) into the group bytes p, whose
// scales the plain quantizer has already chosen; u: the group's factor (gptq_factor*).
void gptq_group(const float* x, uint8_t* p, const float* u) {
    float v[G];
    std::memcpy(v, x, sizeof v);
    rotate_q3_5(v, G);
    double c[G];
    for (int e = 0; e < G; ++e) c[e] = v[e];
    uint8_t* mags = p;
    uint8_t* signs = p + q3_5_signs_offset(G);
    const uint8_t* scales = p + q3_5_scales_offset(G);
    std::memset(mags, 0, G / 4);
    std::memset(signs, 0, G / 8);
    for (int e = 0; e < G; ++e) {
        const int i = e % (G / 4), t = e / (G / 4);
        const float d = q3_5_scale(scales[i / 4]);
        double q = 0;
        if (d > 0) {
            const float ce = static_cast<float>(c[e]);
            const int m = nearest_mag(std::fabs(ce) / d);
            const bool neg = std::signbit(ce);
            q = static_cast<double>(neg ? -d : d) * kQ3_5Mag[m];
            mags[i] = static_cast<uint8_t>(mags[i] | (m << (2 * t)));
            if (neg) signs[e >> 3] = static_cast<uint8_t>(signs[e >> 3] | (1u << (e & 7)));
        }
        const double err = (c[e] - q) / u[e * G + e];
        for (int j = e + 1; j < G; ++j) c[j] -= err * u[e * G + j];
    }
}

}  // namespace

void quantize_row_q3_5_imp(const float* x, void* dst, int64_t n, const float* imp) {
    quantize_row_q3_5(x, dst, n);  // the scales (and every tail group) of the plain quantizer
    if (!imp) return;
    auto* p = static_cast<uint8_t*>(dst);
    for (int64_t g0 = 0; g0 + G <= n; g0 += G, p += kQ3_5GroupBytes) {
        bool positive = false;
        for (int k = 0; k < G; ++k) positive = positive || imp[g0 + k] > 0.0f;
        if (!positive) continue;  // no information: keep the plain result
        const auto U = g_cache.get(imp + g0);
        gptq_group(x + g0, p, U->data());
    }
}

std::vector<std::vector<float>> q3_5_gptq_factors(const float* cov, int64_t n_groups) {
    std::vector<std::vector<float>> out(static_cast<size_t>(n_groups));
#pragma omp parallel for schedule(dynamic)
    for (int64_t g = 0; g < n_groups; ++g) {
        const float* C = cov + static_cast<size_t>(g) * G * G;
        double trace = 0;
        for (int i = 0; i < G; ++i) trace += C[i * G + i];
        if (!(trace > 0)) continue;  // never observed: the plain quantizer
        // H = R C R^T: rotate every row of C (C R^T, C symmetric), then every column.
        std::vector<float> A(C, C + G * G);
        for (int i = 0; i < G; ++i) rotate_q3_5(A.data() + i * G, G);
        std::vector<float> col(G);
        std::vector<double> H(G * G);
        for (int j = 0; j < G; ++j) {
            for (int i = 0; i < G; ++i) col[static_cast<size_t>(i)] = A[static_cast<size_t>(i * G + j)];
            rotate_q3_5(col.data(), G);
            for (int i = 0; i < G; ++i) H[static_cast<size_t>(i * G + j)] = col[static_cast<size_t>(i)];
        }
        for (int i = 0; i < G; ++i)  // symmetric up to float rounding: make it exactly so
            for (int j = 0; j < i; ++j) H[static_cast<size_t>(i * G + j)] = H[static_cast<size_t>(j * G + i)] =
                                            0.5 * (H[static_cast<size_t>(i * G + j)] + H[static_cast<size_t>(j * G + i)]);
        out[static_cast<size_t>(g)] = gptq_factor_of(std::move(H));
    }
    return out;
}

void quantize_row_q3_5_gptq(const float* x, void* dst, int64_t n, const std::vector<std::vector<float>>& factors) {
    quantize_row_q3_5(x, dst, n);
    auto* p = static_cast<uint8_t*>(dst);
    for (int64_t g0 = 0, g = 0; g0 + G <= n; g0 += G, ++g, p += kQ3_5GroupBytes)
        if (g < static_cast<int64_t>(factors.size()) && !factors[static_cast<size_t>(g)].empty())
            gptq_group(x + g0, p, factors[static_cast<size_t>(g)].data());
}

}  // namespace pl
