// SPDX-License-Identifier: MIT
// Importance matrices (`parallama imatrix`), as read by the quantizer: for every weight matrix W
// (rows, cols) the mean over calibration tokens of x[j]^2 for each input column j, where x is the
// float input of the product W x (before activation quantization). Columns with large activations
// matter more, so a quantizer weights its per-column rounding error by these values.
//
// File format (GGUF v3; see docs/quality.md):
//   tensors   "<weight name>.in_sum2"  F32, ne = [cols]   mean of x[j]^2 (already divided by the count)
//   metadata  general.type = "imatrix"
//             imatrix.chunk_count (u32), imatrix.chunk_size (u32, tokens per chunk),
//             imatrix.dataset (string, the calibration text's file name), imatrix.token_count (u64)
//   optional  "<weight name>.in_cov"  F32, ne = [256, 256, groups]: per full 256-column group g of
//             the rows, the mean of x x^T over the group's inputs (`imatrix --covariance`; the q3.5
//             quantizer then runs GPTQ with this Hessian, quant/q3_5.h)
// The reader also accepts llama.cpp's GGUF imatrix files (ne = [cols, 1] sums with a
// "<weight name>.counts" F32 tensor of ne = [1] or [1, 1]: the sums are divided by the count) and
// ignores tensors with other suffixes.
#pragma once

#include "core/status.h"
#include "quant/q3_5.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pl {

struct Imatrix {
    // weight tensor name ("blk.0.attn_q.weight") -> (cols) mean squared activation per input column
    std::map<std::string, std::vector<float>> data;
    // weight tensor name -> (groups x 256 x 256) mean x x^T per full 256-column group (optional)
    std::map<std::string, std::vector<float>> cov;
    std::string dataset;       // imatrix.dataset ("" when absent)
    uint32_t chunk_count = 0;  // imatrix.chunk_count (0 when absent)
    uint32_t chunk_size = 0;   // imatrix.chunk_size
    uint64_t token_count = 0;  // imatrix.token_count

    // The column weights for `weight_name`, or nullptr when the file has none for it.
    const std::vector<float>* find(const std::string& weight_name) const;
    // find() that also checks the length against the tensor's row length: nullptr (and ok) when
    // absent; an error naming the tensor when present with another length.
    Result<const std::vector<float>*> find_checked(const std::string& weight_name, int64_t cols) const;
};

inline constexpr const char* kImatrixSuffix = ".in_sum2";
inline constexpr const char* kImatrixCovSuffix = ".in_cov";
// The covariance groups are q3.5's rotation groups (the quantizer that uses them).
inline constexpr int kImatrixCovGroup = kQ3_5Group;

// Reads and validates an imatrix GGUF: every "*.in_sum2" tensor is F32 with ne = [cols] (or
// [cols, 1]) and holds finite values >= 0; metadata keys, when present, have the types above.
// Fails when the file holds no "*.in_sum2" tensor. Errors name the file and the tensor.
Result<Imatrix> load_imatrix(const std::string& path);

// Writes `m` in the format above (atomically: a temporary file renamed into place).
Status save_imatrix(const Imatrix& m, const std::string& path);

}  // namespace pl
