// SPDX-License-Identifier: MIT
// quantize_fn(): the importance-aware row quantizer of each writable type (quant/quantize.h).
#include "quant/quantize.h"

#include "quant/q3_5.h"
#include "quant/ref/ref.h"

namespace pl {
namespace {

// Adapts a plain QuantizeRowFn (no use for importance) to the QuantizeFn signature.
template <QuantizeRowFn F>
void ignore_importance(const float* x, void* dst, int64_t n, const float* /*importance*/) {
    F(x, dst, n);
}

struct Entry {
    GgmlType type;
    QuantizeFn fn;
    bool weighted;
};

constexpr Entry kQuantizers[] = {
    {GgmlType::F32, ignore_importance<quantize_row_f32_ref>, false},
    {GgmlType::F16, ignore_importance<quantize_row_f16_ref>, false},
    {GgmlType::BF16, ignore_importance<quantize_row_bf16_ref>, false},
    {GgmlType::Q4_0, quantize_q4_0, true},
    {GgmlType::Q4_1, ignore_importance<quantize_row_q4_1_ref>, false},
    {GgmlType::Q5_0, quantize_q5_0, true},
    {GgmlType::Q5_1, ignore_importance<quantize_row_q5_1_ref>, false},
    {GgmlType::Q8_0, quantize_q8_0, true},
    {GgmlType::Q3_K, quantize_q3_k, true},
    {GgmlType::Q4_K, quantize_q4_k, true},
    {GgmlType::Q6_K, quantize_q6_k, true},
    {GgmlType::Q3_5, quantize_row_q3_5_imp, true},  // see quant/q3_5.h
};

const Entry* find(uint32_t type_id) {
    for (const Entry& e : kQuantizers)
        if (static_cast<uint32_t>(e.type) == type_id) return &e;
    return nullptr;
}

}  // namespace

QuantizeFn quantize_fn(uint32_t type_id) {
    const Entry* e = find(type_id);
    return e ? e->fn : nullptr;
}

QuantizeFn quantize_fn(GgmlType type) { return quantize_fn(static_cast<uint32_t>(type)); }

bool uses_importance(uint32_t type_id) {
    const Entry* e = find(type_id);
    return e && e->weighted;
}

}  // namespace pl
