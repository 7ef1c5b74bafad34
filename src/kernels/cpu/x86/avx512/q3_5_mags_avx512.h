// SPDX-License-Identifier: MIT
// q3.5 magnitude lookup shared by the AVX-512 kernels of both layouts (file and folded).
//
// A group's 64 mag bytes hold four 2-bit codes each (step t in bits 2t..2t+1). vpermb reads the
// low 6 bits of each index byte, so three 64-entry tables that look through bits 0-1, 2-3 and 4-5
// decode steps 0-2 straight from the loaded bytes; step 3 shifts right by 6 first. One shift per
// group instead of three (the GEMV's shifts and vpermb compete for the same vector pipes).
// Only for translation units compiled with AVX-512 F/BW/VBMI.
#pragma once

#include "quant/q3_5.h"

#include <immintrin.h>

#include <cstdint>

namespace pl::q3_5_avx512 {

struct MagTableBytes {
    alignas(64) int8_t t[3][64];
    constexpr MagTableBytes() : t{} {
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 64; ++i) t[j][i] = kQ3_5Mag[(i >> (2 * j)) & 3];
    }
};
// Built at compile time: no static-initialisation order to think about.
inline constexpr MagTableBytes kMagTableBytes{};

// The three tables in registers; build one per kernel call, outside the group loop.
struct MagTables {
    __m512i l0, l1, l2;
    MagTables()
        : l0(_mm512_load_si512(kMagTableBytes.t[0])), l1(_mm512_load_si512(kMagTableBytes.t[1])),
          l2(_mm512_load_si512(kMagTableBytes.t[2])) {}
};

// MAG[code of step t] for each of the 64 bytes of mb (a group's mag bytes).
inline __m512i step_mags(__m512i mb, int t, const MagTables& T) {
    return t == 3 ? _mm512_permutexvar_epi8(_mm512_srli_epi16(mb, 6), T.l0)
                  : _mm512_permutexvar_epi8(mb, t == 0 ? T.l0 : t == 1 ? T.l1 : T.l2);
}

}  // namespace pl::q3_5_avx512
