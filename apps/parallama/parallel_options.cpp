// SPDX-License-Identifier: MIT
#include "parallel_options.h"

#include "command.h"
#include "common.h"

#include "dist/comm.h"

namespace pl::cli {

void add_parallel_options(CLI::App& app, ParallelOptions& p, const std::string& pp_flag) {
    auto* g = app.add_option_group("Distributed (under mpirun, docs/parallelism.md)");
    g->add_option("--tp", p.layout.tp, "Tensor-parallel degree: heads and FFN rows split over this many ranks")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    g->add_option(pp_flag, p.layout.pp, "Pipeline-parallel degree: contiguous layer ranges over this many stages")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    g->add_option("--dp", p.layout.dp, "Data-parallel replicas (0 = MPI ranks / (tp x pp))")->check(CLI::Range(0, 4096))->capture_default_str();
    g->add_option_function<std::string>(
         "--tp-reduce",
         [&p](const std::string& v) { p.layout.reduce = v == "rma" ? dist::TpReduce::Rma : dist::TpReduce::Allreduce; },
         "How tensor-parallel partial sums are reduced: allreduce (MPI_Allreduce) | rma (MPI_Put into windows + fence)")
        ->check(CLI::IsMember({"allreduce", "rma"}))
        ->default_str("allreduce");
    g->add_option("--micro-batches", p.micro_batches, "Micro-batches per replica for pipelining (0 = min(sequences, pp))")
        ->check(CLI::Range(0, 4096));
}

bool wants_distributed(const ParallelOptions& p) {
    return dist::launched_by_mpirun() || p.layout.tp > 1 || p.layout.pp > 1 || p.layout.dp > 1;
}

int agree(std::string_view cmd, const Status& s) {
    dist::Comm& w = dist::world();
    const int mine = s ? 0 : 1;
    const int any_failed = w.allreduce_max(mine);
    if (!any_failed) return 0;
    const int any_ok = w.allreduce_max(1 - mine);
    if (mine && any_ok) fail(cmd, s.with_context(fmt::format("rank {}", w.rank())));
    if (mine && !any_ok && w.rank() == 0) fail(cmd, s);
    return 1;
}

std::optional<RankShard> load_rank_shard(std::string_view cmd, const std::string& model_path, const ParallelOptions& p, int threads) {
    if (Status s = dist::init_world(); !s) {
        fail(cmd, s);
        return std::nullopt;
    }
    dist::Comm& w = dist::world();
    auto at = dist::place(p.layout, w.size(), w.rank());
    if (!at) {
        if (w.rank() == 0) fail(cmd, at.status());  // the same answer on every rank
        return std::nullopt;
    }
    apply_threads(threads, /*adaptive=*/false);  // the other ranks on a node are our own job
    auto file = gguf::File::open(model_path);
    if (agree(cmd, file.status())) return std::nullopt;
    auto cfg = ModelConfig::from_gguf(**file);
    if (agree(cmd, cfg.status().with_context(model_path))) return std::nullopt;
    if (agree(cmd, dist::validate_layout(at->layout, *cfg, split_units(**file, *cfg)).with_context(fmt::format("{} with {}", model_path, at->layout.str()))))
        return std::nullopt;
    dist::Grid grid = dist::Grid::create(w, *at);
    auto model = Model::from_file(std::move(file).value(), dist::shard_of(*at, cfg->n_layers));
    if (agree(cmd, model.status())) return std::nullopt;
    return RankShard{*at, std::move(grid), std::move(model).value()};
}

}  // namespace pl::cli
