// SPDX-License-Identifier: MIT
// --tp, --pp, --dp, --tp-reduce and --micro-batches: the distributed layout of a command started
// with mpirun (docs/parallelism.md).
#pragma once

#include "dist/topology.h"
#include "model/llama.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pl::cli {

struct ParallelOptions {
    dist::Layout layout;
    int micro_batches = 0;
};

// `pp_flag`: the name of the pipeline option ("--pp"; bench, whose --pp is the prompt length as in
// llama-bench, calls it "--stages").
void add_parallel_options(CLI::App& app, ParallelOptions& p, const std::string& pp_flag = "--pp");
// True when the command must run distributed: started by mpirun, or a layout other than 1x1x1
// was asked for (which then fails with a message when the job has too few ranks).
bool wants_distributed(const ParallelOptions& p);

// After a step every rank took: 0 when all ranks succeeded; otherwise the failing ranks print
// their error (just rank 0 when every rank failed alike) and it returns 1 on every rank.
int agree(std::string_view cmd, const Status& s);

// The start of a distributed command on every rank: MPI (init_world), this rank's place in
// p.layout, the OpenMP threads, the layout checked against the model's shape, the communicators
// and this rank's shard of the model. Every failure is agreed on: nullopt on every rank, after
// the failing ranks (rank 0 alone when all failed alike) printed why.
struct RankShard {
    dist::Placement at;
    dist::Grid grid;
    std::unique_ptr<Model> model;
};
std::optional<RankShard> load_rank_shard(std::string_view cmd, const std::string& model_path, const ParallelOptions& p, int threads);

}  // namespace pl::cli
