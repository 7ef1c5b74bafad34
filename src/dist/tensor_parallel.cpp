// SPDX-License-Identifier: MIT
#include "dist/tensor_parallel.h"

#include <cstring>

namespace pl::dist {

void MpiTensorParallel::allreduce_sum(float* x, size_t n) {
    if (reduce_ == TpReduce::Rma)
        comm_.allreduce_sum_rma(x, n, max_n_);
    else
        comm_.allreduce_sum(x, n);
}

void MpiTensorParallel::gather_columns(const float* local, int rows, int total_cols, float* out) {
    const int T = comm_.size();
    std::vector<size_t> counts(static_cast<size_t>(T));
    int b = 0, e = 0;
    for (int r = 0; r < T; ++r) {
        split_range(total_cols, T, r, b, e);
        counts[static_cast<size_t>(r)] = static_cast<size_t>(rows) * static_cast<size_t>(e - b) * sizeof(float);
    }
    split_range(total_cols, T, comm_.rank(), b, e);
    if (comm_.rank() == 0) gathered_.resize(static_cast<size_t>(rows) * static_cast<size_t>(total_cols));
    comm_.gatherv(local, static_cast<size_t>(rows) * static_cast<size_t>(e - b) * sizeof(float), gathered_.data(), counts, 0);
    if (comm_.rank() != 0) return;
    // Rank-major blocks -> row-major (rows, total_cols).
    const float* src = gathered_.data();
    for (int r = 0; r < T; ++r) {
        split_range(total_cols, T, r, b, e);
        const size_t w = static_cast<size_t>(e - b);
        for (int i = 0; i < rows; ++i, src += w) std::memcpy(out + static_cast<size_t>(i) * total_cols + b, src, w * sizeof(float));
    }
}

}  // namespace pl::dist
