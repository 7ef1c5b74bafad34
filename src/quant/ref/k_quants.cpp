// SPDX-License-Identifier: MIT
// K-quant dequantization references (layouts: quant/q2_k.h ... quant/q8_k.h). Each loop walks the
// super-block in GGML's order and evaluates GGML's expressions (scale products first, then the
// quant multiply, then the min subtraction) so results are bit-identical.
#include "core/fp16.h"
#include "quant/q2_k.h"
#include "quant/q3_k.h"
#include "quant/q4_k.h"
#include "quant/q5_k.h"
#include "quant/q6_k.h"
#include "quant/q8_k.h"
#include "quant/ref/ref.h"

namespace pl {

void dequantize_row_q2_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ2_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int h = 0; h < 2; ++h) {          // 128 weights per 32 bytes of qs
            const uint8_t* q = b[i].qs + 32 * h;
            for (int j = 0; j < 4; ++j) {      // 2-bit plane j
                for (int half = 0; half < 2; ++half) {  // two 16-weight sub-blocks per plane
                    const uint8_t sc = b[i].scales[8 * h + 2 * j + half];
                    const float dl = d * static_cast<float>(sc & 0xF);
                    const float ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        const int qv = (q[16 * half + l] >> (2 * j)) & 3;
                        *out++ = dl * static_cast<float>(qv) - ml;
                    }
                }
            }
        }
    }
}

namespace {

// The 16 six-bit Q3_K scales (still biased by +32), see quant/q3_k.h.
void unpack_q3_k_scales(const uint8_t* s, int out[16]) {
    for (int k = 0; k < 16; ++k) {
        const int lo = k < 8 ? (s[k] & 0xF) : (s[k - 8] >> 4);
        const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        out[k] = lo | (hi << 4);
    }
}

}  // namespace

void dequantize_row_q3_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ3_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = fp16_to_fp32(b[i].d);
        int sc[16];
        unpack_q3_k_scales(b[i].scales, sc);
        int is = 0;
        for (int h = 0; h < 2; ++h) {
            const uint8_t* q = b[i].qs + 32 * h;
            for (int j = 0; j < 4; ++j) {
                const int hbit = 4 * h + j;  // bit of hmask[l] holding this plane's high bit
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * static_cast<float>(sc[is++] - 32);
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        const int low = (q[l] >> (2 * j)) & 3;
                        const int off = ((b[i].hmask[l] >> hbit) & 1) ? 0 : 4;
                        *out++ = dl * static_cast<float>(low - off);
                    }
                }
            }
        }
    }
}

void dequantize_row_q4_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ4_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int c = 0; c < 4; ++c) {  // 64 weights per 32 bytes of qs: low nibbles, then high
            const uint8_t* q = b[i].qs + 32 * c;
            for (int nib = 0; nib < 2; ++nib) {
                uint8_t sc, mn;
                get_scale_min_k4(2 * c + nib, b[i].scales, sc, mn);
                const float d1 = d * static_cast<float>(sc);
                const float m1 = dmin * static_cast<float>(mn);
                for (int l = 0; l < 32; ++l) {
                    const int qv = nib ? (q[l] >> 4) : (q[l] & 0xF);
                    *out++ = d1 * static_cast<float>(qv) - m1;
                }
            }
        }
    }
}

void dequantize_row_q5_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ5_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int c = 0; c < 4; ++c) {
            const uint8_t* q = b[i].qs + 32 * c;
            for (int nib = 0; nib < 2; ++nib) {
                const int s = 2 * c + nib;  // sub-block, also the qh bit
                uint8_t sc, mn;
                get_scale_min_k4(s, b[i].scales, sc, mn);
                const float d1 = d * static_cast<float>(sc);
                const float m1 = dmin * static_cast<float>(mn);
                for (int l = 0; l < 32; ++l) {
                    const int low = nib ? (q[l] >> 4) : (q[l] & 0xF);
                    const int qv = low + (((b[i].qh[l] >> s) & 1) ? 16 : 0);
                    *out++ = d1 * static_cast<float>(qv) - m1;
                }
            }
        }
    }
}

void dequantize_row_q6_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ6_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(b[i].d);
        for (int h = 0; h < 2; ++h) {  // 128 weights: ql[64h..64h+63], qh[32h..32h+31]
            const uint8_t* ql = b[i].ql + 64 * h;
            const uint8_t* qh = b[i].qh + 32 * h;
            const int8_t* sc = b[i].scales + 8 * h;
            float* y = out + 128 * h;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                // GGML: d * sc * q, i.e. (d * sc) * q.
                y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
        out += kQK_K;
    }
}

void dequantize_row_q8_k_ref(const void* src, float* out, int64_t n) {
    const auto* b = static_cast<const BlockQ8_K*>(src);
    const int64_t nb = n / kQK_K;
    for (int64_t i = 0; i < nb; ++i, out += kQK_K) {
        for (int j = 0; j < kQK_K; ++j) out[j] = b[i].d * static_cast<float>(b[i].qs[j]);
    }
}

}  // namespace pl
