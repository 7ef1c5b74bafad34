// SPDX-License-Identifier: MIT
// `parallama quantize`: re-quantize the weight matrices of a GGUF model (docs/quantize.md).
//
// Which tensors: every tensor whose name ends in "weight" and that has >= 2 dims with ne[1] > 1
// (the weight matrices, token_embd and output included) gets the target type; everything else
// (norms, rope_freqs, ...) is written as F32 (dequantized when stored otherwise), like llama.cpp.
// Rows are read in any readable type (quant/formats.h dequantize_row) and quantized with
// quant/quantize.h's QuantizeFn; a tensor already in its target type is copied unchanged.
//
// Type of a matrix, in order:
//   1. the first --tensor-type PATTERN=TYPE whose pattern matches its name (PATTERN: an ECMAScript
//      regex searched anywhere in the name; a pattern that is not a valid regex but contains
//      '*' or '?' is a shell glob over the whole name), else the --type;
//   2. if its row length ne[0] is not a multiple of that type's block size: the fallback type
//      (--fallback-type, default "auto": q2_k/q3_k -> q4_0, q4_k -> q5_0, q5_k -> q5_1,
//      q6_k -> q8_0, any other -> q8_0), and f16 when the fallback's block does not divide
//      either; with --fallback-type none this is an error.
// Importance (--imatrix, quant/imatrix.h): the "<name>.in_sum2" vector of a matrix, when present,
// is passed to the quantizer for each of its rows (its length must equal ne[0]).
//
// Threads: rows of a tensor are quantized in one OpenMP parallel region (static split); tensors are
// streamed one at a time through gguf::Writer, which writes a temporary file and renames it into
// place only on success, so a failed run leaves no output file.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pl::convert {

struct QuantizeOptions {
    std::string input;
    std::string output;        // ignored with dry_run
    std::string type;          // target type name: "q8_0", "q4_0", "q3_k", ...
    std::string fallback = "auto";  // "auto", "none" or a type name
    std::vector<std::string> tensor_types;  // "PATTERN=TYPE", first match wins
    std::string imatrix;       // path or ""
    // Without an imatrix, q3.5 tensors still get importance weights: the source model runs on
    // this many random tokens (seeded, BOS first) and the mean squared activation per input
    // column is collected as an imatrix would (0 = off: plain q3.5). docs/quantize.md.
    int self_calibrate_tokens = 128;
    bool dry_run = false;      // plan only: nothing is written
    bool stats = false;        // measure each quantized tensor's normalised error (also in dry run)
    std::function<void(uint64_t done, uint64_t total)> progress;  // bytes of tensor data
};

struct TensorReport {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t src_type = 0;
    uint32_t dst_type = 0;
    uint64_t bytes = 0;        // bytes of this tensor in the output
    bool quantized = false;    // a weight matrix (counts toward bits per weight)
    bool fallback = false;     // its chosen type could not take its row length
    bool importance = false;   // quantized with an imatrix vector
    bool copied = false;       // same type as the source: bytes copied unchanged
    std::string rule;          // why this type: "--type", "--tensor-type PATTERN", "1-D", ...
    // With stats: sum (w - q)^2 / sum w^2 over the tensor, w = source values (as dequantized),
    // q = output values; -1 when not measured. nrmse = sqrt(nmse).
    double nmse = -1;
};

struct QuantizeReport {
    std::vector<TensorReport> tensors;  // in file order
    uint64_t file_bytes = 0;            // size of the output file (exact, also for a dry run)
    uint64_t quantized_bytes = 0;       // bytes of the quantized tensors
    uint64_t quantized_elements = 0;    // weights in the quantized tensors
    uint64_t total_elements = 0;        // weights in all tensors
    uint32_t file_type = 0;             // general.file_type written
    double bits_per_weight() const {
        return quantized_elements ? 8.0 * static_cast<double>(quantized_bytes) / static_cast<double>(quantized_elements) : 0.0;
    }
};

// Plans and (unless dry_run) writes the output. Errors (unreadable or corrupt input, unknown type,
// bad pattern, a pattern matching no tensor, a row length no fallback can take, a bad imatrix)
// come back before anything is written; the output file is then absent.
Result<QuantizeReport> quantize_model(const QuantizeOptions& opts);

// llama.cpp's general.file_type (LlamaFileType) for a model mostly of `type`: F32 0, F16 1,
// Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10, Q3_K 11 (Q3_K_S), Q4_K 14 (Q4_K_S), Q5_K 16
// (Q5_K_S), Q6_K 18, BF16 32; 0 for others.
uint32_t llama_file_type(uint32_t type);

}  // namespace pl::convert
