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
    const auto t = static_cast<GgmlType>(type);
    return t == GgmlType::Q3_5 || t == GgmlType::Q3_5F ? quantize_acts_q3_5 : quantize_acts;
}

DotQ8AFn CpuKernels::dot_for(uint32_t type) const {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q8_0: return dot_q8_0;
        case GgmlType::Q4_0: return dot_q4_0;
        case GgmlType::Q4_1: return dot_q4_1;
        case GgmlType::Q3_5: return dot_q3_5;
        case GgmlType::Q3_5F: return dot_q3_5f;
        default: return nullptr;
    }
}

Dot2Q8AFn CpuKernels::dot2_for(uint32_t type) const {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q3_5: return dot2_q3_5;
        case GgmlType::Q3_5F: return dot2_q3_5f;
        default: return nullptr;
    }
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

bool CpuKernels::has_block_product(uint32_t type) const {
    if (gemm_for(type)) return true;
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q3_5: return gemm_rows_q3_5 != nullptr;
        case GgmlType::Q3_5F: return gemm_rows_q3_5f_few != nullptr || gemm_rows_q3_5f != nullptr;
        default: return false;
    }
}

namespace {
// PARALLAMA_AMX=0 keeps AMX off (install_amx otherwise still needs the CPU and the OS's grant):
// without it q3.5 matrices stay in their file layout and numerics.
bool amx_wanted() {
    const char* env = std::getenv("PARALLAMA_AMX");
    return !(env && std::string(env) == "0");
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
    k.isa = isa;
    if (isa >= Isa::Avx512) {
        install_avx512(k);
        install_avx512_quant(k);
        install_avx512_q3_5f(k);
        if (amx_wanted()) install_amx(k);
    }
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
            PL_LOG_INFO("cpu: amx-int8 tiles for the q3.5 block GEMM (q3.5 matrices folded at load; PARALLAMA_AMX=0 turns it off)");
        else if (pick == Isa::Avx512 && amx_wanted() && cpu_features().amx_int8)
            PL_LOG_WARN("cpu: this CPU has amx-int8 but Linux did not grant the tile state; q3.5 stays on avx512");
        return k;
    }();
    return table;
}

void quantize_row_q3_5(const float* x, void* dst, int64_t n) { cpu_kernels().quantize_row_q3_5(x, dst, n); }

}  // namespace pl
