// SPDX-License-Identifier: MIT
// Float reference ops against closed forms, and matvec over every readable type against
// dequantize-then-naive-dot.
#include "test_data.h"

#include "kernels/cpu/ops.h"
#include "quant/formats.h"

#include <cmath>
#include <random>

namespace {

TEST(Ops, RmsnormMatchesFormula) {
    std::vector<float> x = {1, -2, 3, -4}, w = {1, 0.5f, 2, 1}, out(4);
    pl::rmsnorm(out.data(), x.data(), w.data(), 4, 1e-5f);
    const float s = 1.0f / std::sqrt((1 + 4 + 9 + 16) / 4.0f + 1e-5f);
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[i], w[i] * s * x[i]);
}

TEST(Ops, SoftmaxSumsToOneAndIsShiftInvariant) {
    std::vector<float> a = {1000, 1001, 999}, b = {0, 1, -1};
    pl::softmax(a.data(), 3);
    pl::softmax(b.data(), 3);
    EXPECT_NEAR(a[0] + a[1] + a[2], 1.0f, 1e-6f);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(a[i], b[i], 1e-6f);
    EXPECT_NEAR(b[1], std::exp(1.0) / (1 + std::exp(1.0) + std::exp(-1.0)), 1e-6);
}

TEST(Ops, RopeRotatesPairsByPositionAndFreqFactors) {
    const int head_dim = 8, n_heads = 2, n_rot = 6, pos = 7;
    const float base = 500000.0f;
    std::vector<float> v(16), orig;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : v) x = nd(rng);
    orig = v;
    const float factors[3] = {1.0f, 2.0f, 8.0f};
    pl::rope(v.data(), n_heads, head_dim, n_rot, pos, base, factors);
    for (int h = 0; h < n_heads; ++h) {
        for (int i = 0; i < head_dim; i += 2) {
            const float* o = &orig[h * head_dim + i];
            const float* r = &v[h * head_dim + i];
            if (i >= n_rot) {  // beyond the rotary dims: untouched
                EXPECT_EQ(r[0], o[0]);
                EXPECT_EQ(r[1], o[1]);
                continue;
            }
            const double theta = pos * std::pow(static_cast<double>(base), -static_cast<double>(i) / n_rot) / factors[i / 2];
            EXPECT_NEAR(r[0], o[0] * std::cos(theta) - o[1] * std::sin(theta), 1e-5);
            EXPECT_NEAR(r[1], o[0] * std::sin(theta) + o[1] * std::cos(theta), 1e-5);
            EXPECT_NEAR(r[0] * r[0] + r[1] * r[1], o[0] * o[0] + o[1] * o[1], 1e-4);  // a rotation
        }
    }
}

TEST(Ops, SwigluIsSiluTimesUp) {
    std::vector<float> g = {-3, 0, 0.5f, 4}, u = {2, 5, -1, 0.25f};
    auto expect = g;
    for (int i = 0; i < 4; ++i) expect[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    pl::swiglu(g.data(), u.data(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(g[i], expect[i], 1e-6f);
}

TEST(Ops, DotF32OddLengths) {
    for (int n : {1, 7, 8, 9, 33, 100}) {
        std::vector<float> a(n), b(n);
        double ref = 0;
        for (int i = 0; i < n; ++i) {
            a[i] = 0.5f * i - 3;
            b[i] = 1.0f / (i + 1);
            ref += static_cast<double>(a[i]) * b[i];
        }
        EXPECT_NEAR(pl::dot_f32(a.data(), b.data(), n), ref, 1e-4 * (1 + std::abs(ref))) << n;
    }
}

// matvec on each type with both a reference quantizer and dequantizer equals the naive product of
// the dequantized matrix.
TEST(Ops, MatvecEveryWritableTypeMatchesDequantizedProduct) {
    const int64_t rows = 37, cols = 256;
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> w(rows * cols), x(cols);
    for (auto& v : w) v = nd(rng);
    for (auto& v : x) v = nd(rng);
    int tested = 0;
    for (const char* name : {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"}) {
        const pl::TypeTraits* t = pl::type_traits_by_name(name);
        ASSERT_TRUE(t && t->quantize_row && (t->dequantize_row || t->type == pl::GgmlType::F32)) << name;
        const size_t rb = *pl::row_bytes(static_cast<uint32_t>(t->type), cols);
        std::vector<uint8_t> data(rb * rows);
        for (int64_t r = 0; r < rows; ++r) t->quantize_row(&w[r * cols], data.data() + r * rb, cols);
        pl::WeightView W{name, static_cast<uint32_t>(t->type), rows, cols, rb, data.data()};
        std::vector<float> y(rows), deq(cols);
        pl::matvec(W, x.data(), y.data());
        for (int64_t r = 0; r < rows; ++r) {
            pl::dequantize_row(W, r, deq.data());
            double ref = 0;
            for (int64_t c = 0; c < cols; ++c) ref += static_cast<double>(deq[c]) * x[c];
            EXPECT_NEAR(y[r], ref, 1e-4 * (1 + std::abs(ref))) << name << " row " << r;
        }
        ++tested;
    }
    EXPECT_EQ(tested, 6);
}

}  // namespace
