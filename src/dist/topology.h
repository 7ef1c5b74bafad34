// SPDX-License-Identifier: MIT
// The tp x pp x dp grid of a job: where a world rank sits, its communicators, and its model shard.
//
// World rank r = (dp_rank * pp + pp_rank) * tp + tp_rank: the ranks of one tensor-parallel group
// are adjacent (mpirun packs adjacent ranks onto a node, where the allreduces are cheapest), a
// data-parallel replica is a contiguous block of tp * pp ranks.
#pragma once

#include "core/status.h"
#include "dist/comm.h"
#include "model/shard.h"

#include <string>

namespace pl {
struct ModelConfig;
}

namespace pl::dist {

// How the tensor-parallel reductions travel: MPI_Allreduce, or one-sided puts into MPI windows.
enum class TpReduce { Allreduce, Rma };
const char* tp_reduce_name(TpReduce r);

struct Layout {
    int tp = 1;
    int pp = 1;
    int dp = 0;  // 0: world size / (tp * pp)
    TpReduce reduce = TpReduce::Allreduce;
    std::string str() const;  // "tp2 x pp1 x dp2"
};

struct Placement {
    Layout layout;  // dp resolved
    int world_rank = 0;
    int world_size = 1;
    int tp_rank = 0;
    int pp_rank = 0;
    int dp_rank = 0;
    // The rank that tokenizes and samples for this rank's replica (stage 0, tp rank 0).
    bool replica_root() const { return tp_rank == 0 && pp_rank == 0; }
    bool last_stage() const { return pp_rank == layout.pp - 1; }
    int world_rank_of(int dp, int pp, int tp) const { return (dp * layout.pp + pp) * layout.tp + tp; }
};

// Places world rank `rank` of `world_size`. Fails with the numbers when tp * pp * dp != world size
// or a degree is < 1: "--tp 2 x --pp 2 x --dp 1 needs 4 MPI ranks, this job has 2".
Result<Placement> place(const Layout& layout, int world_size, int rank);

// Checks the layout against the model: enough query heads (whole KV groups, or single query heads
// with KV heads replicated, see split_heads) and FFN blocks (of `units`, split_units() of the
// file) for tp ranks, at least pp layers. The same check on every rank, before any weight is read.
Status validate_layout(const Layout& layout, const ModelConfig& c, const SplitUnits& units = {});

// This rank's part of the model: its tp rank and its stage's contiguous layer range.
ShardSpec shard_of(const Placement& p, int n_layers);

// The communicators of one rank (MPI_Comm_split of the world).
struct Grid {
    Placement at;
    Comm tp;       // the tp ranks of this stage of this replica (rank = tp_rank)
    Comm pp;       // this tp index's stages of this replica (rank = pp_rank)
    Comm replica;  // the tp * pp ranks of this replica (rank 0 = replica root)
    static Grid create(Comm& world, const Placement& p);
};

}  // namespace pl::dist
