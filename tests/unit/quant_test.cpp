// SPDX-License-Identifier: MIT
// Weight formats: hand-built blocks with hand-computed values for every format, golden quantizer
// bytes, round-trip error budgets, odd block counts, fp16/bf16 conversions, the type table, and a
// bit-exact cross-check against the numpy (de)quantizers of the `gguf` Python package.
#include "core/fp16.h"
#include "quant/formats.h"
#include "quant/q2_k.h"
#include "quant/q3_k.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q4_k.h"
#include "quant/q5_0.h"
#include "quant/q5_1.h"
#include "quant/q5_k.h"
#include "quant/q6_k.h"
#include "quant/q8_0.h"
#include "quant/q8_k.h"
#include "quant/ref/ref.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace pl {
namespace {

// fp16 bit patterns used in the hand-built blocks.
constexpr uint16_t kH1 = 0x3C00;      // 1.0
constexpr uint16_t kH2 = 0x4000;      // 2.0
constexpr uint16_t kHHalf = 0x3800;   // 0.5
constexpr uint16_t kHQuarter = 0x3400;  // 0.25
constexpr uint16_t kHm1 = 0xBC00;     // -1.0
constexpr uint16_t kHm2 = 0xC000;     // -2.0
constexpr uint16_t kHTiny = 0x0001;   // 2^-24, smallest subnormal
constexpr float kTiny = 0x1.0p-24f;

template <typename Block>
std::vector<float> dequant(GgmlType t, const std::vector<Block>& blocks) {
    const TypeTraits* tr = type_traits(t);
    EXPECT_NE(tr, nullptr);
    EXPECT_NE(tr->dequantize_row, nullptr);
    const int64_t n = static_cast<int64_t>(blocks.size()) * Block::kElems;
    std::vector<float> out(static_cast<size_t>(n) + 1, 12345.0f);  // +1: overrun canary
    tr->dequantize_row(blocks.data(), out.data(), n);
    EXPECT_EQ(out.back(), 12345.0f) << "dequantize wrote past n";
    out.pop_back();
    return out;
}

template <typename Block>
Block zero_block() {
    Block b;
    std::memset(&b, 0, sizeof b);
    return b;
}

// Bitwise float equality (so -0.0 != 0.0 and NaN payloads count).
::testing::AssertionResult same_bits(float a, float b) {
    if (std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << a << " (0x" << std::hex << std::bit_cast<uint32_t>(a) << ") != " << b
                                         << " (0x" << std::bit_cast<uint32_t>(b) << ")";
}

// ---------------------------------------------------------------------------------------------
// Per-element decoders written from the header comments (element index -> value), independent of
// the ref code's loop structure. Used to check hand-built k-quant blocks in full.

float q2k_elem(const BlockQ2_K& b, int e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int q = (b.qs[32 * h + l] >> (2 * j)) & 3;
    const uint8_t s = b.scales[e / 16];
    return (fp16_to_fp32(b.d) * static_cast<float>(s & 0xF)) * static_cast<float>(q) -
           fp16_to_fp32(b.dmin) * static_cast<float>(s >> 4);
}

int q3k_scale(const BlockQ3_K& b, int s) {
    const int lo = s < 8 ? (b.scales[s] & 0xF) : (b.scales[s - 8] >> 4);
    const int hi = (b.scales[8 + s % 4] >> (2 * (s / 4))) & 3;
    return lo | (hi << 4);
}

float q3k_elem(const BlockQ3_K& b, int e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int low2 = (b.qs[32 * h + l] >> (2 * j)) & 3;
    const int hbit = (b.hmask[l] >> (4 * h + j)) & 1;
    const int q = low2 - (hbit ? 0 : 4);
    return (fp16_to_fp32(b.d) * static_cast<float>(q3k_scale(b, e / 16) - 32)) * static_cast<float>(q);
}

int q4k_low4(const uint8_t* qs, int e) {
    const int c = e / 64, l = e % 32;
    return (e % 64) < 32 ? (qs[32 * c + l] & 0xF) : (qs[32 * c + l] >> 4);
}

float q4k_elem(const BlockQ4_K& b, int e) {
    uint8_t sc, mn;
    get_scale_min_k4(e / 32, b.scales, sc, mn);
    return (fp16_to_fp32(b.d) * sc) * static_cast<float>(q4k_low4(b.qs, e)) - fp16_to_fp32(b.dmin) * mn;
}

float q5k_elem(const BlockQ5_K& b, int e) {
    uint8_t sc, mn;
    const int s = e / 32;
    get_scale_min_k4(s, b.scales, sc, mn);
    const int q = q4k_low4(b.qs, e) + 16 * ((b.qh[e % 32] >> s) & 1);
    return (fp16_to_fp32(b.d) * sc) * static_cast<float>(q) - fp16_to_fp32(b.dmin) * mn;
}

float q6k_elem(const BlockQ6_K& b, int e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t lo_byte = b.ql[64 * h + (g & 1) * 32 + l];
    const int low4 = g < 2 ? (lo_byte & 0xF) : (lo_byte >> 4);
    const int high2 = (b.qh[32 * h + l] >> (2 * g)) & 3;
    const int q = (low4 | (high2 << 4)) - 32;
    return (fp16_to_fp32(b.d) * static_cast<float>(b.scales[e / 16])) * static_cast<float>(q);
}

// Fills a block's bytes with a fixed pseudo-random pattern (so every bit position is exercised)
// except the fp16 fields, which the caller sets.
template <typename Block>
void fill_pattern(Block& b, uint32_t seed) {
    std::mt19937 rng(seed);
    auto* p = reinterpret_cast<uint8_t*>(&b);
    for (size_t i = 0; i < sizeof b; ++i) p[i] = static_cast<uint8_t>(rng());
}

// =============================================================================================
// Hand-built blocks, one test per format.

TEST(QuantFormats, BlockSizesMatchGgml) {
    EXPECT_EQ(sizeof(BlockQ4_0), 18u);
    EXPECT_EQ(sizeof(BlockQ4_1), 20u);
    EXPECT_EQ(sizeof(BlockQ5_0), 22u);
    EXPECT_EQ(sizeof(BlockQ5_1), 24u);
    EXPECT_EQ(sizeof(BlockQ8_0), 34u);
    EXPECT_EQ(sizeof(BlockQ2_K), 84u);
    EXPECT_EQ(sizeof(BlockQ3_K), 110u);
    EXPECT_EQ(sizeof(BlockQ4_K), 144u);
    EXPECT_EQ(sizeof(BlockQ5_K), 176u);
    EXPECT_EQ(sizeof(BlockQ6_K), 210u);
    EXPECT_EQ(sizeof(BlockQ8_K), 292u);
    // Field offsets GGUF readers depend on.
    EXPECT_EQ(offsetof(BlockQ2_K, d), 80u);
    EXPECT_EQ(offsetof(BlockQ3_K, d), 108u);
    EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
    EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
    EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
    EXPECT_EQ(offsetof(BlockQ8_K, bsums), 260u);
}

TEST(QuantFormats, Q4_0HandBuilt) {
    // Block 0: d = 0.5; qs[j] = j | (15 - j) << 4, so element j has q = j and element j+16 has
    // q = 15 - j:  w[j] = 0.5 * (j - 8),  w[j+16] = 0.5 * (7 - j).
    // Block 1: d = -2 (negative scale flips signs): q = 0 -> (0-8)*-2 = 16, q = 15 -> 7*-2 = -14.
    // Block 2: d = 2^-24 (subnormal fp16): q = 15 -> 7 * 2^-24, q = 0 -> -8 * 2^-24 = -2^-21.
    std::vector<BlockQ4_0> b(3, zero_block<BlockQ4_0>());
    b[0].d = kHHalf;
    for (int j = 0; j < 16; ++j) b[0].qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    b[1].d = kHm2;
    b[1].qs[0] = 0xF0;  // element 0: q=0, element 16: q=15
    b[2].d = kHTiny;
    b[2].qs[0] = 0x0F;  // element 0: q=15, element 16: q=0
    b[2].qs[1] = 0x88;  // elements 1 and 17: q=8
    const auto y = dequant(GgmlType::Q4_0, b);
    EXPECT_EQ(y[0], -4.0f);   // 0.5 * (0 - 8)
    EXPECT_EQ(y[8], 0.0f);    // 0.5 * (8 - 8)
    EXPECT_EQ(y[15], 3.5f);   // 0.5 * (15 - 8)
    EXPECT_EQ(y[16], 3.5f);   // 0.5 * (15 - 8), high nibble of qs[0]
    EXPECT_EQ(y[31], -4.0f);  // 0.5 * (0 - 8), high nibble of qs[15]
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 8)) << j;
        EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(7 - j)) << j;
    }
    EXPECT_EQ(y[32], 16.0f);    // (0 - 8) * -2
    EXPECT_EQ(y[48], -14.0f);   // (15 - 8) * -2
    EXPECT_EQ(y[33], 16.0f);    // qs[1] = 0 too: both nibbles q=0
    EXPECT_EQ(y[64], 7.0f * kTiny);
    EXPECT_EQ(y[80], -8.0f * kTiny);
    EXPECT_TRUE(same_bits(y[64 + 1], 0.0f)) << "(8 - 8) * 2^-24 is +0";
    EXPECT_TRUE(same_bits(y[64 + 17], 0.0f));
    EXPECT_EQ(y[64 + 2], -8.0f * kTiny);  // qs[2] = 0: q = 0
}

TEST(QuantFormats, Q4_1HandBuilt) {
    // d = 0.25, m = -1:  w = q * 0.25 - 1.  q=0 -> -1, q=15 -> 2.75, q=4 -> 0.
    // Block 1: d = -2 (negative), m = 2: q=15 -> -28, q=0 -> 2.
    std::vector<BlockQ4_1> b(2, zero_block<BlockQ4_1>());
    b[0].d = kHQuarter;
    b[0].m = kHm1;
    b[0].qs[0] = 0xF0;  // elem 0: q=0, elem 16: q=15
    b[0].qs[1] = 0x04;  // elem 1: q=4, elem 17: q=0
    b[1].d = kHm2;
    b[1].m = kH2;
    b[1].qs[5] = 0x0F;  // elem 5: q=15, elem 21: q=0
    const auto y = dequant(GgmlType::Q4_1, b);
    EXPECT_EQ(y[0], -1.0f);
    EXPECT_EQ(y[16], 2.75f);
    EXPECT_EQ(y[1], 0.0f);
    EXPECT_EQ(y[17], -1.0f);
    EXPECT_EQ(y[32 + 5], -28.0f);  // 15 * -2 + 2
    EXPECT_EQ(y[32 + 21], 2.0f);   //  0 * -2 + 2
}

TEST(QuantFormats, Q5_0HandBuilt) {
    // d = 1, w = q - 16 with q = low nibble | (qh bit i) << 4.
    // qh = 0x80000001: element 0 and element 31 have the fifth bit.
    //   elem 0:  low = qs[0] & 0xF = 15, bit -> q = 31 -> 15   (max)
    //   elem 16: low = qs[0] >> 4 = 0, no bit -> q = 0 -> -16  (min)
    //   elem 31: low = qs[15] >> 4 = 0, bit -> q = 16 -> 0
    //   elem 15: low = qs[15] & 0xF = 9, no bit -> q = 9 -> -7
    // Block 1: d = -0.5, qh = 0x00010000 (elem 16): elem 16 low = qs[0]>>4 = 15 -> q 31 -> -7.5;
    //   elem 0: q = 0 -> -16 * -0.5 = 8.
    std::vector<BlockQ5_0> b(2, zero_block<BlockQ5_0>());
    b[0].d = kH1;
    const uint32_t qh0 = 0x80000001u;
    std::memcpy(b[0].qh, &qh0, 4);
    b[0].qs[0] = 0x0F;
    b[0].qs[15] = 0x09;
    b[1].d = 0xB800;  // -0.5
    const uint32_t qh1 = 0x00010000u;
    std::memcpy(b[1].qh, &qh1, 4);
    b[1].qs[0] = 0xF0;
    const auto y = dequant(GgmlType::Q5_0, b);
    EXPECT_EQ(y[0], 15.0f);
    EXPECT_EQ(y[16], -16.0f);
    EXPECT_EQ(y[31], 0.0f);
    EXPECT_EQ(y[15], -7.0f);
    EXPECT_EQ(y[1], -16.0f);
    EXPECT_EQ(y[32 + 16], -7.5f);
    EXPECT_EQ(y[32 + 0], 8.0f);
    // Byte order of qh is little-endian: qh[0] bit 0 is element 0, qh[3] bit 7 element 31.
    EXPECT_EQ(b[0].qh[0], 0x01);
    EXPECT_EQ(b[0].qh[3], 0x80);
}

TEST(QuantFormats, Q5_1HandBuilt) {
    // d = 0.5, m = 2: w = q * 0.5 + 2.  q=31 -> 17.5, q=0 -> 2, q=16 -> 10.
    std::vector<BlockQ5_1> b(1, zero_block<BlockQ5_1>());
    b[0].d = kHHalf;
    b[0].m = kH2;
    b[0].qh[0] = 0x01;  // elem 0 fifth bit
    b[0].qh[2] = 0x02;  // elem 17 fifth bit
    b[0].qs[0] = 0x0F;  // elem 0 low 15 -> q 31; elem 16 low 0 -> q 0
    b[0].qs[1] = 0x00;  // elem 17 low 0 + bit -> q 16
    const auto y = dequant(GgmlType::Q5_1, b);
    EXPECT_EQ(y[0], 17.5f);
    EXPECT_EQ(y[16], 2.0f);
    EXPECT_EQ(y[17], 10.0f);
    EXPECT_EQ(y[1], 2.0f);
}

TEST(QuantFormats, Q8_0HandBuilt) {
    // d = 0.5: w = qs * 0.5.  -128 -> -64, 127 -> 63.5, -1 -> -0.5.  d = -2: 127 -> -254.
    std::vector<BlockQ8_0> b(2, zero_block<BlockQ8_0>());
    b[0].d = kHHalf;
    b[0].qs[0] = -128;
    b[0].qs[1] = 127;
    b[0].qs[2] = -1;
    b[1].d = kHm2;
    b[1].qs[31] = 127;
    b[1].qs[30] = -128;
    const auto y = dequant(GgmlType::Q8_0, b);
    EXPECT_EQ(y[0], -64.0f);
    EXPECT_EQ(y[1], 63.5f);
    EXPECT_EQ(y[2], -0.5f);
    EXPECT_EQ(y[3], 0.0f);
    EXPECT_EQ(y[63], -254.0f);
    EXPECT_EQ(y[62], 256.0f);
}

TEST(QuantFormats, Q2_KHandBuilt) {
    // d = 1, dmin = 0.5; w = (d * sc) * q - dmin * mn for sub-block s = e / 16, q = 2 bits.
    auto b = zero_block<BlockQ2_K>();
    b.d = kH1;
    b.dmin = kHHalf;
    b.scales[0] = 0x21;   // s0: sc 1, mn 2  ->  w = q - 1
    b.scales[1] = 0xF0;   // s1: sc 0, mn 15 ->  w = -7.5 whatever q
    b.scales[2] = 0x0F;   // s2: sc 15, mn 0 ->  w = 15 q      (plane j=1 of qs[0..15])
    b.scales[15] = 0x3F;  // s15: sc 15, mn 3 -> w = 15 q - 1.5 (h=1, plane 3 of qs[48..63])
    b.qs[0] = 0b00'00'11'11;  // e0: q = 3 (bits 0-1), e32: q = 3 (bits 2-3)
    b.qs[1] = 0b00'00'10'00;  // e1: q = 0,             e33: q = 2
    b.qs[63] = 0b11'00'00'00;  // e255 (h=1, j=3, l=31): q = 3
    std::vector<BlockQ2_K> v{b};
    const auto y = dequant(GgmlType::Q2_K, v);
    EXPECT_EQ(y[0], 2.0f);     // 1*3 - 0.5*2
    EXPECT_EQ(y[1], -1.0f);    // 1*0 - 1
    EXPECT_EQ(y[16], -7.5f);   // 0*q - 0.5*15
    EXPECT_EQ(y[32], 45.0f);   // 15*3 - 0
    EXPECT_EQ(y[33], 30.0f);   // 15*2
    EXPECT_EQ(y[255], 43.5f);  // 15*3 - 0.5*3
    EXPECT_EQ(y[254], -1.5f);  // 15*0 - 1.5
    // A full pattern block against the per-element decoder, incl. a negative and a subnormal d.
    for (uint16_t d : {kH1, kHm2, kHTiny}) {
        fill_pattern(b, 7u + d);
        b.d = d;
        b.dmin = kHQuarter;
        v = {b};
        const auto z = dequant(GgmlType::Q2_K, v);
        for (int e = 0; e < 256; ++e) ASSERT_TRUE(same_bits(z[e], q2k_elem(b, e))) << "e=" << e << " d=" << d;
    }
}

TEST(QuantFormats, Q3_KHandBuilt) {
    // d = 0.5; w = (d * (sc - 32)) * q, q = low2 - (hmask bit ? 0 : 4) in [-4, 3].
    auto b = zero_block<BlockQ3_K>();
    b.d = kHHalf;
    // sc[0] = 0 (low nibble scales[0]=0, high bits scales[8]&3=0)            -> factor -32
    // sc[1] = 63 (low scales[1]&0xF = 15, high (scales[9] & 3) = 3)         -> factor +31
    // sc[8] = 32 (low scales[0]>>4 = 0, high (scales[8]>>4)&3 = 2)           -> factor 0
    // sc[15] = 33 (low scales[7]>>4 = 1, high (scales[11]>>6)&3 = 2)         -> factor 1
    b.scales[1] = 0x0F;
    b.scales[9] = 0x03;
    b.scales[8] = 0x20;
    b.scales[7] = 0x10;
    b.scales[11] = 0x80;
    b.qs[0] = 0x03;      // e0: low2 = 3
    b.hmask[0] = 0x01;   // e0: high bit set -> q = 3
    // e1: qs[1] = 0, hmask[1] = 0 -> q = 0 - 4 = -4
    b.qs[16] = 0x02;     // e16 (sub-block 1): low2 = 2, no high bit -> q = -2
    b.qs[32] = 0x03;     // e128 (h=1, j=0, l=0, sub-block 8): low2 3
    b.hmask[0] |= 0x10;  //   high bit 4*1+0 = 4 set -> q = 3
    b.qs[63] = 0xC0;     // e255 (h=1, j=3, l=31, sub-block 15): low2 = 3
    b.hmask[31] = 0x80;  //   high bit 7 set -> q = 3
    std::vector<BlockQ3_K> v{b};
    const auto y = dequant(GgmlType::Q3_K, v);
    EXPECT_EQ(y[0], -48.0f);   // 0.5 * -32 * 3
    EXPECT_EQ(y[1], 64.0f);    // 0.5 * -32 * -4
    EXPECT_EQ(y[16], -31.0f);  // 0.5 * 31 * -2
    EXPECT_EQ(y[17], -62.0f);  // 0.5 * 31 * -4 (q=0 with no high bit)
    EXPECT_EQ(y[128], 0.0f);   // 0.5 * 0 * 3
    EXPECT_EQ(y[255], 1.5f);   // 0.5 * 1 * 3
    EXPECT_EQ(y[254], -2.0f);  // 0.5 * 1 * -4
    for (uint16_t d : {kH1, kHm2, kHTiny}) {
        fill_pattern(b, 11u + d);
        b.d = d;
        v = {b};
        const auto z = dequant(GgmlType::Q3_K, v);
        for (int e = 0; e < 256; ++e) ASSERT_TRUE(same_bits(z[e], q3k_elem(b, e))) << "e=" << e << " d=" << d;
    }
}

// Scales shared by the Q4_K and Q5_K hand-built blocks (GGML get_scale_min_k4 packing):
//   scales[0] = 0xC1: s0 sc = 0xC1 & 63 = 1;   top bits 3 -> bits 4-5 of s4's sc
//   scales[4] = 0x45: s0 mn = 0x45 & 63 = 5;   top bits 1 -> bits 4-5 of s4's mn
//   scales[8] = 0x2A: s4 sc = 0xA | 3 << 4 = 58;  s4 mn = 2 | 1 << 4 = 18
//   scales[1] = 0x02, scales[5] = 0x00: s1 sc = 2, mn = 0
//   scales[3] = 0xC0, scales[7] = 0xC0: s3 sc = 0, mn = 0; top bits 3 -> s7
//   scales[11] = 0xFF: s7 sc = 0xF | 3 << 4 = 63;  s7 mn = 0xF | 3 << 4 = 63
template <typename Block>
void set_k4_scales(Block& b) {
    b.d = kH1;
    b.dmin = kHHalf;
    b.scales[0] = 0xC1;
    b.scales[4] = 0x45;
    b.scales[8] = 0x2A;
    b.scales[1] = 0x02;
    b.scales[3] = 0xC0;
    b.scales[7] = 0xC0;
    b.scales[11] = 0xFF;
}

TEST(QuantFormats, GetScaleMinK4) {
    auto b = zero_block<BlockQ4_K>();
    set_k4_scales(b);
    uint8_t sc, mn;
    get_scale_min_k4(0, b.scales, sc, mn);
    EXPECT_EQ(sc, 1);
    EXPECT_EQ(mn, 5);
    get_scale_min_k4(1, b.scales, sc, mn);
    EXPECT_EQ(sc, 2);
    EXPECT_EQ(mn, 0);
    get_scale_min_k4(4, b.scales, sc, mn);
    EXPECT_EQ(sc, 58);
    EXPECT_EQ(mn, 18);
    get_scale_min_k4(7, b.scales, sc, mn);
    EXPECT_EQ(sc, 63);
    EXPECT_EQ(mn, 63);
}

TEST(QuantFormats, Q4_KHandBuilt) {
    // w = (d * sc) * q - dmin * mn, d = 1, dmin = 0.5, q = nibble; scales as set_k4_scales.
    auto b = zero_block<BlockQ4_K>();
    set_k4_scales(b);
    b.qs[0] = 0xF3;    // e0 (s0): q 3;  e32 (s1): q 15
    b.qs[64] = 0x07;   // e128 (c=2, s4): q 7
    b.qs[127] = 0xF0;  // e255 (c=3, high nibble, s7): q 15;  e223 (s6, sc/mn 0): q 0
    std::vector<BlockQ4_K> v{b};
    const auto y = dequant(GgmlType::Q4_K, v);
    EXPECT_EQ(y[0], 0.5f);     // 1*3 - 0.5*5
    EXPECT_EQ(y[1], -2.5f);    // 1*0 - 2.5
    EXPECT_EQ(y[32], 30.0f);   // 2*15 - 0
    EXPECT_EQ(y[96], 0.0f);    // s3: 0*q - 0
    EXPECT_EQ(y[128], 397.0f); // 58*7 - 0.5*18
    EXPECT_EQ(y[255], 913.5f); // 63*15 - 0.5*63
    EXPECT_EQ(y[254], -31.5f); // 63*0 - 31.5
    for (uint16_t d : {kH1, kHm2, kHTiny}) {
        fill_pattern(b, 13u + d);
        b.d = d;
        b.dmin = kHm1;  // negative dmin adds the min term
        v = {b};
        const auto z = dequant(GgmlType::Q4_K, v);
        for (int e = 0; e < 256; ++e) ASSERT_TRUE(same_bits(z[e], q4k_elem(b, e))) << "e=" << e << " d=" << d;
    }
}

TEST(QuantFormats, Q5_KHandBuilt) {
    // As Q4_K plus q += 16 * ((qh[e % 32] >> (e / 32)) & 1).
    auto b = zero_block<BlockQ5_K>();
    set_k4_scales(b);
    b.qs[0] = 0xF3;    // e0: low 3; e32: low 15
    b.qh[0] = 0x01;    // e0 (s0): fifth bit -> q 19;  e32 (s1, bit 1) not set -> q 15
    b.qs[127] = 0xF0;  // e255: low 15
    b.qh[31] = 0x80;   // e255 (s7): fifth bit -> q 31
    std::vector<BlockQ5_K> v{b};
    const auto y = dequant(GgmlType::Q5_K, v);
    EXPECT_EQ(y[0], 16.5f);      // 1*19 - 0.5*5
    EXPECT_EQ(y[32], 30.0f);     // 2*15
    EXPECT_EQ(y[255], 1921.5f);  // 63*31 - 31.5
    EXPECT_EQ(y[254], -31.5f);   // s7, q 0 (qh[30] bit 7 clear): 63*0 - 31.5
    EXPECT_EQ(y[223], 0.0f);     // s6 has sc = mn = 0
    for (uint16_t d : {kH1, kHm2, kHTiny}) {
        fill_pattern(b, 17u + d);
        b.d = d;
        b.dmin = kHQuarter;
        v = {b};
        const auto z = dequant(GgmlType::Q5_K, v);
        for (int e = 0; e < 256; ++e) ASSERT_TRUE(same_bits(z[e], q5k_elem(b, e))) << "e=" << e << " d=" << d;
    }
}

TEST(QuantFormats, Q6_KHandBuilt) {
    // d = 0.5; w = (d * scales[e/16]) * q, q = (low4 | high2 << 4) - 32 in [-32, 31].
    auto b = zero_block<BlockQ6_K>();
    b.d = kHHalf;
    b.scales[0] = -1;
    b.scales[2] = 2;
    b.scales[15] = 127;
    b.scales[14] = -128;
    b.ql[1] = 0x0F;   // e1: low 15
    b.qh[1] = 0x03;   // e1: high 3 -> q = 63 - 32 = 31
    b.ql[32] = 0x01;  // e32 (g=1, l=0, sub-block 2): low 1
    b.qh[0] = 0x08;   // e32: high2 = (qh[0] >> 2) & 3 = 2 -> q = 33 - 32 = 1; e0 high2 = 0
    b.ql[127] = 0xA0; // e255 (h=1, g=3, l=31): low = ql[127] >> 4 = 10
    b.qh[63] = 0x40;  // e255: high2 = qh[63] >> 6 = 1 -> q = 26 - 32 = -6
    std::vector<BlockQ6_K> v{b};
    const auto y = dequant(GgmlType::Q6_K, v);
    EXPECT_EQ(y[0], 16.0f);      // 0.5 * -1 * (0 - 32)
    EXPECT_EQ(y[1], -15.5f);     // 0.5 * -1 * 31
    EXPECT_EQ(y[32], 1.0f);      // 0.5 * 2 * 1
    EXPECT_EQ(y[255], -381.0f);  // 0.5 * 127 * -6
    EXPECT_EQ(y[224], 2048.0f);  // sub-block 14: 0.5 * -128 * -32
    for (uint16_t d : {kH1, kHm2, kHTiny}) {
        fill_pattern(b, 19u + d);
        b.d = d;
        v = {b};
        const auto z = dequant(GgmlType::Q6_K, v);
        for (int e = 0; e < 256; ++e) ASSERT_TRUE(same_bits(z[e], q6k_elem(b, e))) << "e=" << e << " d=" << d;
    }
}

TEST(QuantFormats, Q8_KHandBuilt) {
    // fp32 d = 0.25: w = 0.25 * qs.  -128 -> -32, 127 -> 31.75.
    auto b = zero_block<BlockQ8_K>();
    b.d = 0.25f;
    b.qs[0] = -128;
    b.qs[255] = 127;
    std::vector<BlockQ8_K> v{b};
    const auto y = dequant(GgmlType::Q8_K, v);
    EXPECT_EQ(y[0], -32.0f);
    EXPECT_EQ(y[255], 31.75f);
    EXPECT_EQ(y[1], 0.0f);
}

TEST(QuantFormats, FloatTypesHandBuilt) {
    const uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x3555};
    const float fh[] = {1.0f, -2.0f, 65504.0f, kTiny, -0.0f, INFINITY, 0x1.554p-2f};
    std::vector<float> out(std::size(h));
    type_traits(GgmlType::F16)->dequantize_row(h, out.data(), std::ssize(h));
    for (size_t i = 0; i < std::size(h); ++i) EXPECT_TRUE(same_bits(out[i], fh[i])) << i;

    const uint16_t bf[] = {0x3F80, 0xC000, 0x7F7F, 0x0001, 0x8000, 0xFF80};
    const float fbf[] = {1.0f, -2.0f, 0x1.FEp127f, 0x1.0p-133f, -0.0f, -INFINITY};
    out.resize(std::size(bf));
    type_traits(GgmlType::BF16)->dequantize_row(bf, out.data(), std::ssize(bf));
    for (size_t i = 0; i < std::size(bf); ++i) EXPECT_TRUE(same_bits(out[i], fbf[i])) << i;

    const float f[] = {1.5f, -0.0f, 3.0e38f};
    std::vector<uint8_t> raw(sizeof f);
    type_traits(GgmlType::F32)->quantize_row(f, raw.data(), 3);
    out.assign(3, 0.0f);
    type_traits(GgmlType::F32)->dequantize_row(raw.data(), out.data(), 3);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(out[i], f[i]));
}

// =============================================================================================
// Golden quantizer bytes. Expected bytes were produced by the numpy reference quantizers of the
// `gguf` package (bit-exact with ggml-quants.c); they pin both our arithmetic and the layout.

std::vector<uint8_t> quantize_bytes(GgmlType t, const std::vector<float>& x) {
    const TypeTraits* tr = type_traits(t);
    std::vector<uint8_t> out(*row_bytes(static_cast<uint32_t>(t), std::ssize(x)));
    tr->quantize_row(x.data(), out.data(), std::ssize(x));
    return out;
}

TEST(QuantGolden, Q8_0) {
    // x[j] = (j - 16) / 4: amax = 4, d = 4/127 -> fp16 0x2808 (0.0314941...), q = roundf(x*127/4):
    // q[0] = -127 (0x81), q[1] = round(-119.06) = -119 (0x89), q[16] = 0, q[31] = round(119.06) = 119.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) * 0.25f;
    const std::vector<uint8_t> want = {0x08, 0x28, 0x81, 0x89, 0x91, 0x99, 0xa1, 0xa9, 0xb1, 0xb9, 0xc0, 0xc8,
                                       0xd0, 0xd8, 0xe0, 0xe8, 0xf0, 0xf8, 0x00, 0x08, 0x10, 0x18, 0x20, 0x28,
                                       0x30, 0x38, 0x40, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77};
    EXPECT_EQ(quantize_bytes(GgmlType::Q8_0, x), want);
}

TEST(QuantGolden, Q4_0) {
    // x[j] = (j - 10) * 0.3: the largest magnitude is +6.3 (j = 31), so d = 6.3 / -8 = -0.7875
    // (fp16 0xBA4D); x[0] = -3 -> trunc(-3 / -0.7875 + 8.5) = trunc(12.31) = 12, x[16] = 1.8 ->
    // trunc(6.21) = 6, so qs[0] = 0x6C; x[31] -> trunc(-8 + 8.5) = 0.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 10) * 0.3f;
    const std::vector<uint8_t> want = {0x4d, 0xba, 0x6c, 0x5b, 0x5b, 0x5b, 0x4a, 0x4a, 0x3a,
                                       0x39, 0x39, 0x28, 0x28, 0x28, 0x17, 0x17, 0x06, 0x06};
    EXPECT_EQ(quantize_bytes(GgmlType::Q4_0, x), want);
}

std::vector<float> golden_q41_input() {
    // x[j] = ((j*j) mod 17) / 8 - 1, in [-1, 1]: min -1 (j = 0), max 1 (j = 13 / 21 / 30..).
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j * j) % 17) * 0.125f - 1.0f;
    return x;
}

TEST(QuantGolden, Q4_1) {
    // d = (1 - -1) / 15 = 0.1333 (fp16 0x3044 = 0.13330), m = -1 (0xBC00); x[0] = -1 -> q 0;
    // x[16] = (256 mod 17 = 1) / 8 - 1 = -0.875 -> trunc(0.125 * 7.5 + 0.5) = 1; so qs[0] = 0x10.
    const std::vector<uint8_t> want = {0x44, 0x30, 0x00, 0xbc, 0x10, 0x01, 0x14, 0x48, 0x8f, 0xf7,
                                       0x72, 0x2e, 0xec, 0xcc, 0xce, 0xe2, 0x27, 0x7f, 0xf8, 0x84};
    EXPECT_EQ(quantize_bytes(GgmlType::Q4_1, golden_q41_input()), want);
}

TEST(QuantGolden, Q5_0AndQ5_1) {
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 10) * 0.3f;
    const std::vector<uint8_t> want50 = {0x4d, 0xb6, 0xff, 0x07, 0x00, 0x00, 0xb8, 0xb7, 0xa6, 0x95, 0x85,
                                         0x84, 0x73, 0x62, 0x52, 0x51, 0x40, 0x3f, 0x2e, 0x2e, 0x1d, 0x0c};
    EXPECT_EQ(quantize_bytes(GgmlType::Q5_0, x), want50);
    const std::vector<uint8_t> want51 = {0x21, 0x2c, 0x00, 0xbc, 0xb8, 0x77, 0x70, 0xef, 0x20, 0x02, 0x28, 0x81,
                                         0x1f, 0xf0, 0x04, 0x4d, 0xd9, 0x99, 0x9d, 0xd4, 0x40, 0x0f, 0xf1, 0x18};
    EXPECT_EQ(quantize_bytes(GgmlType::Q5_1, golden_q41_input()), want51);
}

TEST(QuantGolden, ZeroAndEdgeBlocks) {
    // All-zero input: id = 0, so Q8_0 stores q = 0, Q4_0 q = 8 (0x88), Q4_1 q = 0. Q4_0's scale is
    // 0 / -8 = -0.0, stored as fp16 0x8000 exactly as GGML does (a +0 here would break golden files).
    const std::vector<float> zero(32, 0.0f);
    std::vector<uint8_t> want(34, 0);
    EXPECT_EQ(quantize_bytes(GgmlType::Q8_0, zero), want);
    want.assign(18, 0x88);
    want[0] = 0x00;
    want[1] = 0x80;
    EXPECT_EQ(quantize_bytes(GgmlType::Q4_0, zero), want);
    want.assign(20, 0);
    EXPECT_EQ(quantize_bytes(GgmlType::Q4_1, zero), want);
    // Q4_0 with a negative extreme: max = -8 -> d = 1 (0x3C00); -8 -> q 0; 7 -> q 15 (clamped from
    // trunc(15.5)); ties pick the first largest |x|: +8 after -8 does not replace it.
    std::vector<float> x(32, 0.0f);
    x[0] = -8.0f;
    x[1] = 7.0f;
    x[2] = 8.0f;  // |8| == |-8|: first one wins, so d stays +1 and 8 -> trunc(16.5) -> clamp 15
    const auto q = quantize_bytes(GgmlType::Q4_0, x);
    EXPECT_EQ(q[0], 0x00);
    EXPECT_EQ(q[1], 0x3C);
    EXPECT_EQ(q[2], 0x80);  // elem 0: q 0; elem 16: 0 -> q 8
    EXPECT_EQ(q[3], 0x8F);  // elem 1: q 15
    EXPECT_EQ(q[4], 0x8F);  // elem 2: q 15 (clamped)
}

// =============================================================================================
// Round trip, odd block counts.

struct RoundTripCase {
    GgmlType type;
    double nmse_budget;  // sum (x - y)^2 / sum x^2 on N(0, 1) data
};

std::vector<float> gaussian(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& v : x) v = dist(rng);
    return x;
}

TEST(QuantRoundTrip, ErrorWithinBudget) {
    // Budgets are about 1.5x the error measured on this data (expected: step^2 / 12 per weight).
    const RoundTripCase cases[] = {
        {GgmlType::F32, 0.0},      {GgmlType::F16, 2e-7},     {GgmlType::BF16, 2e-5},
        {GgmlType::Q8_0, 6e-5},    {GgmlType::Q5_0, 2.5e-3},  {GgmlType::Q5_1, 2e-3},
        {GgmlType::Q4_0, 1e-2},    {GgmlType::Q4_1, 8e-3},
    };
    const auto x = gaussian(32 * 256, 42);
    for (const auto& c : cases) {
        const TypeTraits* tr = type_traits(c.type);
        ASSERT_NE(tr->quantize_row, nullptr) << tr->name;
        std::vector<uint8_t> q(*row_bytes(static_cast<uint32_t>(c.type), std::ssize(x)));
        tr->quantize_row(x.data(), q.data(), std::ssize(x));
        std::vector<float> y(x.size());
        tr->dequantize_row(q.data(), y.data(), std::ssize(x));
        double num = 0, den = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
            den += double(x[i]) * x[i];
        }
        const double nmse = num / den;
        EXPECT_LE(nmse, c.nmse_budget) << tr->name;
        RecordProperty(std::string("nmse_") + tr->name, std::to_string(nmse));
    }
}

TEST(QuantRoundTrip, OddBlockCountsMatchPerBlock) {
    // A row of k blocks must equal k separate one-block calls (no cross-block state), and the
    // dequantizer must write exactly n floats.
    const GgmlType types[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                              GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0};
    for (const GgmlType t : types) {
        const TypeTraits* tr = type_traits(t);
        for (const int k : {1, 2, 3, 7, 33}) {
            const int64_t n = 32 * k;
            const auto x = gaussian(static_cast<size_t>(n), 1000u + static_cast<uint32_t>(k));
            std::vector<uint8_t> row(*row_bytes(static_cast<uint32_t>(t), n) + 1, 0xA5);
            tr->quantize_row(x.data(), row.data(), n);
            EXPECT_EQ(row.back(), 0xA5) << tr->name << " k=" << k << ": quantize wrote past the row";
            const size_t blk = *row_bytes(static_cast<uint32_t>(t), 32);
            std::vector<uint8_t> one(blk);
            for (int b = 0; b < k; ++b) {
                tr->quantize_row(x.data() + 32 * b, one.data(), 32);
                ASSERT_EQ(0, std::memcmp(one.data(), row.data() + blk * static_cast<size_t>(b), blk))
                    << tr->name << " k=" << k << " block " << b;
            }
            std::vector<float> y(static_cast<size_t>(n) + 1, -7.0f);
            tr->dequantize_row(row.data(), y.data(), n);
            EXPECT_EQ(y.back(), -7.0f) << tr->name << " k=" << k;
        }
    }
    // K-quants: dequantizing k super-blocks at once equals dequantizing each alone.
    const GgmlType ktypes[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                               GgmlType::Q8_K};
    for (const GgmlType t : ktypes) {
        const TypeTraits* tr = type_traits(t);
        for (const int k : {1, 2, 3, 7, 33}) {
            std::mt19937 rng(static_cast<uint32_t>(k));
            std::vector<uint8_t> raw(tr->block_bytes * static_cast<size_t>(k));
            for (auto& v : raw) v = static_cast<uint8_t>(rng() & 0x3F);  // small -> finite scales
            if (t == GgmlType::Q8_K)
                for (int b = 0; b < k; ++b) {
                    const float d = 0.001f * static_cast<float>(b + 1);
                    std::memcpy(raw.data() + tr->block_bytes * static_cast<size_t>(b), &d, 4);
                }
            const int64_t n = 256 * k;
            std::vector<float> all(static_cast<size_t>(n) + 1, -7.0f), one(256);
            tr->dequantize_row(raw.data(), all.data(), n);
            EXPECT_EQ(all.back(), -7.0f) << tr->name << " k=" << k;
            for (int b = 0; b < k; ++b) {
                tr->dequantize_row(raw.data() + tr->block_bytes * static_cast<size_t>(b), one.data(), 256);
                for (int e = 0; e < 256; ++e)
                    ASSERT_TRUE(same_bits(one[e], all[static_cast<size_t>(256 * b + e)])) << tr->name << " k=" << k;
            }
        }
    }
}

// =============================================================================================
// fp16 / bf16 conversions (core/fp16.h).

TEST(Fp16, ExhaustiveHalfRoundTrip) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        const uint16_t back = fp32_to_fp16(f);
        if (std::isnan(f)) {
            ASSERT_EQ(h & 0x7C00u, 0x7C00u);
            ASSERT_NE(h & 0x3FFu, 0u);
            ASSERT_EQ(back & 0x7C00u, 0x7C00u) << h;  // still NaN, same sign, quiet
            ASSERT_NE(back & 0x3FFu, 0u) << h;
            ASSERT_EQ(back & 0x8000u, h & 0x8000u) << h;
        } else {
            ASSERT_EQ(back, h) << std::hex << h;
        }
    }
}

TEST(Fp16, KnownValues) {
    EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
    EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
    EXPECT_EQ(fp16_to_fp32(0x0400), 0x1.0p-14f);    // smallest normal
    EXPECT_EQ(fp16_to_fp32(0x03FF), 0x1.FF8p-15f);  // largest subnormal = 1023 * 2^-24
    EXPECT_EQ(fp16_to_fp32(0x0001), 0x1.0p-24f);
    EXPECT_TRUE(same_bits(fp16_to_fp32(0x8000), -0.0f));
    EXPECT_EQ(fp16_to_fp32(0xFC00), -INFINITY);
    // Exhaustively: value equals the closed form (-1)^s * 2^(e-15) * (1 + m/1024) (or subnormal).
    for (uint32_t h = 0; h < 0x7C00; ++h) {
        const int e = static_cast<int>(h >> 10), m = static_cast<int>(h & 0x3FF);
        const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
        ASSERT_EQ(static_cast<double>(fp16_to_fp32(static_cast<uint16_t>(h))), v) << h;
        ASSERT_EQ(static_cast<double>(fp16_to_fp32(static_cast<uint16_t>(h | 0x8000))), -v) << h;
    }
}

TEST(Fp16, RoundingToNearestEven) {
    // Halfway between 1 (0x3C00) and 1 + 2^-10 (0x3C01): ties to even -> 0x3C00.
    EXPECT_EQ(fp32_to_fp16(1.0f + 0x1.0p-11f), 0x3C00);
    // Halfway between 0x3C01 and 0x3C02: even is 0x3C02.
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1.0p-11f), 0x3C02);
    // Just above halfway rounds up.
    EXPECT_EQ(fp32_to_fp16(std::nextafter(1.0f + 0x1.0p-11f, 2.0f)), 0x3C01);
    // Overflow boundary: 65504 is max; 65520 is the midpoint to 65536 -> ties to even = inf.
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
    EXPECT_EQ(fp32_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(-1e9f), 0xFC00);
    // Subnormals: 2^-25 is the midpoint of 0 and 2^-24 -> 0 (even); just above -> 0x0001.
    EXPECT_EQ(fp32_to_fp16(0x1.0p-25f), 0x0000);
    EXPECT_EQ(fp32_to_fp16(std::nextafter(0x1.0p-25f, 1.0f)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(-0x1.0p-26f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(3 * 0x1.0p-25f), 0x0002);  // 1.5 * 2^-24: tie between 1 and 2 -> 2
    EXPECT_EQ(fp32_to_fp16(5 * 0x1.0p-25f), 0x0002);  // 2.5 * 2^-24: tie between 2 and 3 -> 2
    // Largest subnormal rounding up into the smallest normal.
    EXPECT_EQ(fp32_to_fp16(0x1.FFCp-15f), 0x0400);
    EXPECT_EQ(fp32_to_fp16(1e-40f), 0x0000);  // fp32 subnormal
    // Every midpoint between adjacent finite halves rounds to the even neighbour.
    for (uint32_t h = 0; h < 0x7BFF; ++h) {
        const double lo = fp16_to_fp32(static_cast<uint16_t>(h)), hi = fp16_to_fp32(static_cast<uint16_t>(h + 1));
        const float mid = static_cast<float>((lo + hi) / 2);  // exact in fp32
        ASSERT_EQ(fp32_to_fp16(mid), (h & 1) ? h + 1 : h) << h;
        ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), h) << h;
        ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, INFINITY)), h + 1) << h;
    }
}

#if defined(__FLT16_MAX__)
TEST(Fp16, MatchesCompilerFloat16OnRandomFloats) {
    // The compiler's _Float16 conversion (IEEE round-to-nearest-even) as an independent oracle.
    std::mt19937 rng(7);
    for (int i = 0; i < 2'000'000; ++i) {
        const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
        if (std::isnan(f)) continue;
        const auto want = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
        ASSERT_EQ(fp32_to_fp16(f), want) << std::hexfloat << f;
    }
}
#endif

TEST(Bf16, ExhaustiveRoundTripAndRounding) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(h));
        ASSERT_EQ(std::bit_cast<uint32_t>(f), h << 16);
        const uint16_t back = fp32_to_bf16(f);
        if (std::isnan(f))
            ASSERT_EQ(back, h | 0x40) << h;  // quieted, payload kept
        else
            ASSERT_EQ(back, h) << h;
    }
    EXPECT_EQ(fp32_to_bf16(1.0f + 0x1.0p-8f), 0x3F80);      // tie -> even (down)
    EXPECT_EQ(fp32_to_bf16(1.0f + 3 * 0x1.0p-8f), 0x3F82);  // tie -> even (up)
    EXPECT_EQ(fp32_to_bf16(std::nextafter(1.0f + 0x1.0p-8f, 2.0f)), 0x3F81);
    EXPECT_EQ(fp32_to_bf16(0x1.FFFFFEp127f), 0x7F80);        // rounds to inf
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)), 0x7FC0);  // sNaN -> qNaN
}

// =============================================================================================
// The type table.

TEST(QuantTable, RowBytesAndLookup) {
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::Q4_0), 64), 36u);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::Q4_0), 33), std::nullopt);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::Q4_K), 512), 288u);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::Q6_K), 256 * 3), 630u);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::Q6_K), 128), std::nullopt);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::F32), 3), 12u);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::BF16), 0), 0u);
    EXPECT_EQ(row_bytes(static_cast<uint32_t>(GgmlType::F16), -2), std::nullopt);
    EXPECT_EQ(row_bytes(99, 32), std::nullopt);
    EXPECT_EQ(row_bytes(4, 32), std::nullopt);  // removed Q4_2

    ASSERT_NE(type_traits_by_name("Q4_K"), nullptr);
    EXPECT_EQ(type_traits_by_name("Q4_K")->type, GgmlType::Q4_K);
    EXPECT_EQ(type_traits_by_name("bf16")->type, GgmlType::BF16);
    EXPECT_EQ(type_traits_by_name("F16")->type, GgmlType::F16);
    EXPECT_EQ(type_traits_by_name("q4"), nullptr);
    EXPECT_EQ(type_traits_by_name(""), nullptr);
    EXPECT_EQ(type_name(99), "type#99");
    EXPECT_EQ(type_name(static_cast<uint32_t>(GgmlType::Q5_1)), "q5_1");

    // Every readable format has a dequantizer; block sizes agree with the headers.
    const GgmlType readable[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                                 GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};
    for (const GgmlType t : readable) {
        const TypeTraits* tr = type_traits(t);
        ASSERT_NE(tr, nullptr);
        EXPECT_NE(tr->dequantize_row, nullptr) << tr->name;
        EXPECT_EQ(type_traits_by_name(tr->name), tr);
    }
    EXPECT_EQ(type_traits(GgmlType::Q4_K)->block_elems, BlockQ4_K::kElems);
    EXPECT_EQ(type_traits(GgmlType::Q3_K)->block_bytes, sizeof(BlockQ3_K));
    EXPECT_EQ(type_traits(GgmlType::Q5_0)->block_bytes, sizeof(BlockQ5_0));
}

// =============================================================================================
// Cross-check against the `gguf` Python package (numpy implementations, maintained separately
// from ggml-quants.c). Skips when python3/numpy/gguf are missing, fails under
// PARALLAMA_REQUIRE_TEST_DATA=1.

std::string python() {
    const char* p = std::getenv("PYTHON");
    return p && *p ? p : "python3";
}

std::string helper() { return std::string(PL_SOURCE_DIR) + "/tests/python/dequant_ref.py"; }

void write_bytes(const std::string& path, const void* data, size_t n) {
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

#define PL_REQUIRE_GGUF_PY()                                                                  \
    do {                                                                                      \
        const auto chk = test::run_cmd(python() + " " + helper() + " check");                 \
        if (chk.rc != 0) {                                                                    \
            if (test::require_test_data()) FAIL() << "python numpy/gguf unavailable: " << chk.err; \
            GTEST_SKIP() << "python3 with numpy + gguf not available (pip install -r "        \
                            "tests/requirements.txt): "                                       \
                         << chk.err;                                                          \
        }                                                                                     \
    } while (0)

TEST(QuantCrossCheck, DequantMatchesGgufPythonBitExact) {
    PL_REQUIRE_GGUF_PY();
    const std::string dir = test::make_temp_dir("quant-xcheck");
    const GgmlType types[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                              GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                              GgmlType::Q5_K, GgmlType::Q6_K};
    for (const GgmlType t : types) {
        const TypeTraits* tr = type_traits(t);
        const int64_t n_blocks = 97;
        const int64_t n = n_blocks * tr->block_elems * (tr->block_elems == 1 ? 256 : 1);
        std::vector<uint8_t> raw(*row_bytes(static_cast<uint32_t>(t), n));
        std::mt19937 rng(static_cast<uint32_t>(t) * 7919u);
        for (auto& v : raw) v = static_cast<uint8_t>(rng());
        // Random bytes cover every quant bit; keep the fp16/bf16 scales finite (random exponents,
        // including subnormals and negative values) so that both sides compare numbers, not NaNs.
        auto sanitize16 = [&](size_t off) {
            uint16_t h;
            std::memcpy(&h, raw.data() + off, 2);
            if (t == GgmlType::BF16) {
                if ((h & 0x7F80) == 0x7F80) h &= 0xBFFF;  // clear top exponent bit
            } else if ((h & 0x7C00) == 0x7C00) {
                h &= 0xBFFF;
            }
            std::memcpy(raw.data() + off, &h, 2);
        };
        const size_t bb = tr->block_bytes;
        for (size_t b = 0; b < raw.size() / bb; ++b) {
            const size_t base = b * bb;
            switch (t) {
                case GgmlType::F16:
                case GgmlType::BF16: sanitize16(base); break;
                case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: sanitize16(base); break;
                case GgmlType::Q4_1: case GgmlType::Q5_1: sanitize16(base); sanitize16(base + 2); break;
                case GgmlType::Q2_K: sanitize16(base + offsetof(BlockQ2_K, d)); sanitize16(base + offsetof(BlockQ2_K, dmin)); break;
                case GgmlType::Q3_K: sanitize16(base + offsetof(BlockQ3_K, d)); break;
                case GgmlType::Q4_K: case GgmlType::Q5_K: sanitize16(base); sanitize16(base + 2); break;
                case GgmlType::Q6_K: sanitize16(base + offsetof(BlockQ6_K, d)); break;
                default: break;
            }
        }
        const std::string in = dir + "/" + tr->name + ".bin", out = dir + "/" + tr->name + ".f32";
        write_bytes(in, raw.data(), raw.size());
        const auto r = test::run_cmd(python() + " " + helper() + " dequant " + tr->name + " " + in + " " + out);
        ASSERT_EQ(r.rc, 0) << tr->name << ": " << r.err;
        const std::string theirs = test::read_file(out);
        ASSERT_EQ(theirs.size(), static_cast<size_t>(n) * 4) << tr->name;
        std::vector<float> ours(static_cast<size_t>(n));
        tr->dequantize_row(raw.data(), ours.data(), n);
        int64_t mismatches = 0;
        for (int64_t i = 0; i < n; ++i) {
            float f;
            std::memcpy(&f, theirs.data() + 4 * i, 4);
            if (!same_bits(ours[static_cast<size_t>(i)], f)) {
                if (++mismatches <= 5)
                    ADD_FAILURE() << tr->name << " element " << i << " (block " << i / tr->block_elems
                                  << "): ours " << ours[static_cast<size_t>(i)] << " gguf-py " << f;
            }
        }
        EXPECT_EQ(mismatches, 0) << tr->name << ": " << n << " elements compared";
    }
}

TEST(QuantCrossCheck, QuantizeMatchesGgufPythonBitExact) {
    PL_REQUIRE_GGUF_PY();
    const std::string dir = test::make_temp_dir("quant-xcheck-q");
    const GgmlType types[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                              GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0};
    // Gaussian data with a few blocks scaled far up/down (fp16 scale subnormal / near overflow).
    auto x = gaussian(32 * 301, 99);
    for (int j = 0; j < 32; ++j) {
        x[32 * 5 + j] *= 1e-6f;
        x[32 * 6 + j] *= 3000.0f;
        x[32 * 7 + j] = 0.0f;
    }
    const std::string in = dir + "/x.f32";
    write_bytes(in, x.data(), x.size() * 4);
    for (const GgmlType t : types) {
        const TypeTraits* tr = type_traits(t);
        const auto ours = quantize_bytes(t, x);
        const std::string out = dir + "/" + tr->name + ".bin";
        const auto r = test::run_cmd(python() + " " + helper() + " quant " + tr->name + " " + in + " " + out);
        ASSERT_EQ(r.rc, 0) << tr->name << ": " << r.err;
        const std::string theirs = test::read_file(out);
        ASSERT_EQ(theirs.size(), ours.size()) << tr->name;
        size_t first_diff = ours.size();
        for (size_t i = 0; i < ours.size(); ++i)
            if (static_cast<uint8_t>(theirs[i]) != ours[i]) {
                first_diff = i;
                break;
            }
        EXPECT_EQ(first_diff, ours.size()) << tr->name << ": first differing byte " << first_diff << " (block "
                                           << first_diff / tr->block_bytes << ")";
    }
}

}  // namespace
}  // namespace pl
