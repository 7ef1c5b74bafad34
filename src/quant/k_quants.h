// SPDX-License-Identifier: MIT
// Shared constants of the GGML "k-quant" super-block formats (Q2_K .. Q8_K).
#pragma once

namespace pl {

inline constexpr int kQK_K = 256;        // weights per super-block
inline constexpr int kKScaleSize = 12;   // bytes of packed 6-bit scales/mins (Q4_K, Q5_K)

}  // namespace pl
