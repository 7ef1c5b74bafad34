// SPDX-License-Identifier: MIT
// Kernel suite of `parallama bench`: the decode matrix-vector product (GEMV) of every weight
// format at LLaMA shapes, per thread count, next to the read bandwidth measured by the probe.
//
// What is timed per operation: for int8-kernel formats (q3.5, q8_0, q4_0, q4_1) quantizing the B
// input rows (cpu_kernels().quantize_acts_for) plus one matmul_q8a with the row's threading
// strategy, exactly what Session::linear does per matrix; for f32/f16, the float reference
// matmul (dequantize a row, dot in float). Weights are
// generated once per (shape, format) with the format's quantize_row from seeded random floats,
// then copied enough times that the copies together exceed 4x the last-level cache; successive
// operations cycle through the copies, so weights stream from memory as in a real decode step.
//
// Batches: batch B > 1 ("gemm") is one product with B activation rows (the GEMM kernels; formats
// without one run B dot products per row, noted in the row), and the optional square
// 8192x8192x8192 product ("gemm_square") is B = 8192. GB/s counts the bytes of the weight matrix
// once per operation. Older reports call batch rows "gemv_batch" (then B GEMVs).
#pragma once

#include "bench/probe.h"
#include "bench/stats.h"
#include "core/status.h"
#include "kernels/cpu/ops.h"

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
std::vector<std::string> default_kernel_formats();  // q3.5 q8_0 q4_0 q4_1 f16 f32

struct KernelOptions {
    std::vector<std::string> formats = default_kernel_formats();
    std::vector<MatShape> shapes = default_kernel_shapes();
    std::vector<int> threads = {1};
    std::vector<int> batches = {1};
    std::vector<Threading> threadings = {Threading::Tasks};  // matmul_q8a strategies to compare
    bool square = false;  // also the 8192x8192x8192 product (as 8192 GEMVs: slow)
    TimingOptions timing;
    uint64_t seed = 42;
};

using LogFn = std::function<void(const std::string&)>;

// One JSON row per (shape, format, batch, threads); see docs/bench-schema.json ("kernel row").
// Fails on an unknown format, a format that cannot be generated, or a non-finite result.
Result<std::vector<nlohmann::json>> run_kernel_suite(const KernelOptions& o, const MachineInfo& m, const LogFn& log);

}  // namespace pl::bench
