// SPDX-License-Identifier: MIT
// q3.5: the rotation, the E4M4 scale code, hand-built blocks, golden bytes of the reference
// quantizer, and its error on Gaussian and heavy-tailed weights (docs/formats.md's figures).
#include "quant/formats.h"
#include "quant/q3_5.h"
#include "quant/q4_0.h"
#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using pl::BlockQ3_5;

double nrmse(const std::vector<float>& x, const std::vector<float>& y) {
    double e = 0, s = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        e += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
        s += static_cast<double>(x[i]) * x[i];
    }
    return e / s;
}

std::vector<float> roundtrip(pl::GgmlType t, const std::vector<float>& x) {
    const pl::TypeTraits* tt = pl::type_traits(t);
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<uint8_t> q(*pl::row_bytes(static_cast<uint32_t>(t), n));
    tt->quantize_row(x.data(), q.data(), n);
    std::vector<float> y(x.size());
    tt->dequantize_row(q.data(), y.data(), n);
    return y;
}

TEST(Q3_5, TypeTableEntry) {
    const pl::TypeTraits* tt = pl::type_traits(pl::kQ3_5TypeId);
    ASSERT_NE(tt, nullptr);
    EXPECT_STREQ(tt->name, "q3.5");
    EXPECT_EQ(tt->block_elems, 32);
    EXPECT_EQ(tt->block_bytes, 14u);  // 14 * 8 / 32 = 3.5 bits per weight, scales included
    EXPECT_TRUE(tt->rotated_input);
    EXPECT_TRUE(tt->custom);
    EXPECT_EQ(pl::type_traits_by_name("Q3.5"), tt);
    EXPECT_EQ(*pl::row_bytes(pl::kQ3_5TypeId, 576), 18u * 14u);  // SmolLM2 rows: 18 blocks
    EXPECT_FALSE(pl::row_bytes(pl::kQ3_5TypeId, 48).has_value());
}

TEST(Q3_5, ScaleCodeIsE4M4) {
    EXPECT_EQ(pl::q3_5_scale(0), 0.0f);
    EXPECT_EQ(pl::q3_5_scale(0x01), std::ldexp(1.0f + 1.0f / 16, -19));
    EXPECT_EQ(pl::q3_5_scale(0x10), std::ldexp(1.0f, -18));
    EXPECT_EQ(pl::q3_5_scale(0x4A), std::ldexp(1.0f + 10.0f / 16, 4 - 19));
    EXPECT_EQ(pl::q3_5_scale(0xFF), std::ldexp(1.0f + 15.0f / 16, 15 - 19));
    for (int k = 2; k < 256; ++k) EXPECT_GT(pl::q3_5_scale(k), pl::q3_5_scale(k - 1)) << k;  // monotonic
}

TEST(Q3_5, RotationIsOrthonormalAndInvertible) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    std::vector<float> x(96);
    for (auto& v : x) v = nd(rng);
    std::vector<float> y = x;
    pl::rotate_q3_5(y.data(), 96);
    for (int c = 0; c < 3; ++c) {  // the norm of every chunk is kept
        double a = 0, b = 0;
        for (int i = 0; i < 32; ++i) {
            a += x[c * 32 + i] * x[c * 32 + i];
            b += y[c * 32 + i] * y[c * 32 + i];
        }
        EXPECT_NEAR(a, b, 1e-4 * a);
    }
    pl::unrotate_q3_5(y.data(), 96);
    for (int i = 0; i < 96; ++i) EXPECT_NEAR(y[i], x[i], 1e-5f);
    // A unit spike spreads over the whole chunk with magnitude 1/sqrt(32) and the sign pattern.
    std::vector<float> e(32, 0.0f);
    e[0] = 1.0f;
    pl::rotate_q3_5(e.data(), 32);
    const float s0 = (pl::kQ3_5Signs & 1u) ? -1.0f : 1.0f;
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(e[i], s0 / std::sqrt(32.0f), 1e-7f);
}

TEST(Q3_5, HandBuiltBlockDequantizes) {
    // Codes in the rotated domain: element i has magnitude index i % 4, negative when i % 3 == 0;
    // sub-block 0 scale code 0x4A, sub-block 1 the zero code.
    BlockQ3_5 b{};
    for (int i = 0; i < 32; ++i) {
        if ((i % 4) & 1) b.planes[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
        if ((i % 4) & 2) b.planes[4 + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
        if (i % 3 == 0) b.planes[8 + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    }
    b.scales[0] = 0x4A;
    b.scales[1] = 0x00;
    std::vector<float> want(32);
    for (int i = 0; i < 32; ++i) {
        const float d = i < 16 ? std::ldexp(1.0f + 10.0f / 16, -15) : 0.0f;
        want[i] = (i % 3 == 0 ? -1.0f : 1.0f) * d * pl::kQ3_5Mag[i % 4];
    }
    pl::unrotate_q3_5(want.data(), 32);
    std::vector<float> got(32);
    pl::dequantize_row_q3_5_ref(&b, got.data(), 32);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], want[i]) << i;
}

// Golden bytes: pin the layout and the quantizer's choices on a fixed input.
TEST(Q3_5, GoldenBytes) {
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[i] = 0.01f * static_cast<float>((i * 7) % 13 - 6) + (i == 5 ? 0.2f : 0.0f);
    BlockQ3_5 b{};
    pl::quantize_row_q3_5_ref(x.data(), &b, 32);
    const uint8_t golden[14] = {167, 101, 123, 136, 86, 109, 0, 26, 161, 165, 161, 229, 132, 146};
    EXPECT_EQ(std::memcmp(&b, golden, 14), 0) << [&] {
        std::string s;
        for (int i = 0; i < 14; ++i) s += std::to_string(reinterpret_cast<const uint8_t*>(&b)[i]) + ", ";
        return s;
    }();
}

TEST(Q3_5, ZerosAndNonFiniteAreSafe) {
    std::vector<float> z(64, 0.0f);
    auto y = roundtrip(pl::GgmlType::Q3_5, z);
    for (float v : y) EXPECT_EQ(v, 0.0f);
    // Huge values saturate at 127 * max scale instead of overflowing.
    std::vector<float> h(32, 1e6f);
    EXPECT_EQ(pl::q3_5_saturated_subblocks(h.data(), 32), 2);
    auto yh = roundtrip(pl::GgmlType::Q3_5, h);
    for (float v : yh) EXPECT_TRUE(std::isfinite(v));
}

// Weight-level error after the scale search (docs/formats.md): Gaussian ~0.021, and the rotation
// keeps Student-t(3) weights at the same level, where Q4_0's absmax scale suffers.
TEST(Q3_5, ErrorOnGaussianAndHeavyTailedWeights) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::student_t_distribution<float> td(3.0f);
    const int64_t n = 32 * 4096;
    std::vector<float> g(n), t(n);
    for (auto& v : g) v = nd(rng);
    for (auto& v : t) v = 0.02f * td(rng);
    const double eg = nrmse(g, roundtrip(pl::GgmlType::Q3_5, g));
    const double et = nrmse(t, roundtrip(pl::GgmlType::Q3_5, t));
    EXPECT_GT(eg, 0.018);
    EXPECT_LT(eg, 0.023);
    EXPECT_LT(et, 0.022);
    const double q4t = nrmse(t, roundtrip(pl::GgmlType::Q4_0, t));
    EXPECT_LT(et, 1.3 * q4t) << "q4_0 on t(3): " << q4t;
}

}  // namespace
