// SPDX-License-Identifier: MIT
#include "dist/topology.h"

#include "model/llama.h"

#include <fmt/format.h>

namespace pl::dist {

const char* tp_reduce_name(TpReduce r) { return r == TpReduce::Rma ? "rma" : "allreduce"; }

std::string Layout::str() const { return fmt::format("tp{} x pp{} x dp{}", tp, pp, dp); }

Result<Placement> place(const Layout& layout, int world_size, int rank) {
    Layout l = layout;
    const char* hint = world_size == 1 ? " (start it with mpirun -np N)" : "";
    if (l.tp < 1 || l.pp < 1 || l.dp < 0) return err("--tp {}, --pp {}, --dp {}: degrees must be at least 1", l.tp, l.pp, l.dp);
    if (l.dp == 0) {
        if (world_size % (l.tp * l.pp) != 0)
            return err("--tp {} x --pp {} = {} ranks per replica does not divide the job's {} MPI ranks{}", l.tp, l.pp, l.tp * l.pp,
                       world_size, hint);
        l.dp = world_size / (l.tp * l.pp);
    }
    if (l.tp * l.pp * l.dp != world_size)
        return err("--tp {} x --pp {} x --dp {} needs {} MPI ranks, this job has {}{}", l.tp, l.pp, l.dp, l.tp * l.pp * l.dp,
                   world_size, hint);
    Placement p;
    p.layout = l;
    p.world_rank = rank;
    p.world_size = world_size;
    p.tp_rank = rank % l.tp;
    p.pp_rank = rank / l.tp % l.pp;
    p.dp_rank = rank / (l.tp * l.pp);
    return p;
}

Status validate_layout(const Layout& layout, const ModelConfig& c, const SplitUnits& units) {
    if (c.n_layers < layout.pp) return err("n_layers={} is smaller than pp={} (every stage needs a layer)", c.n_layers, layout.pp);
    ShardSpec s;
    s.tp_size = layout.tp;
    return shard_dims(c, s, units).status();
}

ShardSpec shard_of(const Placement& p, int n_layers) {
    ShardSpec s;
    s.tp_rank = p.tp_rank;
    s.tp_size = p.layout.tp;
    split_range(n_layers, p.layout.pp, p.pp_rank, s.layer_begin, s.layer_end);
    if (s.layer_begin == 0 && s.layer_end == n_layers) s.layer_end = -1;
    return s;
}

Grid Grid::create(Comm& world, const Placement& p) {
    const int T = p.layout.tp, P = p.layout.pp;
    Grid g;
    g.at = p;
    g.tp = world.split(p.dp_rank * P + p.pp_rank, p.tp_rank);
    g.pp = world.split(p.dp_rank * T + p.tp_rank, p.pp_rank);
    g.replica = world.split(p.dp_rank, p.pp_rank * T + p.tp_rank);
    return g;
}

}  // namespace pl::dist
