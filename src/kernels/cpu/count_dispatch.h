// SPDX-License-Identifier: MIT
// A run-time count in [1, kMax] to a template argument, for kernels that keep that many vectors
// in registers: with_count<8>(k, [&](auto K) { kernel<K()>(...); }) calls kernel<k>. k outside
// [1, kMax] is clamped (callers pass counts they computed in range).
#pragma once

#include <type_traits>

namespace pl {

template <int kMax, class F>
inline void with_count(int k, F&& f) {
    if constexpr (kMax > 1) {
        if (k < kMax) return with_count<kMax - 1>(k, f);
    }
    f(std::integral_constant<int, kMax>{});
}

}  // namespace pl
