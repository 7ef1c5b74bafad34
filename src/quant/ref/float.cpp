// SPDX-License-Identifier: MIT
// Reference conversions for the plain float weight types: f32 (copy), f16, bf16.
#include "core/fp16.h"
#include "quant/ref/ref.h"

#include <cstring>

namespace pl {

void dequantize_row_f32_ref(const void* src, float* out, int64_t n) {
    std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float));
}

void quantize_row_f32_ref(const float* x, void* dst, int64_t n) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_row_f16_ref(const void* src, float* out, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
}

void quantize_row_f16_ref(const float* x, void* dst, int64_t n) {
    auto* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
}

void dequantize_row_bf16_ref(const void* src, float* out, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(h[i]);
}

void quantize_row_bf16_ref(const float* x, void* dst, int64_t n) {
    auto* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(x[i]);
}

}  // namespace pl
