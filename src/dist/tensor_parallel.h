// SPDX-License-Identifier: MIT
// The tensor-parallel collectives of the forward pass (model/shard.h) over a stage's tp
// communicator: the hidden-state allreduce by MPI_Allreduce or by MPI RMA windows, and the
// gather of the vocabulary-split logits to tp rank 0.
#pragma once

#include "dist/comm.h"
#include "dist/topology.h"
#include "model/shard.h"

#include <vector>

namespace pl::dist {

class MpiTensorParallel final : public TensorParallelOps {
public:
    // max_floats: the longest vector allreduce_sum will see (n_batch * dim), the RMA window's size.
    MpiTensorParallel(Comm& tp, TpReduce reduce, size_t max_floats) : comm_(tp), reduce_(reduce), max_n_(max_floats) {}
    int rank() const override { return comm_.rank(); }
    int size() const override { return comm_.size(); }
    void allreduce_sum(float* x, size_t n) override;
    void gather_columns(const float* local, int rows, int total_cols, float* out) override;

private:
    Comm& comm_;
    TpReduce reduce_;
    size_t max_n_;
    std::vector<float> gathered_;  // (size, rows, cols_r) blocks in rank order
};

}  // namespace pl::dist
