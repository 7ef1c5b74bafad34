// SPDX-License-Identifier: MIT
// q3.5: the rotation, the E4M4 scale code, hand-built blocks, golden bytes of the reference
// quantizer, and its error on Gaussian and heavy-tailed weights (docs/formats.md's figures).
#include "kernels/cpu/kernels.h"
#include "quant/formats.h"
#include "quant/q3_5.h"
#include "quant/q4_0.h"
#include "quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
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
    EXPECT_EQ(pl::q3_5_scale(0x01), std::ldexp(1.0f, -22));  // subnormal range: k * 2^-22
    EXPECT_EQ(pl::q3_5_scale(0x0F), std::ldexp(15.0f, -22));
    EXPECT_EQ(pl::q3_5_scale(0x10), std::ldexp(1.0f, -18));
    EXPECT_EQ(pl::q3_5_scale(0x4A), std::ldexp(1.0f + 10.0f / 16, 4 - 19));
    EXPECT_EQ(pl::q3_5_scale(0xFF), std::ldexp(1.0f + 15.0f / 16, 15 - 19));
    for (int k = 1; k < 256; ++k) EXPECT_GT(pl::q3_5_scale(k), pl::q3_5_scale(k - 1)) << k;  // monotonic
}

// Norms are kept per group and the inverse undoes the rotation; a unit spike spreads over its
// whole group with magnitude 1/sqrt(group) and the sign of bit 0 (H's first column is all ones).
TEST(Q3_5, RotationIsOrthonormalAndInvertible) {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    const int64_t n = 256 + 96;  // one full group and a 96-element tail (three 32-chunks)
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    std::vector<float> y = x;
    pl::rotate_q3_5(y.data(), n);
    const int64_t bounds[] = {0, 256, 288, 320, 352};
    for (int c = 0; c + 1 < 5; ++c) {
        double a = 0, b = 0;
        for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
            a += x[i] * x[i];
            b += y[i] * y[i];
        }
        EXPECT_NEAR(a, b, 1e-4 * a) << "piece " << c;
    }
    pl::unrotate_q3_5(y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i], 1e-5f);
    const float s0 = (pl::kQ3_5Signs[0] & 1u) ? -1.0f : 1.0f;
    for (int64_t g : {256, 32}) {
        std::vector<float> e(g, 0.0f);
        e[0] = 1.0f;
        pl::rotate_q3_5(e.data(), g);
        for (int64_t i = 0; i < g; ++i) EXPECT_NEAR(e[i], s0 / std::sqrt(static_cast<float>(g)), 1e-7f) << g << " " << i;
    }
}

// A group built by hand from the layout in quant/q3_5.h (not from the reference code): element e
// of a group of g has step p = g/4, t = e / p, i = e % p, its magnitude index in bits 2t..2t+1 of
// mags byte i, its sign in bit e of the sign bytes, its scale in byte (e % p) / 4 of the scales.
void check_hand_built_group(int64_t g) {
    const int64_t p = g / 4;
    std::vector<uint8_t> q(pl::q3_5_group_bytes(g), 0);
    uint8_t* signs = q.data() + g / 4;
    uint8_t* scales = q.data() + g * 3 / 8;
    std::vector<float> want(g);
    for (int64_t L = 0; L < g / 16; ++L) scales[L] = static_cast<uint8_t>(L == 1 ? 0 : 0x40 + 3 * L);
    for (int64_t e = 0; e < g; ++e) {
        const int64_t t = e / p, i = e % p;
        const int mag = static_cast<int>((e * 7 + e / 5) % 4);
        const bool neg = (e % 3) == 0;
        q[i] = static_cast<uint8_t>(q[i] | (mag << (2 * t)));
        if (neg) signs[e / 8] = static_cast<uint8_t>(signs[e / 8] | (1u << (e % 8)));
        const float d = pl::q3_5_scale(scales[i / 4]);
        want[e] = (neg ? -1.0f : 1.0f) * d * pl::kQ3_5Mag[mag];
    }
    pl::unrotate_q3_5(want.data(), g);
    std::vector<float> got(g);
    pl::dequantize_row_q3_5_ref(q.data(), got.data(), g);
    for (int64_t e = 0; e < g; ++e) EXPECT_EQ(got[e], want[e]) << "g=" << g << " e=" << e;
}

TEST(Q3_5, HandBuiltGroupsDequantize) {
    check_hand_built_group(256);  // a full group
    check_hand_built_group(64);   // tail groups
    check_hand_built_group(32);
    check_hand_built_group(224);
}

// Golden bytes: pin the layout and the quantizer's choices on a fixed input (a full group and a
// 32-element tail): the first 16 bytes (mags), the scale bytes, and an FNV-1a hash of all 126.
TEST(Q3_5, GoldenBytes) {
    const int64_t n = 288;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = 0.01f * static_cast<float>((i * 7) % 13 - 6) + (i % 41 == 5 ? 0.2f : 0.0f);
    std::vector<uint8_t> q(*pl::row_bytes(pl::kQ3_5TypeId, n));
    ASSERT_EQ(q.size(), 126u);
    pl::quantize_row_q3_5_ref(x.data(), q.data(), n);
    uint32_t h = 2166136261u;
    for (uint8_t b : q) h = (h ^ b) * 16777619u;
    auto dump = [&](size_t from, size_t len) {
        std::string s;
        for (size_t i = from; i < from + len; ++i) s += std::to_string(q[i]) + ", ";
        return s;
    };
    const uint8_t mags[16] = {16, 96, 76, 65, 110, 41, 232, 64, 122, 248, 52, 64, 176, 16, 0, 4};
    const uint8_t scales[16] = {148, 134, 131, 152, 144, 132, 140, 135, 135, 137, 148, 139, 132, 145, 129, 133};
    EXPECT_EQ(std::memcmp(q.data(), mags, 16), 0) << dump(0, 16);
    EXPECT_EQ(std::memcmp(q.data() + 96, scales, 16), 0) << dump(96, 16);
    EXPECT_EQ(h, 1323533129u) << h;
}

// Every ISA's quantizer writes the reference's bytes: Gaussian, heavy-tailed, tiny, huge, spiky,
// zero, NaN and infinite inputs, full groups and tails.
TEST(Q3_5, FastQuantizerEqualsReference) {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd;
    std::student_t_distribution<float> td(2.5f);
    int checked = 0;
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        for (int64_t n : {32, 96, 256, 576, 1056, 4096}) {
            for (int pattern = 0; pattern < 7; ++pattern) {
                std::vector<float> x(n);
                for (int64_t i = 0; i < n; ++i) {
                    switch (pattern) {
                        case 0: x[i] = 0.02f * nd(rng); break;
                        case 1: x[i] = 0.02f * td(rng); break;
                        case 2: x[i] = 1e-9f * nd(rng); break;
                        case 3: x[i] = 1e3f * nd(rng); break;
                        case 4: x[i] = (i % 97 == 3) ? 5.0f : 0.001f * nd(rng); break;
                        case 5: x[i] = (i / 32) % 2 ? 0.0f : 0.01f * nd(rng); break;
                        default: x[i] = i == 7 ? NAN : (i == 300 ? INFINITY : 0.02f * nd(rng)); break;
                    }
                }
                std::vector<uint8_t> a(*pl::row_bytes(pl::kQ3_5TypeId, n)), b(a.size());
                pl::quantize_row_q3_5_ref(x.data(), a.data(), n);
                k.quantize_row_q3_5(x.data(), b.data(), n);
                EXPECT_EQ(a, b) << pl::isa_name(isa) << " n=" << n << " pattern " << pattern;
                ++checked;
            }
        }
    }
    EXPECT_GE(checked, 6 * 7);
}

// The importance-aware quantizer: constant importance makes its metric a multiple of I, so it must
// give the plain quantizer's bytes exactly; skewed importance must lower the importance-weighted
// error sum_k imp_k (w_k - q_k)^2 in the original domain, which is what an imatrix asks for; no
// importance means the plain quantizer.
TEST(Q3_5, ImportanceQuantizerGptq) {
    std::mt19937 rng(21);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    const int64_t n = 1024 + 64;  // four full groups and a tail
    const int rows = 24;
    std::vector<float> flat(n, 2.5f), skew(n);
    std::exponential_distribution<float> ex(1.0f);
    for (auto& v : skew) v = std::pow(ex(rng), 3.0f) + 1e-3f;  // heavy-tailed, like real imatrices
    double plain_err = 0, gptq_err = 0;
    for (int r = 0; r < rows; ++r) {
        std::vector<float> x(n);
        for (auto& v : x) v = nd(rng);
        std::vector<uint8_t> a(*pl::row_bytes(pl::kQ3_5TypeId, n)), b(a.size()), c(a.size());
        pl::quantize_row_q3_5_ref(x.data(), a.data(), n);
        pl::quantize_row_q3_5_imp(x.data(), b.data(), n, flat.data());
        EXPECT_EQ(a, b) << "row " << r << ": constant importance must not change the bytes";
        pl::quantize_row_q3_5_imp(x.data(), c.data(), n, nullptr);
        EXPECT_EQ(a, c);
        pl::quantize_row_q3_5_imp(x.data(), b.data(), n, skew.data());
        std::vector<float> ya(n), yb(n);
        pl::dequantize_row_q3_5_ref(a.data(), ya.data(), n);
        pl::dequantize_row_q3_5_ref(b.data(), yb.data(), n);
        for (int64_t k = 0; k < n; ++k) {
            plain_err += skew[k] * (x[k] - ya[k]) * static_cast<double>(x[k] - ya[k]);
            gptq_err += skew[k] * (x[k] - yb[k]) * static_cast<double>(x[k] - yb[k]);
        }
        EXPECT_EQ(std::memcmp(a.data() + 4 * 112, b.data() + 4 * 112, 28), 0) << "the tail group stays plain";
    }
    EXPECT_LT(gptq_err, 0.8 * plain_err) << "weighted error: plain " << plain_err << ", gptq " << gptq_err;
}

// GPTQ on a full activation covariance per group (imatrix --covariance): an isotropic covariance
// gives the plain bytes; correlated activations (as real ones are) get a lower output error
// E[(w.x - w_hat.x)^2] = (w - w_hat)^T C (w - w_hat) than plain rounding and than the diagonal
// importance alone; a group never observed stays plain.
TEST(Q3_5, CovarianceGptqLowersOutputError) {
    constexpr int G = 256;
    const int64_t n = 2 * G + 64;  // two full groups and a tail
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    // Activations x = A z with a random mixing A (strongly correlated inputs), per group.
    const int samples = 2048;
    std::vector<float> cov(static_cast<size_t>(2) * G * G, 0.0f), iso(cov.size(), 0.0f), diag(n, 0.0f);
    std::vector<std::vector<float>> xs(samples, std::vector<float>(n));
    std::vector<float> A(static_cast<size_t>(G) * G);
    for (auto& v : A) v = nd(rng) / 16.0f;
    for (auto& x : xs) {
        std::vector<float> z(n);
        for (auto& v : z) v = nd(rng);
        for (int g = 0; g < 2; ++g)
            for (int i = 0; i < G; ++i) {
                float s = 0;
                for (int k = 0; k < G; ++k) s += A[static_cast<size_t>(i) * G + k] * z[g * G + k];
                x[g * G + i] = s + 0.1f * z[g * G + i];
            }
        for (int64_t k = 2 * G; k < n; ++k) x[k] = z[k];
    }
    for (int g = 0; g < 2; ++g)
        for (int i = 0; i < G; ++i) {
            iso[(static_cast<size_t>(g) * G + i) * G + i] = 3.0f;
            for (int j = 0; j < G; ++j) {
                double s = 0;
                for (const auto& x : xs) s += static_cast<double>(x[g * G + i]) * x[g * G + j];
                cov[(static_cast<size_t>(g) * G + i) * G + j] = static_cast<float>(s / samples);
            }
        }
    for (int64_t k = 0; k < n; ++k)
        for (const auto& x : xs) diag[k] += x[k] * x[k] / samples;
    const auto f_iso = pl::q3_5_gptq_factors(iso.data(), 2);
    const auto f_cov = pl::q3_5_gptq_factors(cov.data(), 2);
    std::vector<float> unseen(cov);
    std::fill(unseen.begin() + G * G, unseen.end(), 0.0f);  // group 1 never observed
    const auto f_half = pl::q3_5_gptq_factors(unseen.data(), 2);
    ASSERT_EQ(f_cov.size(), 2u);
    EXPECT_TRUE(f_half[1].empty());
    auto out_err = [&](const std::vector<float>& w, const std::vector<uint8_t>& q) {
        std::vector<float> y(n);
        pl::dequantize_row_q3_5_ref(q.data(), y.data(), n);
        double e = 0;
        for (int g = 0; g < 2; ++g)
            for (int i = 0; i < G; ++i)
                for (int j = 0; j < G; ++j)
                    e += static_cast<double>(w[g * G + i] - y[g * G + i]) * cov[(static_cast<size_t>(g) * G + i) * G + j] *
                         (w[g * G + j] - y[g * G + j]);
        return e;
    };
    double plain = 0, imp = 0, full = 0;
    for (int r = 0; r < 16; ++r) {
        std::vector<float> w(n);
        for (auto& v : w) v = 0.02f * nd(rng);
        const size_t bytes = *pl::row_bytes(pl::kQ3_5TypeId, n);
        std::vector<uint8_t> a(bytes), b(bytes), c(bytes), d(bytes);
        pl::quantize_row_q3_5_ref(w.data(), a.data(), n);
        pl::quantize_row_q3_5_gptq(w.data(), b.data(), n, f_iso);
        EXPECT_EQ(a, b) << "an isotropic covariance must give the plain bytes";
        pl::quantize_row_q3_5_gptq(w.data(), c.data(), n, f_half);
        EXPECT_EQ(std::memcmp(a.data() + 112, c.data() + 112, bytes - 112), 0) << "the unseen group and the tail stay plain";
        pl::quantize_row_q3_5_gptq(w.data(), c.data(), n, f_cov);
        EXPECT_EQ(std::memcmp(a.data() + 224, c.data() + 224, bytes - 224), 0) << "the tail stays plain";
        pl::quantize_row_q3_5_imp(w.data(), d.data(), n, diag.data());
        plain += out_err(w, a);
        full += out_err(w, c);
        imp += out_err(w, d);
    }
    std::printf("output error: plain %.4g, diagonal %.4g, covariance %.4g\n", plain, imp, full);
    EXPECT_LT(full, 0.7 * plain) << "plain " << plain << ", diagonal " << imp << ", covariance " << full;
    EXPECT_LT(full, 0.8 * imp) << "plain " << plain << ", diagonal " << imp << ", covariance " << full;
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
