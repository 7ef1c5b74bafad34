// SPDX-License-Identifier: MIT
// CPU feature detection (cpuid + xgetbv: a feature counts only when the OS saves its registers).
#pragma once

#include <string>

namespace pl {

struct CpuFeatures {
    std::string vendor;
    std::string brand;
    bool sse42 = false;
    bool avx = false;
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx_vnni = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512vl = false;
    bool avx512dq = false;
    bool avx512vnni = false;
    bool avx512vbmi = false;
    bool avx512bf16 = false;
    // AMX tiles with int8 dot products (cpuid 7.0 EDX bits 24, 25, tile state enabled in XCR0). Linux
    // also wants a per-process permission before first use (kernels/cpu/x86/amx/).
    bool amx_tile = false;
    bool amx_int8 = false;

    bool has_avx2_level() const { return avx2 && fma && f16c; }
    bool has_avx512_level() const { return has_avx2_level() && avx512f && avx512bw && avx512vl && avx512dq; }
    // "avx2 fma f16c avx512f ..." for logs and reports.
    std::string to_string() const;
};

// Detected once and cached.
const CpuFeatures& cpu_features();

}  // namespace pl
