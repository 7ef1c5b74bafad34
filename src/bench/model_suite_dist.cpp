// SPDX-License-Identifier: MIT
// The model suite under mpirun: pp and tg through dist::generate (the same code path as
// `parallama generate --tp/--pp/--dp`), timed on world rank 0, with every rank's compute and
// communication figures (docs/benchmarks.md, "Distributed rows").
#include "bench/model_suite.h"

#include "bench/report.h"
#include "kernels/cpu/kernels.h"
#include "dist/comm.h"
#include "dist/generate.h"
#include "format/gguf.h"
#include "model/llama.h"
#include "quant/formats.h"

#include <omp.h>

#include <algorithm>
#include <random>

namespace pl::bench {
namespace {

// Every rank's status agreed: ok when all succeeded; else the failing ranks keep their error and
// the others get an empty message (the caller prints non-empty messages only).
Status agree_all(const Status& s) {
    dist::Comm& w = dist::world();
    if (!w.allreduce_max(s ? 0 : 1)) return Status::ok();
    return s ? Status::error("") : s;
}

// Per-rank sums over the timed runs of one row.
struct RankSums {
    dist::RankReport last;  // placement, layers, memory
    int steps = 0;
    double wall_s = 0, compute_s = 0, tp_comm_s = 0, p2p_comm_s = 0;
    double tp_bytes = 0, p2p_bytes = 0;
    void add(const dist::RankReport& r) {
        last = r;
        steps += r.steps;
        wall_s += r.wall_s;
        compute_s += r.compute_s;
        tp_comm_s += r.tp_comm_s;
        p2p_comm_s += r.p2p_comm_s;
        tp_bytes += static_cast<double>(r.tp_bytes);
        p2p_bytes += static_cast<double>(r.p2p_bytes);
    }
    nlohmann::json json() const {
        const double st = std::max(1, steps);
        return {{"world_rank", last.world_rank}, {"tp_rank", last.tp_rank}, {"pp_rank", last.pp_rank}, {"dp_rank", last.dp_rank},
                {"layer_begin", last.layer_begin}, {"layer_end", last.layer_end}, {"steps", steps}, {"wall_s", wall_s},
                {"compute_s", compute_s}, {"tp_comm_s", tp_comm_s}, {"p2p_comm_s", p2p_comm_s},
                {"compute_s_per_step", compute_s / st}, {"comm_s_per_step", (tp_comm_s + p2p_comm_s) / st},
                {"tp_bytes_per_step", tp_bytes / st}, {"p2p_bytes_per_step", p2p_bytes / st},
                {"comm_share", wall_s > 0 ? (tp_comm_s + p2p_comm_s) / wall_s : 0.0},
                {"peak_rss_bytes", static_cast<uint64_t>(last.rss_peak_kib) * 1024}};
    }
};

}  // namespace

Result<std::vector<nlohmann::json>> run_model_suite_dist(const ModelOptions& o, const dist::Layout& layout, const MachineInfo& m,
                                                         const LogFn& log) {
    dist::Comm& w = dist::world();
    auto at = dist::place(layout, w.size(), w.rank());
    PL_TRY(agree_all(at.status()));
    // World rank 0 makes missing synthetic models while the others sleep, then every rank finds
    // them in the cache (the memory size that picks the layer count is rank 0's).
    Result<std::vector<ModelTarget>> targets = std::vector<ModelTarget>{};
    if (w.rank() == 0) targets = model_targets(o, m, log);
    w.barrier_idle();
    PL_TRY(agree_all(targets.status()));
    MachineInfo mem;
    mem.mem_bytes = m.mem_bytes;
    w.bcast(&mem.mem_bytes, sizeof mem.mem_bytes, 0);
    if (w.rank() != 0) targets = model_targets(o, mem, {});
    PL_TRY(agree_all(targets.status()));

    const dist::Placement& p = *at;
    const std::string suffix = "/" + [&] {
        std::string s = fmt::format("tp{}", p.layout.tp);
        if (p.layout.pp > 1) s += fmt::format("pp{}", p.layout.pp);
        if (p.layout.dp > 1) s += fmt::format("dp{}", p.layout.dp);
        if (p.layout.reduce == dist::TpReduce::Rma) s += "rma";
        return s;
    }();
    std::vector<nlohmann::json> rows;
    for (const ModelTarget& tg : *targets) {
        auto file = gguf::File::open(tg.path);
        PL_TRY(agree_all(file.status()));
        auto cfg = ModelConfig::from_gguf(**file);
        PL_TRY(agree_all(cfg.status().with_context(tg.path)));
        PL_TRY(agree_all(dist::validate_layout(p.layout, *cfg, split_units(**file, *cfg)).with_context(tg.label)));
        const WeightBytes wb = weight_bytes_of(**file, cfg->n_layers);
        const int full_layers = tg.full_layers > 0 ? tg.full_layers : cfg->n_layers;
        const double scale = wb.total(full_layers) / wb.total(cfg->n_layers);
        uint32_t wtype = 0;
        if (const gguf::TensorInfo* t = (*file)->find_tensor("blk.0.attn_q.weight")) wtype = t->type;
        dist::Grid grid = dist::Grid::create(w, p);
        auto model = Model::from_file(std::move(file).value(), dist::shard_of(p, cfg->n_layers));
        PL_TRY(agree_all(model.status()));
        const long rss = dist::proc_status_kib("VmRSS");
        if (log) log(fmt::format("model: {} loaded on {} ranks ({}), {:.2f} GiB of weights in the file", tg.label, p.world_size,
                                 p.layout.str(), wb.total(cfg->n_layers) / (1 << 30)));

        std::mt19937 rng(static_cast<uint32_t>(o.seed));
        std::uniform_int_distribution<int32_t> pick(0, cfg->vocab_size - 1);
        for (int t : o.threads) for (int B : o.batches) {
            omp_set_num_threads(t);
            for (const char* test : {"pp", "tg"}) {
                const bool pp = test[0] == 'p';
                const int n = pp ? o.n_prompt : o.n_gen;
                // pp: B prompts of n tokens, one token generated (one step of B x n tokens);
                // tg: B one-token prompts, n tokens generated (n steps of B tokens).
                dist::GenerateJob job;
                if (p.world_rank == 0)
                    for (int s = 0; s < B; ++s) {
                        std::vector<int32_t> ids(static_cast<size_t>(pp ? n : 1));
                        for (auto& id : ids) id = pick(rng);
                        job.prompts.push_back(std::move(ids));
                    }
                job.n_predict = pp ? 1 : n;
                job.sampling.temperature = 0;
                job.ignore_eos = true;
                job.n_ctx = std::max(64, n + 8);
                const std::string what = fmt::format("{}{} {} b{} t{} {}", test, n, tg.label, B, t, p.layout.str());
                for (int k = 0; k < o.warmup; ++k) {
                    dist::GenerateJob warm = job;
                    warm.n_predict = std::min(job.n_predict, 2);
                    auto r = dist::generate(grid, **model, warm, rss);
                    PL_TRY(agree_all(r.status().with_context(what)));
                }
                std::vector<double> samples;
                std::vector<RankSums> sums(static_cast<size_t>(p.world_size));
                for (int k = 0; k < std::max(1, o.repeat); ++k) {
                    auto r = dist::generate(grid, **model, job, rss);
                    PL_TRY(agree_all(r.status().with_context(what)));
                    if (p.world_rank != 0) continue;
                    samples.push_back(r->wall_s / (static_cast<double>(n) * B) * scale);
                    for (const auto& rr : r->ranks) sums[static_cast<size_t>(rr.world_rank)].add(rr);
                }
                if (p.world_rank != 0) continue;
                auto st = summarize(samples, what.c_str());
                if (!st) return st.status();
                ModelRowFacts f;
                f.test = test;
                f.tokens = n;
                f.batch = B;
                f.threads = t;
                f.roofline_threads = t * p.world_size;
                f.label = tg.label;
                f.path = tg.path;
                f.type = type_name(wtype);
                f.id_suffix = suffix;
                f.full_layers = full_layers;
                f.measured_layers = cfg->n_layers;
                f.scale = scale;
                f.full_wbytes = wb.total(full_layers);
                f.full_macs = wb.macs(full_layers);
                f.kv_type = kv_type_name(default_kv_type());  // dist::generate's sessions take the default
                f.int8 = cpu_kernels().dot_for(wtype) != nullptr;
                nlohmann::json row = model_row(f, *st, m);
                row["layout"] = {{"tp", p.layout.tp}, {"pp", p.layout.pp}, {"dp", p.layout.dp}, {"ranks", p.world_size},
                                 {"tp_reduce", dist::tp_reduce_name(p.layout.reduce)}, {"mpi", dist::mpi_library()}};
                nlohmann::json ranks = nlohmann::json::array();
                double share = 0;
                for (const auto& s : sums) {
                    ranks.push_back(s.json());
                    share = std::max(share, ranks.back()["comm_share"].get<double>());
                }
                row["ranks"] = ranks;
                if (log)
                    log(fmt::format("model {}: {:.2f} tokens/s{}, communication up to {:.1f}% of a rank's loop", what, 1.0 / st->median,
                                    f.full_layers != f.measured_layers ? " extrapolated" : "", 100.0 * share));
                rows.push_back(std::move(row));
            }
        }
    }
    return rows;
}

}  // namespace pl::bench
