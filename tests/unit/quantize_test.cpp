// SPDX-License-Identifier: MIT
// Reference quantizers (quant/quantize.h):
//  * golden bytes: a fixed input quantized by GGML itself (ggml_quantize_chunk of the ggml vendored
//    in ggml-python 0.0.45, built from source) for Q3_K/Q4_K/Q6_K/Q4_0/Q5_0/Q8_0, plain and with an
//    importance vector; ours must give the same bytes (Q8_0 with importance is our own algorithm,
//    GGML ignores importance there: pinned against our reviewed output). The gguf Python package
//    has no K-quant quantizers, so GGML is the oracle;
//  * the plain QuantizeFn equals the type table's quantize_row (Q3_K/Q4_K/Q6_K are wired there);
//  * round-trip error budgets; importance weighting lowers the importance-weighted error on data
//    with skewed importance; odd block counts; no write past the last block; degenerate inputs.
#include "quant/formats.h"
#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace pl {
namespace {

// Deterministic input without <random> distributions (whose output is implementation-defined):
// 2 rows of 512, values k * 1e-4 for k in [-10000, 10000], every 97th scaled by 8, and the first
// 256 values of row 1 zero (an all-zero super-block). Importance: 512 values in [0.01, 10], the
// first 4 columns of every 64 scaled by 50.
constexpr int64_t kCols = 512, kRows = 2;
void golden_input(std::vector<float>& x, std::vector<float>& imp) {
    x.assign(kCols * kRows, 0.0f);
    imp.assign(kCols, 0.0f);
    uint32_t s = 12345u;
    auto next = [&] {
        s = s * 1664525u + 1013904223u;
        return static_cast<int>(s >> 9);
    };
    for (int64_t i = 0; i < kCols * kRows; ++i) {
        const float v = static_cast<float>(next() % 20001 - 10000) * 1e-4f;
        x[i] = (i % 97 == 0) ? v * 8.0f : v;
        if (i >= kCols && i < kCols + 256) x[i] = 0.0f;
    }
    for (int64_t j = 0; j < kCols; ++j)
        imp[j] = static_cast<float>(next() % 1000 + 1) * 0.01f * (j % 64 < 4 ? 50.0f : 1.0f);
}

uint64_t fnv1a(const std::vector<uint8_t>& b) {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t c : b) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::vector<uint8_t> quantize_rows(GgmlType t, const std::vector<float>& x, int64_t cols, const float* imp) {
    const size_t rb = *row_bytes(static_cast<uint32_t>(t), cols);
    const int64_t rows = std::ssize(x) / cols;
    std::vector<uint8_t> q(rb * static_cast<size_t>(rows));
    QuantizeFn fn = quantize_fn(t);
    EXPECT_NE(fn, nullptr);
    for (int64_t r = 0; r < rows; ++r) fn(x.data() + r * cols, q.data() + rb * static_cast<size_t>(r), cols, imp);
    return q;
}

std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    type_traits(t)->dequantize_row(q.data(), y.data(), n);
    return y;
}

TEST(QuantizeGolden, MatchesGgmlBytes) {
    struct Case {
        GgmlType type;
        bool weighted;
        uint64_t fnv;
    };
    // FNV-1a 64 of the 2 quantized rows, as produced by GGML (see the file comment).
    const Case cases[] = {
        {GgmlType::Q3_K, false, 0x5e3ca0373ce4562full}, {GgmlType::Q3_K, true, 0x0d680423c56638c5ull},
        {GgmlType::Q4_K, false, 0x1559a6fdcc491e71ull}, {GgmlType::Q4_K, true, 0xf718e1c12cb1a272ull},
        {GgmlType::Q6_K, false, 0x6ace07f06a907ddaull}, {GgmlType::Q6_K, true, 0x8be93caf834dfc89ull},
        {GgmlType::Q4_0, false, 0x96eb5ee0682813b5ull}, {GgmlType::Q4_0, true, 0xff5ab8c5505c1cccull},
        {GgmlType::Q5_0, false, 0xf6536df97eb94767ull}, {GgmlType::Q5_0, true, 0x99fe76ec88d283c9ull},
        {GgmlType::Q8_0, false, 0x136c528d5c5cd60dull},
        {GgmlType::Q8_0, true, 0xce0cca5dd48f7e99ull},  // ours (GGML has no weighted Q8_0)
    };
    std::vector<float> x, imp;
    golden_input(x, imp);
    for (const Case& c : cases) {
        const auto q = quantize_rows(c.type, x, kCols, c.weighted ? imp.data() : nullptr);
        EXPECT_EQ(fnv1a(q), c.fnv) << type_traits(c.type)->name << (c.weighted ? " with importance" : " plain");
    }
}

TEST(QuantizeGolden, Q3KFirstBlockBytes) {
    // The first Q3_K super-block of the golden input, byte for byte (GGML's output): hmask[32],
    // qs[64], scales[12], d (fp16 little-endian). A layout change fails here loudly.
    static const uint8_t kExpected[110] = {
        0xfd, 0x91, 0xbd, 0xba, 0x2f, 0x88, 0x5b, 0x6f, 0xca, 0x95, 0x0b, 0xbb, 0x5e, 0x9b, 0x1e, 0x3a,
        0x3b, 0xe1, 0x3d, 0x06, 0x16, 0x2d, 0xf3, 0xb4, 0x5b, 0x9f, 0x57, 0x79, 0x89, 0x8c, 0x44, 0x26,
        0x53, 0x1b, 0x2a, 0x77, 0x31, 0x12, 0x0b, 0x0b, 0x11, 0xdd, 0x6d, 0x03, 0x11, 0x07, 0x37, 0x4d,
        0x9a, 0x3d, 0x86, 0x9f, 0xe6, 0x3d, 0x15, 0x4e, 0x64, 0xc8, 0xf2, 0x63, 0x1a, 0xab, 0xfe, 0x1c,
        0x2e, 0xb8, 0x0b, 0xe1, 0x71, 0xbe, 0x1f, 0x5d, 0x45, 0xf1, 0xf9, 0xf8, 0x99, 0x7e, 0xf5, 0xbc,
        0xf0, 0x6b, 0x4f, 0xaa, 0x11, 0x01, 0x35, 0xae, 0x0f, 0x45, 0xac, 0xb9, 0x17, 0x4b, 0x45, 0xcb,
        0x99, 0x95, 0xab, 0xba, 0xd5, 0x69, 0x60, 0x6b, 0x99, 0x96, 0x91, 0x95, 0x9d, 0xa9,
    };
    std::vector<float> x, imp;
    golden_input(x, imp);
    std::vector<uint8_t> q(110);
    quantize_row_q3_k_ref(x.data(), q.data(), 256);
    EXPECT_EQ(std::memcmp(q.data(), kExpected, sizeof kExpected), 0);
    // The block decodes to the input within Q3_K's error (3 bits; outliers x8 every 97).
    const auto y = dequantize(GgmlType::Q3_K, q, 256);
    double num = 0, den = 0;
    for (int i = 0; i < 256; ++i) {
        num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
        den += double(x[i]) * x[i];
    }
    EXPECT_LT(num / den, 0.06);
}

TEST(QuantizeFn, PlainEqualsTypeTable) {
    std::vector<float> x, imp;
    golden_input(x, imp);
    for (GgmlType t : {GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0,
                       GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::F16, GgmlType::BF16, GgmlType::F32}) {
        const TypeTraits* tr = type_traits(t);
        ASSERT_NE(tr->quantize_row, nullptr) << tr->name;
        std::vector<uint8_t> a(*row_bytes(static_cast<uint32_t>(t), std::ssize(x)));
        tr->quantize_row(x.data(), a.data(), std::ssize(x));
        // The whole buffer as one row for the plain path (no row-level statistics without importance).
        std::vector<uint8_t> b(a.size());
        quantize_fn(t)(x.data(), b.data(), std::ssize(x), nullptr);
        EXPECT_EQ(a, b) << tr->name;
    }
    EXPECT_EQ(quantize_fn(GgmlType::Q2_K), nullptr);
    EXPECT_EQ(quantize_fn(GgmlType::IQ4_NL), nullptr);
    EXPECT_TRUE(uses_importance(static_cast<uint32_t>(GgmlType::Q3_K)));
    EXPECT_FALSE(uses_importance(static_cast<uint32_t>(GgmlType::Q4_1)));
}

std::vector<float> gaussian(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    return x;
}

TEST(QuantizeRoundTrip, ErrorWithinBudget) {
    // Budgets about 1.3x the normalised MSE measured on this data (Gaussian weights): Q3_K 0.0227,
    // Q4_K 0.0052, Q6_K 0.00032.
    struct Case {
        GgmlType type;
        double budget;
    };
    const Case cases[] = {{GgmlType::Q3_K, 0.030}, {GgmlType::Q4_K, 0.0068}, {GgmlType::Q6_K, 0.00042}};
    const auto x = gaussian(256 * 64, 3);
    for (const Case& c : cases) {
        const auto q = quantize_rows(c.type, x, 1024, nullptr);
        const auto y = dequantize(c.type, q, std::ssize(x));
        double num = 0, den = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
            den += double(x[i]) * x[i];
        }
        EXPECT_LE(num / den, c.budget) << type_traits(c.type)->name;
        RecordProperty(std::string("nmse_") + type_traits(c.type)->name, std::to_string(num / den));
    }
}

TEST(QuantizeImportance, LowersWeightedError) {
    // Heavy-tailed weights; importance skewed like real activations: a few columns 100x others.
    const int64_t cols = 1024, rows = 32;
    std::mt19937 rng(11);
    std::student_t_distribution<float> td(4.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(cols * rows)), imp(static_cast<size_t>(cols));
    for (auto& v : x) v = 0.02f * td(rng);
    for (auto& v : imp) v = ud(rng) < 0.05f ? 100.0f * (0.5f + ud(rng)) : 0.5f + ud(rng);
    for (GgmlType t : {GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
        double err[2] = {0, 0};
        for (int w = 0; w < 2; ++w) {
            const auto q = quantize_rows(t, x, cols, w ? imp.data() : nullptr);
            const auto y = dequantize(t, q, std::ssize(x));
            for (size_t i = 0; i < x.size(); ++i) {
                const double d = double(x[i]) - y[i];
                err[w] += imp[i % static_cast<size_t>(cols)] * d * d;
            }
        }
        // Measured ratios weighted / plain: Q3_K 0.47, Q4_K 0.34, Q6_K 0.57, Q4_0 0.59, Q5_0 0.61,
        // Q8_0 0.58. Require at least 20% lower.
        EXPECT_LT(err[1], 0.8 * err[0]) << type_traits(t)->name << ": plain " << err[0] << " weighted " << err[1];
        RecordProperty(std::string("weighted_gain_") + type_traits(t)->name, std::to_string(err[1] / err[0]));
    }
}

TEST(QuantizeRoundTrip, OddBlockCountsAndNoOverrun) {
    // Rows of k blocks: the plain quantizers are per block, so a row equals its blocks quantized one
    // at a time; every quantizer (plain and weighted) writes exactly row_bytes and no further.
    const auto x = gaussian(256 * 33, 5);
    std::vector<float> imp(x.size());
    for (size_t i = 0; i < imp.size(); ++i) imp[i] = 1.0f + static_cast<float>(i % 7);
    for (GgmlType t : {GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
        const TypeTraits* tr = type_traits(t);
        for (int64_t k : {1, 2, 3, 7, 33}) {
            const int64_t n = tr->block_elems * k;
            const size_t rb = *row_bytes(static_cast<uint32_t>(t), n);
            for (int w = 0; w < 2; ++w) {
                std::vector<uint8_t> row(rb + 64, 0xA5);
                quantize_fn(t)(x.data(), row.data(), n, w ? imp.data() : nullptr);
                for (size_t i = rb; i < row.size(); ++i) ASSERT_EQ(row[i], 0xA5) << tr->name << " k=" << k << " overrun";
                if (w == 0) {
                    std::vector<uint8_t> one(tr->block_bytes);
                    for (int64_t b = 0; b < k; ++b) {
                        quantize_fn(t)(x.data() + b * tr->block_elems, one.data(), tr->block_elems, nullptr);
                        ASSERT_EQ(std::memcmp(one.data(), row.data() + b * tr->block_bytes, one.size()), 0)
                            << tr->name << " k=" << k << " block " << b;
                    }
                }
                // Decodes within a loose bound (catches garbage, not quality).
                std::vector<float> y(static_cast<size_t>(n));
                tr->dequantize_row(row.data(), y.data(), n);
                double num = 0, den = 0;
                for (int64_t i = 0; i < n; ++i) {
                    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
                    den += double(x[i]) * x[i];
                }
                EXPECT_LT(num / den, 0.1) << tr->name << " k=" << k << " w=" << w;
            }
        }
    }
}

TEST(QuantizeRoundTrip, DegenerateInputs) {
    const int64_t n = 512;
    std::vector<float> zeros(n, 0.0f), spike(n, 0.0f), constant(n, 0.25f), huge(n), zero_imp(n, 0.0f), imp(n, 1.0f);
    spike[300] = -3.0f;
    for (int64_t i = 0; i < n; ++i) huge[i] = (i % 2 ? 1.0f : -1.0f) * 3.0e4f * static_cast<float>(i % 13 + 1) / 13.0f;
    for (GgmlType t : {GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
        const char* name = type_traits(t)->name;
        for (const float* im : std::initializer_list<const float*>{nullptr, imp.data(), zero_imp.data()}) {
            auto y = dequantize(t, quantize_rows(t, zeros, n, im), n);
            for (float v : y) ASSERT_EQ(v, 0.0f) << name;
            y = dequantize(t, quantize_rows(t, spike, n, im), n);
            for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(y[i])) << name;
            if (im != zero_imp.data()) EXPECT_NEAR(y[300], -3.0f, 0.05f) << name;
            y = dequantize(t, quantize_rows(t, constant, n, im), n);
            if (im != zero_imp.data())
                for (float v : y) ASSERT_NEAR(v, 0.25f, 0.01f) << name;
            y = dequantize(t, quantize_rows(t, huge, n, im), n);
            for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(y[i])) << name << " huge";
        }
    }
}

}  // namespace
}  // namespace pl
