// SPDX-License-Identifier: MIT
// The one table of weight types. Adding a format: one header, one row here, one ref file, one test.
#include "quant/formats.h"

#include <array>
#include <cctype>
#include <string>

namespace pl {
namespace {

// Reference implementations are declared in quant/ref/*.cpp and wired in here as they land.
constexpr TypeTraits kTraits[] = {
    {GgmlType::F32, "f32", 1, 4, nullptr, nullptr},
    {GgmlType::F16, "f16", 1, 2, nullptr, nullptr},
    {GgmlType::BF16, "bf16", 1, 2, nullptr, nullptr},
    {GgmlType::Q4_0, "q4_0", 32, 18, nullptr, nullptr},
    {GgmlType::Q4_1, "q4_1", 32, 20, nullptr, nullptr},
    {GgmlType::Q5_0, "q5_0", 32, 22, nullptr, nullptr},
    {GgmlType::Q5_1, "q5_1", 32, 24, nullptr, nullptr},
    {GgmlType::Q8_0, "q8_0", 32, 34, nullptr, nullptr},
    {GgmlType::Q8_1, "q8_1", 32, 36, nullptr, nullptr},
    {GgmlType::Q2_K, "q2_k", 256, 84, nullptr, nullptr},
    {GgmlType::Q3_K, "q3_k", 256, 110, nullptr, nullptr},
    {GgmlType::Q4_K, "q4_k", 256, 144, nullptr, nullptr},
    {GgmlType::Q5_K, "q5_k", 256, 176, nullptr, nullptr},
    {GgmlType::Q6_K, "q6_k", 256, 210, nullptr, nullptr},
    {GgmlType::Q8_K, "q8_k", 256, 292, nullptr, nullptr},
    {GgmlType::I8, "i8", 1, 1, nullptr, nullptr},
    {GgmlType::I16, "i16", 1, 2, nullptr, nullptr},
    {GgmlType::I32, "i32", 1, 4, nullptr, nullptr},
    {GgmlType::I64, "i64", 1, 8, nullptr, nullptr},
    {GgmlType::F64, "f64", 1, 8, nullptr, nullptr},
};

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
        if (iequals(t.name, name)) return &t;
    return nullptr;
}

std::string_view type_name(uint32_t type_id) {
    if (const TypeTraits* t = type_traits(type_id)) return t->name;
    thread_local std::string buf;
    buf = "type#" + std::to_string(type_id);
    return buf;
}

std::optional<size_t> row_bytes(uint32_t type_id, int64_t n) {
    const TypeTraits* t = type_traits(type_id);
    if (!t || n < 0 || n % t->block_elems != 0) return std::nullopt;
    return static_cast<size_t>(n / t->block_elems) * t->block_bytes;
}

}  // namespace pl
