// SPDX-License-Identifier: MIT
// Kernel suite of `parallama bench`: the decode matrix-vector product (GEMV) of every weight
// format at LLaMA shapes, per thread count, next to the read bandwidth measured by the probe.
//
// What is timed per operation: for int8-kernel formats (q8_0, q4_0, q4_1) quantizing the input
// vector (cpu_kernels().quantize_acts) plus matvec_q8a, exactly what Session::eval does per
// matrix; for f32/f16, the float reference matvec (dequantize a row, dot in float). Weights are
// generated once per (shape, format) with the format's quantize_row from seeded random floats,
// then copied enough times that the copies together exceed 4x the last-level cache; successive
// operations cycle through the copies, so weights stream from memory as in a real decode step.
//
// Batches: there is no GEMM kernel yet, so batch B > 1 ("gemv_batch") is B GEMVs on the same
// matrix, and the optional square 8192x8192x8192 product ("gemm_square") is 8192 GEMVs; both are
// labelled as such in the report. GB/s counts the bytes of the weight matrix once per operation.
#pragma once

#include "bench/probe.h"
#include "bench/stats.h"
#include "core/status.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pl::bench {

struct MatShape {
    int64_t rows = 0, cols = 0;
};

// "4096x4096,11008x4096" -> shapes (rows x cols; cols must be a multiple of 32).
Result<std::vector<MatShape>> parse_shapes(const std::string& text);
// The LLaMA-7B/70B shapes: 4096x4096 ... 32000x4096.
std::vector<MatShape> default_kernel_shapes();
std::vector<std::string> default_kernel_formats();  // q8_0 q4_0 q4_1 f16 f32

struct KernelOptions {
    std::vector<std::string> formats = default_kernel_formats();
    std::vector<MatShape> shapes = default_kernel_shapes();
    std::vector<int> threads = {1};
    std::vector<int> batches = {1};
    bool square = false;  // also the 8192x8192x8192 product (as 8192 GEMVs: slow)
    TimingOptions timing;
    uint64_t seed = 42;
};

using LogFn = std::function<void(const std::string&)>;

// One JSON row per (shape, format, batch, threads); see docs/bench-schema.json ("kernel row").
// Fails on an unknown format, a format that cannot be generated, or a non-finite result.
Result<std::vector<nlohmann::json>> run_kernel_suite(const KernelOptions& o, const MachineInfo& m, const LogFn& log);

}  // namespace pl::bench
