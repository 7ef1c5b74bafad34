// SPDX-License-Identifier: MIT
// Machine-probe loops for the benchmark suite: a streaming memory read, a fused multiply-add
// chain and an int8 dot-product chain, one version per ISA level (the SIMD ones live in
// kernels/cpu/x86/{avx2,avx512}/bench_probe_*.cpp, compiled with that level's flags). They are
// pure functions: callers split buffers across threads and time them.
#pragma once

#include "kernels/cpu/kernels.h"

#include <cstddef>
#include <cstdint>

namespace pl::bench {

// Reads bytes [0, n) of `p` (64-byte aligned, n a multiple of 256) and returns a value that
// depends on every byte (so the loads cannot be removed).
using ReadFn = uint64_t (*)(const void* p, size_t n);
// Runs `iters` iterations of independent FMA (or int8 dot-product) chains; returns a value that
// depends on all of them. flops_per_iter / ops_per_iter below give the work done per iteration.
using PeakFn = float (*)(int64_t iters);

struct ProbeKernels {
    Isa isa = Isa::Scalar;
    ReadFn read = nullptr;
    PeakFn fma_f32 = nullptr;
    double fma_flops_per_iter = 0;  // multiply and add counted as 2
    PeakFn dot_i8 = nullptr;        // vpdpbusd (AVX-512 VNNI / AVX-VNNI) or a pmaddubsw chain
    double dot_ops_per_iter = 0;    // byte multiply and add counted as 2
    const char* dot_instr = "";
};

// The best probe loops for this CPU (the same level cpu_kernels() runs).
ProbeKernels probe_kernels_for(Isa isa);

void install_probe_avx2(ProbeKernels& k);
void install_probe_avx512(ProbeKernels& k);

}  // namespace pl::bench
