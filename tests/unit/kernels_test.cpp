// SPDX-License-Identifier: MIT
// Every ISA variant of every kernel against the scalar reference, on random and adversarial
// inputs and odd block counts; the scalar reference against float64 math on dequantized values.
#include "test_data.h"

#include "core/fp16.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/ops.h"
#include "quant/formats.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>

namespace {

using pl::GgmlType;

const int64_t kLengths[] = {32, 64, 96, 224, 256, 576, 1056, 4096};

std::vector<float> make_input(int64_t n, int pattern, std::mt19937& rng) {
    std::vector<float> x(static_cast<size_t>(n));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
        switch (pattern) {
            case 0: x[i] = nd(rng); break;                                   // gaussian
            case 1: x[i] = 0.0f; break;                                      // zeros
            case 2: x[i] = (i % 7 == 0 ? 3e4f : 1e-3f) * (i % 2 ? 1 : -1); break;  // spikes
            case 3: x[i] = static_cast<float>(i % 32) - 15.5f; break;        // exact ties at .5
            default: x[i] = nd(rng) * 1e-30f; break;                         // tiny
        }
    }
    return x;
}

struct Acts {
    std::vector<int8_t> qs;
    std::vector<float> d;
    std::vector<int32_t> sum;
    explicit Acts(int64_t n) : qs(n), d(n / 32), sum(n / 32) {}
};

TEST(Kernels, ScalarIsAlwaysSupported) {
    auto isas = pl::supported_isas();
    ASSERT_FALSE(isas.empty());
    EXPECT_EQ(isas.front(), pl::Isa::Scalar);
    const auto& k = pl::cpu_kernels();
    EXPECT_NE(k.dot_for(static_cast<uint32_t>(GgmlType::Q4_0)), nullptr);
    EXPECT_EQ(k.dot_for(static_cast<uint32_t>(GgmlType::F32)), nullptr);
}

TEST(Kernels, QuantizeActsBitExactAcrossIsas) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(7);
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        for (int64_t n : kLengths) {
            for (int pattern = 0; pattern < 5; ++pattern) {
                auto x = make_input(n, pattern, rng);
                Acts a(n), b(n);
                ref.quantize_acts(x.data(), n, a.qs.data(), a.d.data(), a.sum.data());
                k.quantize_acts(x.data(), n, b.qs.data(), b.d.data(), b.sum.data());
                EXPECT_EQ(a.qs, b.qs) << pl::isa_name(isa) << " n=" << n << " pattern " << pattern;
                EXPECT_EQ(a.d, b.d) << pl::isa_name(isa) << " n=" << n;
                EXPECT_EQ(a.sum, b.sum) << pl::isa_name(isa) << " n=" << n;
            }
        }
    }
}

TEST(Kernels, QuantizeActsQ3_5BitExactAcrossIsas) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(8);
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        for (int64_t n : {32, 224, 256, 576, 1056, 4096}) {
            for (int pattern = 0; pattern < 5; ++pattern) {
                auto x = make_input(n, pattern, rng);
                Acts a(n), b(n);
                ref.quantize_acts_q3_5(x.data(), n, a.qs.data(), a.d.data(), a.sum.data());
                k.quantize_acts_q3_5(x.data(), n, b.qs.data(), b.d.data(), b.sum.data());
                EXPECT_EQ(a.qs, b.qs) << pl::isa_name(isa) << " n=" << n << " pattern " << pattern;
                EXPECT_EQ(a.d, b.d) << pl::isa_name(isa) << " n=" << n;
                EXPECT_EQ(a.sum, b.sum) << pl::isa_name(isa) << " n=" << n;
            }
        }
    }
    // One scale per q3.5 group: 256 + 256 + a 64-element tail for n = 576.
    std::vector<float> x(576, 1.0f);
    x[3] = 254.0f;   // group 0: d = 2
    x[300] = 127.0f; // group 1: d = 1
    x[520] = -12.7f; // tail: d = 0.1
    Acts a(576);
    ref.quantize_acts_q3_5(x.data(), 576, a.qs.data(), a.d.data(), a.sum.data());
    for (int b = 0; b < 8; ++b) EXPECT_EQ(a.d[b], 2.0f) << b;
    for (int b = 8; b < 16; ++b) EXPECT_EQ(a.d[b], 1.0f) << b;
    for (int b = 16; b < 18; ++b) EXPECT_FLOAT_EQ(a.d[b], 0.1f) << b;
    EXPECT_EQ(a.qs[3], 127);
    EXPECT_EQ(a.qs[4], 0);  // 1 / 2 = 0.5 rounds to even
    EXPECT_EQ(a.qs[300], 127);
    EXPECT_EQ(a.qs[301], 1);
    EXPECT_EQ(a.qs[520], -127);
    EXPECT_EQ(a.qs[521], 10);
}

// The rotation of q3.5 activations: every ISA gives the reference's bits (full groups, tails of
// 32-chunks, n = 576's 64-element tail, spikes that overflow to inf, tiny values).
TEST(Kernels, RotateQ3_5BitExactAcrossIsas) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    EXPECT_EQ(ref.rotate_q3_5, &pl::rotate_q3_5);
    std::mt19937 rng(21);
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        ASSERT_NE(k.rotate_q3_5, nullptr) << pl::isa_name(isa);
        for (int64_t n : {32, 64, 96, 224, 256, 288, 576, 1056, 4096, 11008}) {
            for (int pattern = 0; pattern < 6; ++pattern) {
                auto x = pattern == 5 ? std::vector<float>(static_cast<size_t>(n), 3e38f) : make_input(n, pattern, rng);
                auto a = x, b = x;
                pl::rotate_q3_5(a.data(), n);
                k.rotate_q3_5(b.data(), n);
                EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
                    << pl::isa_name(isa) << " n=" << n << " pattern " << pattern;
            }
        }
    }
    // R is orthonormal: the rotation keeps the norm (and is not the identity).
    std::vector<float> x(576);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) - 6.0f;
    auto y = x;
    pl::kernels_for(pl::supported_isas().back()).rotate_q3_5(y.data(), 576);
    double nx = 0, ny = 0, diff = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        nx += double(x[i]) * x[i];
        ny += double(y[i]) * y[i];
        diff += std::abs(double(x[i]) - y[i]);
    }
    EXPECT_NEAR(ny / nx, 1.0, 1e-6);
    EXPECT_GT(diff, 1.0);
}

TEST(Kernels, QuantizeActsReferenceSemantics) {
    // One block: amax 254 -> d = 2; x/d rounds half to even; sum is the sum of quants.
    std::vector<float> x(32, 0.0f);
    x[0] = 254.0f;
    x[1] = 5.0f;    // 2.5 -> 2 (even)
    x[2] = 7.0f;    // 3.5 -> 4 (even)
    x[3] = -3.0f;   // -1.5 -> -2
    x[4] = -254.0f;
    Acts a(32);
    pl::kernels_for(pl::Isa::Scalar).quantize_acts(x.data(), 32, a.qs.data(), a.d.data(), a.sum.data());
    EXPECT_EQ(a.d[0], 2.0f);
    EXPECT_EQ(a.qs[0], 127);
    EXPECT_EQ(a.qs[1], 2);
    EXPECT_EQ(a.qs[2], 4);
    EXPECT_EQ(a.qs[3], -2);
    EXPECT_EQ(a.qs[4], -127);
    EXPECT_EQ(a.sum[0], 127 + 2 + 4 - 2 - 127);
}

// Weight rows of a type, quantized by the reference quantizer, plus adversarial raw blocks.
std::vector<uint8_t> make_weights(GgmlType t, int64_t n, int pattern, std::mt19937& rng) {
    const pl::TypeTraits* tt = pl::type_traits(t);
    std::vector<uint8_t> w(*pl::row_bytes(static_cast<uint32_t>(t), n));
    if (pattern < 5) {
        auto x = make_input(n, pattern, rng);
        tt->quantize_row(x.data(), w.data(), n);
    } else {  // random bytes with sane fp16 scales: covers q = -128, all nibble values
        std::uniform_int_distribution<int> byte(0, 255);
        for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
        const size_t bb = tt->block_bytes;
        for (size_t off = 0; off < w.size(); off += bb) {
            w[off] = 0x00;
            w[off + 1] = 0x3C;  // d = 1.0
            if (t == GgmlType::Q4_1) {
                w[off + 2] = 0x00;
                w[off + 3] = 0xBC;  // m = -1.0
            }
        }
    }
    return w;
}

TEST(Kernels, DotsMatchScalarReferenceOnEveryIsa) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(11);
    int checked = 0;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q3_5}) {
        const pl::TypeTraits* tt = pl::type_traits(t);
        for (int64_t n : kLengths) {
            for (int wp = 0; wp < 6; ++wp) {
                const auto w = make_weights(t, n, wp, rng);
                auto x = make_input(n, wp == 5 ? 0 : (wp + 1) % 5, rng);
                Acts a(n);
                ref.quantize_acts_for(static_cast<uint32_t>(t))(x.data(), n, a.qs.data(), a.d.data(), a.sum.data());
                // float64 truth from dequantized values, and the scale of the terms
                std::vector<float> wf(n);
                tt->dequantize_row(w.data(), wf.data(), n);
                // q3.5 kernels dot the stored (rotated) values: rotating the dequantized row back
                // gives them, up to float rounding far below the tolerance.
                if (tt->rotated_input) pl::rotate_q3_5(wf.data(), n);
                double truth = 0, mag = 0;
                for (int64_t i = 0; i < n; ++i) {
                    const double term = static_cast<double>(wf[i]) * a.qs[i] * a.d[i / 32];
                    truth += term;
                    mag += std::fabs(term);
                }
                const float r = ref.dot_for(static_cast<uint32_t>(t))(w.data(), a.qs.data(), a.d.data(), a.sum.data(), n);
                EXPECT_LE(std::fabs(r - truth), 1e-5 * mag + 1e-30) << tt->name << " ref n=" << n << " wp=" << wp;
                for (pl::Isa isa : pl::supported_isas()) {
                    const auto k = pl::kernels_for(isa);
                    const float v = k.dot_for(static_cast<uint32_t>(t))(w.data(), a.qs.data(), a.d.data(), a.sum.data(), n);
                    EXPECT_LE(std::fabs(v - r), 1e-5 * mag + 1e-30)
                        << tt->name << " " << pl::isa_name(isa) << " n=" << n << " wp=" << wp << " ref=" << r << " got=" << v;
                    ++checked;
                }
            }
        }
    }
    EXPECT_GE(checked, 4 * 6 * 6);
}

// The two-row decode kernel gives each row exactly dot's bits (q3.5: tail groups, every weight
// pattern), and a decode product through it (rows, tiled, tasks: ranges split in two halves,
// odd and even lengths) equals dot row by row.
TEST(Kernels, TwoRowDotEqualsDotBits) {
    std::mt19937 rng(29);
    int checked = 0;
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        const auto dot2 = k.dot2_for(pl::kQ3_5TypeId);
        if (!dot2) continue;
        const auto dot = k.dot_for(pl::kQ3_5TypeId);
        for (int64_t n : kLengths) {
            for (int wp = 0; wp < 6; ++wp) {
                const auto w0 = make_weights(GgmlType::Q3_5, n, wp, rng), w1 = make_weights(GgmlType::Q3_5, n, (wp + 3) % 6, rng);
                auto x = make_input(n, wp % 5, rng);
                Acts a(n);
                k.quantize_acts_for(pl::kQ3_5TypeId)(x.data(), n, a.qs.data(), a.d.data(), a.sum.data());
                float y[2] = {-1.0f, -1.0f};
                dot2(w0.data(), w1.data(), a.qs.data(), a.d.data(), a.sum.data(), n, y);
                const float want[2] = {dot(w0.data(), a.qs.data(), a.d.data(), a.sum.data(), n),
                                       dot(w1.data(), a.qs.data(), a.d.data(), a.sum.data(), n)};
                EXPECT_EQ(0, std::memcmp(y, want, sizeof(y))) << pl::isa_name(isa) << " n=" << n << " wp=" << wp;
                ++checked;
            }
        }
        for (int64_t rows : {1, 2, 37, 64}) {
            const int64_t n = 576;
            std::vector<uint8_t> w;
            for (int64_t r = 0; r < rows; ++r) {
                auto wr = make_weights(GgmlType::Q3_5, n, static_cast<int>(r % 6), rng);
                w.insert(w.end(), wr.begin(), wr.end());
            }
            pl::WeightView W;
            W.name = "test";
            W.type = pl::kQ3_5TypeId;
            W.rows = rows;
            W.cols = n;
            W.row_bytes = *pl::row_bytes(W.type, n);
            W.data = w.data();
            pl::Q8Acts a;
            a.resize(n, 1);
            auto x = make_input(n, 0, rng);
            k.quantize_acts_for(W.type)(x.data(), n, a.qs.data(), a.d.data(), a.sum.data());
            std::vector<float> want(static_cast<size_t>(rows));
            for (int64_t r = 0; r < rows; ++r) want[static_cast<size_t>(r)] = dot(W.row(r), a.qs.data(), a.d.data(), a.sum.data(), n);
            for (auto th : {pl::Threading::Rows, pl::Threading::Tiled, pl::Threading::Tasks}) {
                std::vector<float> y(static_cast<size_t>(rows), -1.0f);
                pl::matmul_q8a(W, a, y.data(), k, th);
                EXPECT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * sizeof(float)))
                    << pl::threading_name(th) << " rows=" << rows;
            }
        }
    }
    if (pl::supported_isas().back() == pl::Isa::Avx512) EXPECT_GE(checked, 6);
}

// The row-times-many kernels equal the reference dot per activation row, for tile remainders
// (m = 1..9), odd block counts and a strided output; nothing between the strided slots is written.
TEST(Kernels, GemmRowKernelsMatchReferenceDots) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(5);
    int checked = 0;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q3_5}) {
        for (int64_t n : {32, 96, 1056, 576}) {
            const auto w = make_weights(t, n, 5, rng);
            for (int64_t m : {1, 2, 3, 4, 5, 9}) {
                Acts a(n * m);
                auto x = make_input(n * m, 0, rng);
                for (int64_t i = 0; i < m; ++i)  // row by row: q3.5 activation groups follow rows
                    ref.quantize_acts_for(static_cast<uint32_t>(t))(x.data() + i * n, n, a.qs.data() + i * n,
                                                                    a.d.data() + i * n / 32, a.sum.data() + i * n / 32);
                std::vector<float> want(m);
                double mag = 0;
                for (int64_t i = 0; i < m; ++i) {
                    want[i] = ref.dot_for(static_cast<uint32_t>(t))(w.data(), a.qs.data() + i * n, a.d.data() + i * n / 32,
                                                                    a.sum.data() + i * n / 32, n);
                    mag = std::max(mag, static_cast<double>(std::fabs(want[i])));
                }
                for (pl::Isa isa : pl::supported_isas()) {
                    const auto gemm = pl::kernels_for(isa).gemm_for(static_cast<uint32_t>(t));
                    if (!gemm) continue;
                    const int64_t stride = 3;
                    std::vector<float> y(m * stride, -12345.0f);
                    gemm(w.data(), n, a.qs.data(), a.d.data(), a.sum.data(), m, y.data(), stride);
                    for (int64_t i = 0; i < m; ++i) {
                        EXPECT_NEAR(y[i * stride], want[i], 1e-5 * (mag + 1) * n / 32)
                            << pl::type_traits(t)->name << " " << pl::isa_name(isa) << " n=" << n << " m=" << m << " i=" << i;
                        EXPECT_EQ(y[i * stride + 1], -12345.0f);
                        EXPECT_EQ(y[i * stride + 2], -12345.0f);
                    }
                    ++checked;
                }
            }
        }
    }
    if (pl::supported_isas().back() == pl::Isa::Avx512) EXPECT_EQ(checked, 4 * 4 * 6);
}

// The q3.5 block GEMM (several weight rows x all activation rows, offset-binary activations)
// equals the reference dots, for odd weight-row counts, tails (576, 96), m = 1..9 and a strided
// output; nothing else in the output is written.
TEST(Kernels, GemmRowsQ3_5MatchesReferenceDots) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    const auto k = pl::kernels_for(pl::supported_isas().back());
    if (!k.gemm_rows_q3_5) GTEST_SKIP() << "no q3.5 block GEMM on " << pl::isa_name(k.isa);
    std::mt19937 rng(13);
    const uint32_t t = pl::kQ3_5TypeId;
    for (int64_t n : {96, 576, 1056}) {
        for (int64_t nrows : {1, 2, 3, 5, 6, 9}) {
            const size_t rb = *pl::row_bytes(t, n);
            std::vector<uint8_t> w;
            for (int64_t r = 0; r < nrows; ++r) {
                auto wr = make_weights(GgmlType::Q3_5, n, r % 2 ? 5 : 0, rng);
                w.insert(w.end(), wr.begin(), wr.end());
            }
            for (int64_t m : {1, 2, 4, 9}) {
                Acts a(n * m);
                auto x = make_input(n * m, 0, rng);
                for (int64_t i = 0; i < m; ++i)
                    ref.quantize_acts_q3_5(x.data() + i * n, n, a.qs.data() + i * n, a.d.data() + i * n / 32,
                                           a.sum.data() + i * n / 32);
                std::vector<uint8_t> au8(a.qs.size());
                for (size_t i = 0; i < au8.size(); ++i) au8[i] = static_cast<uint8_t>(a.qs[i] ^ 0x80);
                const int64_t ldy = nrows + 2;
                std::vector<float> y(m * ldy, -12345.0f);
                k.gemm_rows_q3_5(w.data(), rb, nrows, n, au8.data(), a.d.data(), m, y.data(), ldy);
                for (int64_t i = 0; i < m; ++i) {
                    for (int64_t r = 0; r < nrows; ++r) {
                        const float want = ref.dot_q3_5(w.data() + r * rb, a.qs.data() + i * n, a.d.data() + i * n / 32,
                                                        a.sum.data() + i * n / 32, n);
                        EXPECT_NEAR(y[i * ldy + r], want, 1e-5 * (std::fabs(want) + 1) * n / 32)
                            << "n=" << n << " rows=" << nrows << " m=" << m << " r=" << r << " i=" << i;
                        // Bit-identical to the same ISA's decode kernel: a row's result must not
                        // depend on the batch it was computed in (batched == unbatched outputs).
                        EXPECT_EQ(y[i * ldy + r], k.dot_q3_5(w.data() + r * rb, a.qs.data() + i * n, a.d.data() + i * n / 32,
                                                             a.sum.data() + i * n / 32, n))
                            << "n=" << n << " rows=" << nrows << " m=" << m << " r=" << r << " i=" << i;
                    }
                    EXPECT_EQ(y[i * ldy + nrows], -12345.0f);
                    EXPECT_EQ(y[i * ldy + nrows + 1], -12345.0f);
                }
            }
        }
    }
}

// q3.5 folded (quant/q3_5_fold.h): rows of random, zero, spiky and random-byte q3.5 weights
// (random bytes: every scale code; codes that break the fold's constraint are raised to E_g - 3,
// as quantize never needs to) are folded, then
//   - the fold keeps every weight (dequantize_row_q3_5f == dequantize_row_q3_5_ref, bit for bit),
//   - the AVX-512 GEMV (one and two rows) equals dot_q3_5f_ref bit for bit,
//   - the AMX block GEMM equals it for every (row, activation row): weight-row counts and
//     activation-row counts around the 16-row tiles, sub-ranges from a 16-token block on,
//   - and the folded numbers are the q3.5 ones up to float rounding.
// Groups per row: 1, 2, 16 (one super-group), 17 (a one-group tail super-group) and 43 (LLaMA's
// 11008).
std::vector<uint8_t> foldable_q3_5(int64_t n, int pattern, std::mt19937& rng) {
    auto w = make_weights(GgmlType::Q3_5, n, pattern, rng);
    for (int64_t g = 0; g < n / 256; ++g) {
        uint8_t* k = w.data() + g * 112 + 96;
        int kmax = 0;
        for (int L = 0; L < 16; ++L) kmax = std::max<int>(kmax, k[L]);
        const int eg = std::max(kmax >> 4, 1);
        for (int L = 0; L < 16; ++L)
            if (k[L] != 0 && std::max(k[L] >> 4, 1) < eg - 3) k[L] = static_cast<uint8_t>((eg - 3) << 4 | (k[L] & 15));
    }
    return w;
}

pl::CpuKernels amx_kernels() {
    auto k = pl::kernels_for(pl::supported_isas().back());
    if (!k.amx) pl::install_amx(k);
    return k;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(Kernels, Q3_5FoldRejectsWhatItCannotKeep) {
    std::mt19937 rng(31);
    auto w = make_weights(GgmlType::Q3_5, 512, 0, rng);
    std::vector<uint8_t> f(*pl::row_bytes(static_cast<uint32_t>(GgmlType::Q3_5F), 512));
    ASSERT_TRUE(pl::fold_row_q3_5(w.data(), f.data(), 512));
    w[112 + 96 + 3] = 0x10;  // E = 1 next to larger codes in group 1
    w[112 + 96 + 4] = 0x7F;  // E = 7
    EXPECT_FALSE(pl::fold_row_q3_5(w.data(), f.data(), 512));
    uint8_t mult[16];
    int eg = 0;
    const uint8_t codes[16] = {0x4F, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // E 4 and E 1: mult 31 << 3, 16
    ASSERT_TRUE(pl::q3_5_fold_scales(codes, mult, eg));
    EXPECT_EQ(eg, 4);
    EXPECT_EQ(mult[0], 31 << 3);
    EXPECT_EQ(mult[1], 16);
    EXPECT_EQ(mult[2], 0);
    EXPECT_EQ(pl::type_traits_by_name("q3.5-folded"), nullptr);  // never a file's or a user's type
}

TEST(Kernels, Q3_5FoldedKernelsBitIdentical) {
    const auto k = amx_kernels();
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    const uint32_t tf = static_cast<uint32_t>(GgmlType::Q3_5F);
    std::mt19937 rng(23);
    int64_t checked = 0, checked_amx = 0;
    for (int64_t n : {256, 512, 4096, 4352, 11008}) {
        const size_t rb = *pl::row_bytes(pl::kQ3_5TypeId, n), fb = *pl::row_bytes(tf, n);
        ASSERT_EQ(fb, static_cast<size_t>(n / 256 * 113));
        const int64_t max_rows = 40;
        std::vector<uint8_t> w, f(fb * max_rows);
        for (int64_t r = 0; r < max_rows; ++r) {
            const int pattern = r % 4 == 0 ? 5 : r % 7 == 3 ? 1 : r % 5 == 2 ? 2 : 0;
            auto wr = foldable_q3_5(n, pattern, rng);
            ASSERT_TRUE(pl::fold_row_q3_5(wr.data(), f.data() + r * fb, n)) << "n=" << n << " r=" << r;
            std::vector<float> d0(n), d1(n);
            pl::dequantize_row_q3_5_ref(wr.data(), d0.data(), n);
            pl::dequantize_row_q3_5f(f.data() + r * fb, d1.data(), n);
            ASSERT_EQ(std::memcmp(d0.data(), d1.data(), n * sizeof(float)), 0) << "n=" << n << " r=" << r;
            w.insert(w.end(), wr.begin(), wr.end());
        }
        const int64_t max_m = 64;
        Acts a(n * max_m);
        for (int64_t i = 0; i < max_m; ++i) {
            auto x = make_input(n, i % 3 == 1 ? 0 : static_cast<int>(i % 5), rng);
            if (i % 7 == 6)
                for (float& v : x) v *= 1e30f;  // huge activation scales
            ref.quantize_acts_q3_5(x.data(), n, a.qs.data() + i * n, a.d.data() + i * n / 32, a.sum.data() + i * n / 32);
        }
        std::vector<float> want(max_m * max_rows);
        for (int64_t i = 0; i < max_m; ++i)
            for (int64_t r = 0; r < max_rows; ++r) {
                const int8_t* q = a.qs.data() + i * n;
                const float* d = a.d.data() + i * n / 32;
                const float sr = pl::dot_q3_5f_ref(f.data() + r * fb, q, d, nullptr, n);
                want[i * max_rows + r] = sr;
                const float got = k.dot_for(tf)(f.data() + r * fb, q, d, nullptr, n);
                EXPECT_TRUE(same_bits(got, sr)) << "gemv n=" << n << " r=" << r << " i=" << i << " " << got << " vs " << sr;
                if (r % 2 == 1 && k.dot2_for(tf)) {
                    float y2[2];
                    k.dot2_for(tf)(f.data() + (r - 1) * fb, f.data() + r * fb, q, d, nullptr, n, y2);
                    EXPECT_TRUE(same_bits(y2[0], want[i * max_rows + r - 1]) && same_bits(y2[1], sr)) << "dot2 n=" << n << " r=" << r;
                }
                if (i % 7 != 6 && (i + r) % 5 == 0) {  // the q3.5 numerics, up to float rounding
                    const float q35 = ref.dot_q3_5(w.data() + r * rb, q, a.d.data() + i * n / 32, a.sum.data() + i * n / 32, n);
                    EXPECT_NEAR(sr, q35, 1e-5 * (std::fabs(q35) + 1e-30) + 1e-6 * n / 256 * std::fabs(d[0]) * 127 * 127)
                        << "n=" << n << " r=" << r << " i=" << i;
                }
                ++checked;
            }
        if (k.gemm_rows_q3_5f_few) {  // AVX-512, offset-binary activations, for a few activation rows
            std::vector<uint8_t> au8(a.qs.size());
            for (size_t i = 0; i < au8.size(); ++i) au8[i] = static_cast<uint8_t>(a.qs[i] ^ 0x80);
            for (int64_t m : {1, 2, 3, 5, 15})
                for (int64_t nrows : {1, 3, 6, 40}) {
                    const int64_t ldy = nrows + 1;
                    std::vector<float> y(m * ldy, -12345.0f);
                    k.gemm_rows_q3_5f_few(f.data(), fb, nrows, n, au8.data(), a.d.data(), m, y.data(), ldy);
                    for (int64_t i = 0; i < m; ++i) {
                        for (int64_t r = 0; r < nrows; ++r)
                            EXPECT_TRUE(same_bits(y[i * ldy + r], want[i * max_rows + r]))
                                << "few n=" << n << " rows=" << nrows << " m=" << m << " r=" << r << " i=" << i;
                        EXPECT_EQ(y[i * ldy + nrows], -12345.0f);
                    }
                }
        }
        if (!k.gemm_rows_q3_5f) continue;
        for (int64_t m : {2, 5, 16, 17, 33, 64}) {
            std::vector<uint8_t> packed(pl::q3_5f_packed_bytes(n, m), 7);
            k.pack_acts_q3_5f(a.qs.data(), n, m, packed.data());
            for (int64_t nrows : {1, 15, 16, 17, 40}) {
                for (int64_t t0 : {int64_t{0}, m > 16 ? int64_t{16} : int64_t{0}}) {
                    const int64_t ldy = nrows + 2;
                    std::vector<float> y(m * ldy, -12345.0f);
                    k.gemm_rows_q3_5f(f.data(), fb, nrows, n, packed.data() + pl::q3_5f_packed_bytes(n, t0), a.d.data() + t0 * n / 32,
                                      m - t0, y.data() + t0 * ldy, ldy);
                    for (int64_t i = 0; i < m; ++i) {
                        for (int64_t r = 0; r < nrows; ++r) {
                            const float got = y[i * ldy + r];
                            if (i < t0) {
                                EXPECT_EQ(got, -12345.0f) << "row before t0 written";
                                continue;
                            }
                            EXPECT_TRUE(same_bits(got, want[i * max_rows + r])) << "amx n=" << n << " rows=" << nrows << " m=" << m
                                                                                << " t0=" << t0 << " r=" << r << " i=" << i << " amx="
                                                                                << got << " ref=" << want[i * max_rows + r];
                            ++checked_amx;
                        }
                        EXPECT_EQ(y[i * ldy + nrows], -12345.0f);
                        EXPECT_EQ(y[i * ldy + nrows + 1], -12345.0f);
                    }
                }
            }
        }
    }
    EXPECT_GT(checked, 10000);
    if (!k.gemm_rows_q3_5f) GTEST_SKIP() << "no AMX here (needs avx512, amx-int8 and Linux's grant of the tile state): GEMV checked only";
    EXPECT_GT(checked_amx, 50000);
}

// matmul_q8a on folded rows gives the decode GEMV's bits for batches under every threading
// strategy (16-row blocks, 16-token pieces), and each strategy's decode agrees with it (Nested
// cuts a decode row into two partial sums on a 4096-column super-group boundary).
TEST(Kernels, MatmulQ3_5FoldedEqualsDecodeBits) {
    const auto k = amx_kernels();
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(29);
    const uint32_t tf = static_cast<uint32_t>(GgmlType::Q3_5F);
    for (int64_t n : {1024, 8192}) {
        const int64_t rows = 53;
        const size_t fb = *pl::row_bytes(tf, n);
        std::vector<uint8_t> f(fb * rows);
        for (int64_t r = 0; r < rows; ++r) {
            auto wr = foldable_q3_5(n, r % 3 == 0 ? 5 : 0, rng);
            ASSERT_TRUE(pl::fold_row_q3_5(wr.data(), f.data() + r * fb, n));
        }
        pl::WeightView W;
        W.name = "test";
        W.type = tf;
        W.rows = rows;
        W.cols = n;
        W.row_bytes = fb;
        W.data = f.data();
        for (int64_t m : {1, 3, 16, 37}) {
            pl::Q8Acts a;
            a.resize(n, m);
            auto x = make_input(n * m, 0, rng);
            for (int64_t i = 0; i < m; ++i)
                ref.quantize_acts_q3_5(x.data() + i * n, n, a.qs.data() + i * n, a.d.data() + i * n / 32, a.sum.data() + i * n / 32);
            for (auto th : {pl::Threading::Rows, pl::Threading::Nested, pl::Threading::Tiled, pl::Threading::Tasks}) {
                std::vector<float> y(m * rows, -1.0f);
                pl::matmul_q8a(W, a, y.data(), k, th);
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t r = 0; r < rows; ++r) {
                        const float g = pl::dot_q3_5f_ref(W.row(r), a.row_qs(i), a.row_d(i), nullptr, n);
                        if (m == 1 && th == pl::Threading::Nested)
                            EXPECT_NEAR(y[i * rows + r], g, 1e-5 * (std::fabs(g) + 1)) << "nested decode n=" << n << " r=" << r;
                        else
                            EXPECT_TRUE(same_bits(y[i * rows + r], g)) << pl::threading_name(th) << " n=" << n << " m=" << m
                                                                       << " r=" << r << " i=" << i;
                    }
            }
        }
    }
}

// Every threading strategy of matmul_q8a gives the reference dots (any split of rows, columns or
// activation rows only changes float summation order), for decode (m = 1) and batches, odd row
// counts and q3.5 tails.
TEST(Kernels, MatmulThreadingStrategiesAgree) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    const auto k = pl::kernels_for(pl::supported_isas().back());
    std::mt19937 rng(17);
    for (GgmlType t : {GgmlType::Q3_5, GgmlType::Q4_0, GgmlType::Q8_0}) {
        for (int64_t n : {576, 1024}) {
            const int64_t rows = 37;
            const size_t rb = *pl::row_bytes(static_cast<uint32_t>(t), n);
            std::vector<uint8_t> w;
            for (int64_t r = 0; r < rows; ++r) {
                auto wr = make_weights(t, n, 0, rng);
                w.insert(w.end(), wr.begin(), wr.end());
            }
            pl::WeightView W;
            W.name = "test";
            W.type = static_cast<uint32_t>(t);
            W.rows = rows;
            W.cols = n;
            W.row_bytes = rb;
            W.data = w.data();
            for (int64_t m : {1, 6}) {
                pl::Q8Acts a;
                a.resize(n, m);
                auto x = make_input(n * m, 0, rng);
                for (int64_t i = 0; i < m; ++i)
                    ref.quantize_acts_for(W.type)(x.data() + i * n, n, a.qs.data() + i * n, a.d.data() + i * n / 32,
                                                  a.sum.data() + i * n / 32);
                std::vector<float> want(m * rows);
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t r = 0; r < rows; ++r)
                        want[i * rows + r] = ref.dot_for(W.type)(W.row(r), a.row_qs(i), a.row_d(i), a.row_sum(i), n);
                for (auto th : {pl::Threading::Rows, pl::Threading::Nested, pl::Threading::Tiled, pl::Threading::Tasks}) {
                    std::vector<float> y(m * rows, -1.0f);
                    pl::matmul_q8a(W, a, y.data(), k, th);
                    for (size_t i = 0; i < y.size(); ++i)
                        EXPECT_NEAR(y[i], want[i], 1e-5 * (std::fabs(want[i]) + 1) * n / 32)
                            << pl::type_traits(t)->name << " " << pl::threading_name(th) << " n=" << n << " m=" << m << " i=" << i;
                }
            }
        }
    }
    EXPECT_EQ(pl::parse_threading("tiled"), pl::Threading::Tiled);
    EXPECT_FALSE(pl::parse_threading("columns").has_value());
}

// matmul_q8a_multi (q/k/v and gate/up in one parallel region) gives every matrix exactly the
// bytes matmul_q8a gives it alone: matrices of different row counts (odd ones included), decode and
// batches.
TEST(Kernels, MatmulMultiEqualsSeparateProducts) {
    const auto k = pl::kernels_for(pl::supported_isas().back());
    std::mt19937 rng(23);
    for (GgmlType t : {GgmlType::Q3_5, GgmlType::Q4_1, GgmlType::Q8_0}) {
        const int64_t n = 512;
        const int64_t row_counts[] = {64, 13, 27};
        std::vector<std::vector<uint8_t>> store;
        std::vector<pl::WeightView> Ws;
        for (int64_t rows : row_counts) {
            std::vector<uint8_t> w;
            for (int64_t r = 0; r < rows; ++r) {
                auto wr = make_weights(t, n, 0, rng);
                w.insert(w.end(), wr.begin(), wr.end());
            }
            store.push_back(std::move(w));
            pl::WeightView W;
            W.name = "test";
            W.type = static_cast<uint32_t>(t);
            W.rows = rows;
            W.cols = n;
            W.row_bytes = *pl::row_bytes(W.type, n);
            W.data = store.back().data();
            Ws.push_back(W);
        }
        for (int64_t m : {1, 5, 16}) {
            pl::Q8Acts a;
            a.resize(n, m);
            auto x = make_input(n * m, 0, rng);
            for (int64_t i = 0; i < m; ++i)
                k.quantize_acts_for(Ws[0].type)(x.data() + i * n, n, a.qs.data() + i * n, a.d.data() + i * n / 32,
                                                a.sum.data() + i * n / 32);
            std::vector<std::vector<float>> want, got;
            std::vector<float*> ys;
            std::vector<const pl::WeightView*> wp;
            for (const auto& W : Ws) {
                want.emplace_back(static_cast<size_t>(m * W.rows));
                pl::matmul_q8a(W, a, want.back().data(), k, pl::Threading::Tasks);
                got.emplace_back(static_cast<size_t>(m * W.rows), -1.0f);
            }
            for (size_t i = 0; i < Ws.size(); ++i) {
                ys.push_back(got[i].data());
                wp.push_back(&Ws[i]);
            }
            pl::set_matmul_threading(pl::Threading::Tasks);
            pl::matmul_q8a_multi(wp, a, ys, k);
            for (size_t i = 0; i < Ws.size(); ++i)
                EXPECT_EQ(0, std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)))
                    << pl::type_traits(t)->name << " matrix " << i << " m=" << m;
        }
    }
}

// KV helper: f16 conversion bit-exact with the scalar reference (round to nearest even, tiny and
// huge values, odd lengths).
TEST(Kernels, F16KvHelpersMatchScalar) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    std::mt19937 rng(19);
    std::normal_distribution<float> nd;
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        for (int64_t n : {1, 15, 16, 64, 133}) {
            std::vector<float> x(n);
            for (int64_t i = 0; i < n; ++i) x[i] = nd(rng) * (i % 5 == 0 ? 1e4f : 1.0f) + (i % 7 == 0 ? 1e-6f : 0.0f);
            std::vector<uint16_t> ha(n), hb(n);
            ref.to_f16(x.data(), ha.data(), n);
            k.to_f16(x.data(), hb.data(), n);
            EXPECT_EQ(ha, hb) << pl::isa_name(isa) << " n=" << n;
        }
    }
}

// Attention over a paged KV head (kernels.h): every ISA bit-identical to the scalar reference,
// f32 and f16 caches, head_dim 8 (stories260K) to 256 with odd sizes, 1 to 300 positions over
// shuffled blocks, lanes past n in the last key block holding NaN (never stored), large values.
template <class T>
void check_attention(const pl::CpuKernels& ref, const pl::CpuKernels& k, pl::AttnScoresFn<T> (pl::CpuKernels::*scores),
                     pl::AttnValuesFn<T> (pl::CpuKernels::*values), const char* what) {
    std::mt19937 rng(23);
    std::normal_distribution<float> nd;
    constexpr int B = pl::kAttnBlock;
    for (int head_dim : {8, 12, 64, 80, 128, 256}) {
        for (int n : {1, 5, 16, 17, 100, 129, 300}) {
            const int nb = (n + B - 1) / B + 3;  // spare blocks, so the table is not the identity
            const size_t stride = static_cast<size_t>(B) * head_dim * 2 + 8;  // another head's part in between
            std::vector<float> kf(stride * nb), vf(stride * nb);
            for (size_t i = 0; i < kf.size(); ++i) {
                kf[i] = nd(rng) * (i % 97 == 0 ? 300.0f : 1.0f);
                vf[i] = nd(rng) * (i % 89 == 0 ? 1e3f : 1.0f);
            }
            std::vector<int32_t> blocks(static_cast<size_t>(nb));
            std::iota(blocks.begin(), blocks.end(), 0);
            std::shuffle(blocks.begin(), blocks.end(), rng);
            // Lanes past n in the last key block: NaN, which must not reach any stored score.
            const size_t last = static_cast<size_t>(blocks[static_cast<size_t>((n - 1) / B)]) * stride;
            for (int t = n % B == 0 ? B : n % B; t < B; ++t)
                for (int dd = 0; dd < head_dim; ++dd) kf[last + static_cast<size_t>(dd) * B + t] = std::numeric_limits<float>::quiet_NaN();
            std::vector<T> kc(kf.size()), vc(vf.size());
            for (size_t i = 0; i < kf.size(); ++i) {
                if constexpr (std::is_same_v<T, float>) {
                    kc[i] = kf[i];
                    vc[i] = vf[i];
                } else {
                    kc[i] = pl::fp32_to_fp16(kf[i]);
                    vc[i] = pl::fp32_to_fp16(vf[i]);
                }
            }
            std::vector<float> q(static_cast<size_t>(head_dim));
            for (float& x : q) x = nd(rng);
            const float div = std::sqrt(static_cast<float>(head_dim));
            std::vector<float> sa(static_cast<size_t>(n) + B, -7.0f), sb = sa;
            (ref.*scores)(q.data(), kc.data(), blocks.data(), stride, n, head_dim, div, sa.data());
            (k.*scores)(q.data(), kc.data(), blocks.data(), stride, n, head_dim, div, sb.data());
            ASSERT_EQ(0, std::memcmp(sa.data(), sb.data(), sa.size() * sizeof(float))) << what << " scores hd=" << head_dim << " n=" << n;
            for (int t = 0; t < n; ++t) ASSERT_TRUE(std::isfinite(sa[static_cast<size_t>(t)])) << t;
            for (size_t t = static_cast<size_t>(n); t < sa.size(); ++t) ASSERT_EQ(sb[t], -7.0f) << "stored past n";
            // One score against a plain double dot product (the reference is the reference).
            {
                const size_t at = static_cast<size_t>(blocks[0]) * stride;
                double want = 0;
                for (int dd = 0; dd < head_dim; ++dd)
                    want += static_cast<double>(q[static_cast<size_t>(dd)]) *
                            static_cast<double>(std::is_same_v<T, float> ? kf[at + static_cast<size_t>(dd) * B]
                                                                          : pl::fp16_to_fp32(static_cast<uint16_t>(kc[at + static_cast<size_t>(dd) * B])));
                EXPECT_NEAR(sa[0], want / div, 1e-3 * (1 + std::fabs(want)));
            }
            std::vector<float> p(static_cast<size_t>(n));
            for (float& x : p) x = std::fabs(nd(rng));
            std::vector<float> oa(static_cast<size_t>(head_dim) + 4, 9.0f), ob = oa;
            (ref.*values)(oa.data(), p.data(), vc.data(), blocks.data(), stride, n, head_dim);
            (k.*values)(ob.data(), p.data(), vc.data(), blocks.data(), stride, n, head_dim);
            ASSERT_EQ(0, std::memcmp(oa.data(), ob.data(), oa.size() * sizeof(float))) << what << " values hd=" << head_dim << " n=" << n;
            for (size_t c = static_cast<size_t>(head_dim); c < ob.size(); ++c) ASSERT_EQ(ob[c], 9.0f) << "stored past head_dim";
        }
    }
}

TEST(Kernels, AttentionBitExactAcrossIsas) {
    const auto ref = pl::kernels_for(pl::Isa::Scalar);
    for (pl::Isa isa : pl::supported_isas()) {
        const auto k = pl::kernels_for(isa);
        check_attention<float>(ref, k, &pl::CpuKernels::attn_scores_f32, &pl::CpuKernels::attn_values_f32, pl::isa_name(isa));
        check_attention<uint16_t>(ref, k, &pl::CpuKernels::attn_scores_f16, &pl::CpuKernels::attn_values_f16, pl::isa_name(isa));
    }
}

}  // namespace
