// SPDX-License-Identifier: MIT
// --tp, --pp, --dp, --tp-reduce and --micro-batches: the distributed layout of a command started
// with mpirun (docs/parallelism.md).
#pragma once

#include "dist/topology.h"

#include <CLI/CLI.hpp>

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

}  // namespace pl::cli
