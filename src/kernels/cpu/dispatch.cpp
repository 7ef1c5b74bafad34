// SPDX-License-Identifier: MIT
#include "kernels/cpu/kernels.h"

#include "core/cpu_features.h"
#include "core/log.h"
#include "quant/formats.h"

#include "quant/q3_5.h"

#include <cstdlib>
#include <string>

namespace pl {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

QuantizeActsFn CpuKernels::quantize_acts_for(uint32_t type) const {
    return static_cast<GgmlType>(type) == GgmlType::Q3_5 ? quantize_acts_q3_5 : quantize_acts;
}

DotQ8AFn CpuKernels::dot_for(uint32_t type) const {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q8_0: return dot_q8_0;
        case GgmlType::Q4_0: return dot_q4_0;
        case GgmlType::Q4_1: return dot_q4_1;
        case GgmlType::Q3_5: return dot_q3_5;
        default: return nullptr;
    }
}

Dot2Q8AFn CpuKernels::dot2_for(uint32_t type) const {
    return static_cast<GgmlType>(type) == GgmlType::Q3_5 ? dot2_q3_5 : nullptr;
}

GemmQ8AFn CpuKernels::gemm_for(uint32_t type) const {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q8_0: return gemm_q8_0;
        case GgmlType::Q4_0: return gemm_q4_0;
        case GgmlType::Q4_1: return gemm_q4_1;
        case GgmlType::Q3_5: return gemm_q3_5;
        default: return nullptr;
    }
}

namespace {
// PARALLAMA_AMX=1 asks for the AMX tile kernel (install_amx then still needs the CPU and the OS's
// grant). Opt-in: on the Xeon it was written on it measured 0.55-0.75x the AVX-512 block GEMM
// (docs/benchmarks.md), so avx512 alone stays the default.
bool amx_wanted() {
    const char* env = std::getenv("PARALLAMA_AMX");
    return env && std::string(env) == "1";
}
}  // namespace

std::vector<Isa> supported_isas() {
    const CpuFeatures& f = cpu_features();
    std::vector<Isa> v = {Isa::Scalar};
    if (f.has_avx2_level()) v.push_back(Isa::Avx2);
    if (f.has_avx512_level() && f.avx512vnni) v.push_back(Isa::Avx512);
    return v;
}

CpuKernels kernels_for(Isa isa) {
    CpuKernels k;
    install_scalar(k);
    if (isa >= Isa::Avx2) install_avx2(k);
    if (isa >= Isa::Avx512) {
        install_avx512(k);
        install_avx512_quant(k);
        if (amx_wanted()) install_amx(k);
    }
    k.isa = isa;
    return k;
}

const CpuKernels& cpu_kernels() {
    static const CpuKernels table = [] {
        const auto isas = supported_isas();
        Isa pick = isas.back();
        if (const char* env = std::getenv("PARALLAMA_ISA"); env && *env) {
            bool found = false;
            for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
                if (std::string(env) != isa_name(i)) continue;
                found = true;
                bool ok = false;
                for (Isa s : isas) ok = ok || s == i;
                if (ok)
                    pick = i;
                else
                    PL_LOG_WARN("PARALLAMA_ISA={} is not supported by this CPU; using {}", env, isa_name(pick));
            }
            if (!found) PL_LOG_WARN("PARALLAMA_ISA={} is unknown (scalar, avx2, avx512); using {}", env, isa_name(pick));
        }
        PL_LOG_INFO("cpu: {} kernels selected ({}; features: {})", isa_name(pick), cpu_features().brand,
                    cpu_features().to_string());
        CpuKernels k = kernels_for(pick);
        if (k.amx)
            PL_LOG_INFO("cpu: amx-int8 tiles for the q3.5 block GEMM (PARALLAMA_AMX=1)");
        else if (amx_wanted())
            PL_LOG_WARN("PARALLAMA_AMX=1 but {} (needs avx512, amx-int8 and Linux's grant of the tile state); using {} only",
                        pick < Isa::Avx512 ? "the avx512 level is not selected" : "AMX is unavailable", isa_name(pick));
        return k;
    }();
    return table;
}

void quantize_row_q3_5(const float* x, void* dst, int64_t n) { cpu_kernels().quantize_row_q3_5(x, dst, n); }

}  // namespace pl
