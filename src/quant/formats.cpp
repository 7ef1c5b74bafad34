// SPDX-License-Identifier: MIT
// The one table of weight types. Adding a format: one header, one row here, one ref file, one test.
#include "quant/formats.h"

#include "quant/q2_k.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"
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
#include "quant/quantize.h"
#include "quant/ref/ref.h"

#include <array>
#include <cctype>
#include <string>

namespace pl {
namespace {

// Dequantize/quantize entries point at the reference code (quant/ref/ref.h); SIMD kernels are
// selected separately and tested against these. block_bytes must equal sizeof(Block*) of the
// format header (checked below).
constexpr TypeTraits kTraits[] = {
    {GgmlType::F32, "f32", 1, 4, dequantize_row_f32_ref, quantize_row_f32_ref},
    {GgmlType::F16, "f16", 1, 2, dequantize_row_f16_ref, quantize_row_f16_ref},
    {GgmlType::BF16, "bf16", 1, 2, dequantize_row_bf16_ref, quantize_row_bf16_ref},
    {GgmlType::Q4_0, "q4_0", BlockQ4_0::kElems, sizeof(BlockQ4_0), dequantize_row_q4_0_ref, quantize_row_q4_0_ref},
    {GgmlType::Q4_1, "q4_1", BlockQ4_1::kElems, sizeof(BlockQ4_1), dequantize_row_q4_1_ref, quantize_row_q4_1_ref},
    {GgmlType::Q5_0, "q5_0", BlockQ5_0::kElems, sizeof(BlockQ5_0), dequantize_row_q5_0_ref, quantize_row_q5_0_ref},
    {GgmlType::Q5_1, "q5_1", BlockQ5_1::kElems, sizeof(BlockQ5_1), dequantize_row_q5_1_ref, quantize_row_q5_1_ref},
    {GgmlType::Q8_0, "q8_0", BlockQ8_0::kElems, sizeof(BlockQ8_0), dequantize_row_q8_0_ref, quantize_row_q8_0_ref},
    {GgmlType::Q8_1, "q8_1", 32, 36, nullptr, nullptr},
    {GgmlType::Q2_K, "q2_k", BlockQ2_K::kElems, sizeof(BlockQ2_K), dequantize_row_q2_k_ref, nullptr},
    {GgmlType::Q3_K, "q3_k", BlockQ3_K::kElems, sizeof(BlockQ3_K), dequantize_row_q3_k_ref, quantize_row_q3_k_ref},
    {GgmlType::Q4_K, "q4_k", BlockQ4_K::kElems, sizeof(BlockQ4_K), dequantize_row_q4_k_ref, quantize_row_q4_k_ref},
    {GgmlType::Q5_K, "q5_k", BlockQ5_K::kElems, sizeof(BlockQ5_K), dequantize_row_q5_k_ref, nullptr},
    {GgmlType::Q6_K, "q6_k", BlockQ6_K::kElems, sizeof(BlockQ6_K), dequantize_row_q6_k_ref, quantize_row_q6_k_ref},
    {GgmlType::Q8_K, "q8_k", BlockQ8_K::kElems, sizeof(BlockQ8_K), dequantize_row_q8_k_ref, nullptr},
    {GgmlType::Q3_5, "q3.5", BlockQ3_5::kElems, sizeof(BlockQ3_5), dequantize_row_q3_5_ref, quantize_row_q3_5,
     /*rotated_input=*/true, /*custom=*/true},
    {GgmlType::Q3_5F, "q3.5-folded", kQ3_5Group, kQ3_5FoldGroupBytes, dequantize_row_q3_5f, nullptr,
     /*rotated_input=*/true, /*custom=*/true, /*internal=*/true},
    {GgmlType::I8, "i8", 1, 1, nullptr, nullptr},
    {GgmlType::I16, "i16", 1, 2, nullptr, nullptr},
    {GgmlType::I32, "i32", 1, 4, nullptr, nullptr},
    {GgmlType::I64, "i64", 1, 8, nullptr, nullptr},
    {GgmlType::F64, "f64", 1, 8, nullptr, nullptr},
};

// GGUF pins these sizes; a header change that moves them breaks every model file.
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ2_K) == 84 &&
              sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292 && sizeof(BlockQ3_5) == 14);

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

}  // namespace

const TypeTraits* type_traits(uint32_t type_id) {
    for (const auto& t : kTraits)
        if (static_cast<uint32_t>(t.type) == type_id) return &t;
    return nullptr;
}

const TypeTraits* type_traits_by_name(std::string_view name) {
    for (const auto& t : kTraits)
        if (!t.internal && iequals(t.name, name)) return &t;
    return nullptr;
}

std::string_view type_name(uint32_t type_id) {
    if (const TypeTraits* t = type_traits(type_id)) return t->name;
    thread_local std::string buf;
    buf = "type#" + std::to_string(type_id);
    return buf;
}

std::string custom_type_key(uint32_t type_id) { return "parallama.type." + std::to_string(type_id); }

std::optional<size_t> row_bytes(uint32_t type_id, int64_t n) {
    const TypeTraits* t = type_traits(type_id);
    if (!t || n < 0 || n % t->block_elems != 0) return std::nullopt;
    return static_cast<size_t>(n / t->block_elems) * t->block_bytes;
}

}  // namespace pl
