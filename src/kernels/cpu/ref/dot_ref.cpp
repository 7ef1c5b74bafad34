// SPDX-License-Identifier: MIT
// Scalar reference kernels: the executable spec the SIMD versions are tested against.
#include "kernels/cpu/kernels.h"

#include "core/fp16.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"
#include "quant/q4_0.h"
#include "quant/q4_1.h"
#include "quant/q8_0.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pl {
namespace {

void quantize_acts_ref(const float* x, int64_t n, int8_t* qs, float* d, int32_t* sum) {
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const float* xb = x + b * kQ8ABlock;
        float amax = 0.0f;
        for (int i = 0; i < kQ8ABlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        int32_t s = 0;
        for (int i = 0; i < kQ8ABlock; ++i) {
            const int q = static_cast<int>(std::nearbyint(xb[i] * id));
            qs[b * kQ8ABlock + i] = static_cast<int8_t>(q);
            s += q;
        }
        d[b] = db;
        sum[b] = s;
    }
}

// sum(u[i] * a[i]) over one Q4 block's 32 unsigned nibbles (low nibbles = elements 0..15).
int32_t q4_isum(const uint8_t* q4, const int8_t* a) {
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
        isum += (q4[j] & 0x0F) * a[j];
        isum += (q4[j] >> 4) * a[j + 16];
    }
    return isum;
}

float dot_q8_0_q8a_ref(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ8_0*>(w);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        int32_t isum = 0;
        for (int i = 0; i < kQ8ABlock; ++i) isum += blocks[b].qs[i] * qs[b * kQ8ABlock + i];
        acc += fp16_to_fp32(blocks[b].d) * d[b] * static_cast<float>(isum);
    }
    return acc;
}

// w = d * (u - 8): dot = dw * da * (sum(u * a) - 8 * sum(a)).
float dot_q4_0_q8a_ref(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_0*>(w);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const int32_t isum = q4_isum(blocks[b].qs, qs + b * kQ8ABlock);
        acc += fp16_to_fp32(blocks[b].d) * d[b] * static_cast<float>(isum - 8 * sum[b]);
    }
    return acc;
}

// w = d * u + m: dot = dw * da * sum(u * a) + m * da * sum(a).
float dot_q4_1_q8a_ref(const void* w, const int8_t* qs, const float* d, const int32_t* sum, int64_t n) {
    const auto* blocks = static_cast<const BlockQ4_1*>(w);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / kQ8ABlock; ++b) {
        const int32_t isum = q4_isum(blocks[b].qs, qs + b * kQ8ABlock);
        acc += fp16_to_fp32(blocks[b].d) * d[b] * static_cast<float>(isum) +
               fp16_to_fp32(blocks[b].m) * d[b] * static_cast<float>(sum[b]);
    }
    return acc;
}

// q3.5 (quant/q3_5.h): per sub-block L of each group, isum = sum(+-mag * a) exactly in int32,
// then scale(k_L) * da * isum, da being the group's activation scale (quantize_acts_q3_5_ref).
// The activations must be rotated (rotate_q3_5) before quantization.
float dot_q3_5_q8a_ref(const void* w, const int8_t* qs, const float* d, const int32_t* /*sum*/, int64_t n) {
    const auto* p = static_cast<const uint8_t*>(w);
    float acc = 0.0f;
    for (int64_t g0 = 0; g0 < n;) {
        const int64_t g = std::min<int64_t>(kQ3_5Group, n - g0);
        acc += q3_5_group_dot_ref(p, g, qs + g0, d[g0 / kQ8ABlock]);
        p += q3_5_group_bytes(g);
        g0 += g;
    }
    return acc;
}

inline float kv_value(float x) { return x; }
inline float kv_value(uint16_t h) { return fp16_to_fp32(h); }

template <class T>
void attn_scores_ref(const float* q, const T* kbase, const int32_t* blocks, size_t block_stride, int n, int head_dim, float div,
                     float* att) {
    for (int t = 0; t < n; ++t) {
        const T* kb = kbase + static_cast<size_t>(blocks[t / kAttnBlock]) * block_stride + t % kAttnBlock;
        float s = 0.0f;
        for (int d = 0; d < head_dim; ++d) s += q[d] * kv_value(kb[static_cast<size_t>(d) * kAttnBlock]);
        att[t] = s / div;
    }
}
template <class T>
void attn_values_ref(float* out, const float* att, const T* vbase, const int32_t* blocks, size_t block_stride, int n, int head_dim) {
    std::fill(out, out + head_dim, 0.0f);
    for (int t = 0; t < n; ++t) {
        const T* v = vbase + static_cast<size_t>(blocks[t / kAttnBlock]) * block_stride +
                     static_cast<size_t>(t % kAttnBlock) * static_cast<size_t>(head_dim);
        for (int c = 0; c < head_dim; ++c) out[c] += att[t] * kv_value(v[c]);
    }
}
void to_f16_ref(const float* x, uint16_t* h, int64_t n) {
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(x[i]);
}

}  // namespace

void install_scalar(CpuKernels& k) {
    k.attn_scores_f32 = attn_scores_ref<float>;
    k.attn_values_f32 = attn_values_ref<float>;
    k.attn_scores_f16 = attn_scores_ref<uint16_t>;
    k.attn_values_f16 = attn_values_ref<uint16_t>;
    k.to_f16 = to_f16_ref;
    k.quantize_acts = quantize_acts_ref;
    k.dot_q8_0 = dot_q8_0_q8a_ref;
    k.dot_q4_0 = dot_q4_0_q8a_ref;
    k.dot_q4_1 = dot_q4_1_q8a_ref;
    k.dot_q3_5 = dot_q3_5_q8a_ref;
    k.dot_q3_5f = dot_q3_5f_ref;
    k.quantize_acts_q3_5 = quantize_acts_q3_5_ref;
    k.rotate_q3_5 = rotate_q3_5;
    k.quantize_row_q3_5 = quantize_row_q3_5_ref;
}

}  // namespace pl
