// SPDX-License-Identifier: MIT
// Weight types: GGML type ids (as stored in GGUF) and one table of traits per type.
// Each block format has its own header (quant/q4_0.h, ...) with its layout; reference
// (de)quantizers live in quant/ref/*.cpp and are the executable spec that SIMD kernels are
// tested against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pl {

// GGML type ids (ggml.h `enum ggml_type`). Values are part of the GGUF format: never renumber.
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    // parallama's own formats, far above GGML's range so no GGML id will collide; files that use
    // them name them in metadata (parallama.type.<id> = name, see docs/formats.md).
    Q3_5 = 200,
    // In memory only, never in a file (GGUF readers refuse it): q3.5 rows in the folded layout
    // Model::load repacks them into where AMX is used (quant/q3_5_fold.h).
    Q3_5F = 1200,
};

// out[0..n) = dequantized values of n elements starting at `src` (n a multiple of block_elems).
using DequantizeRowFn = void (*)(const void* src, float* out, int64_t n);
// dst = blocks for x[0..n) (n a multiple of block_elems). Reference algorithm of the format.
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);

struct TypeTraits {
    GgmlType type;
    const char* name;         // lower-case GGML name: "f32", "q4_0", "q4_k", ...
    int64_t block_elems;      // weights per block (1 for plain float types)
    size_t block_bytes;       // bytes per block
    DequantizeRowFn dequantize_row;  // nullptr when we cannot read this type
    QuantizeRowFn quantize_row;      // nullptr when we cannot write this type
    // True when the stored rows are the weights times a rotation (q3.5): int8 kernels then need
    // the activations rotated the same way (rotate_q3_5) before quantization.
    bool rotated_input = false;
    // True for parallama's own formats (not readable by GGML tools).
    bool custom = false;
    // True for in-memory layouts that no file may hold (readers refuse them, writers never see them).
    bool internal = false;
};

// Traits of a type id read from a file, or nullptr for an id we do not know at all.
const TypeTraits* type_traits(uint32_t type_id);
inline const TypeTraits* type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }
// Lookup by name ("q4_0", "Q4_0", "f16"), case-insensitive; internal layouts are not found.
const TypeTraits* type_traits_by_name(std::string_view name);
// "q4_0", or "type#99" for unknown ids.
std::string_view type_name(uint32_t type_id);

// The metadata key that names one of our own (custom) types in a GGUF file using it, e.g.
// "parallama.type.200" = "q3.5", so other tools can tell what the unknown id is.
std::string custom_type_key(uint32_t type_id);

// Bytes for a row of n elements, or nullopt when n is not a multiple of the block size or the type
// is unknown.
std::optional<size_t> row_bytes(uint32_t type_id, int64_t n);

}  // namespace pl
