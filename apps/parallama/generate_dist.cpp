// SPDX-License-Identifier: MIT
// parallama generate under mpirun: each rank loads its shard, world rank 0 tokenizes and prints,
// the replica roots sample (src/dist/generate.h); the per-rank report goes to stderr.
#include "command.h"
#include "common.h"
#include "generate.h"

#include "dist/comm.h"
#include "dist/generate.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <cstdio>

namespace pl::cli {
namespace {

// World rank 0: the prompts as token ids (the same rules as the single-process command).
Result<std::vector<std::vector<int32_t>>> encode_prompts(const GenerateOptions& o, const Tokenizer& tok, int vocab,
                                                         std::vector<std::string>& texts) {
    std::vector<std::vector<int32_t>> prompts;
    if (!o.prompts_file.empty()) {
        PL_ASSIGN_OR_RETURN(texts, read_prompts_file(o.prompts_file));
        for (const auto& t : texts) {
            auto ids = tok.encode(t, tok.add_bos_default() && !o.no_bos);
            if (ids.empty()) ids.push_back(tok.bos_id() >= 0 ? tok.bos_id() : 0);
            prompts.push_back(std::move(ids));
        }
        return prompts;
    }
    std::vector<int32_t> p;
    if (!o.prompt_ids.empty()) {
        auto ids = parse_ids(o.prompt_ids);
        if (!ids) return ids.status().with_context("--prompt-ids");
        p = *ids;
    } else {
        p = tok.encode(o.prompt, tok.add_bos_default() && !o.no_bos);
    }
    if (p.empty()) {
        if (tok.bos_id() < 0) return err("empty prompt and the vocabulary has no BOS token to start from");
        p.push_back(tok.bos_id());
    }
    for (size_t i = 0; i < p.size(); ++i)
        if (p[i] < 0 || p[i] >= vocab) return err("prompt token id {} at index {} is out of range [0, {})", p[i], i, vocab);
    prompts.push_back(std::move(p));
    return prompts;
}

std::string ids_line(const std::vector<int32_t>& ids) {
    std::string line;
    for (size_t j = 0; j < ids.size(); ++j) line += (j ? " " : "") + std::to_string(ids[j]);
    return line;
}

// When the query heads are split with KV heads replicated (fewer KV-group units than tp ranks),
// one line with every tp rank's query and KV heads: "dist: tp3 splits 8 query heads on 2 KV heads
// by query head, KV heads replicated: tp rank 0 q 0-2 kv 0, tp rank 1 q 3-5 kv 0-1, ...".
void print_head_split(const Model& m, int tp) {
    if (!m.dims().kv_replicated) return;
    auto heads = [](int begin, int n) { return n == 1 ? std::to_string(begin) : fmt::format("{}-{}", begin, begin + n - 1); };
    const ModelConfig& c = m.config();
    const SplitUnits units = split_units(m.file(), c);
    std::string line = fmt::format("dist: tp{} splits {} query heads on {} KV heads by query head, KV heads replicated:", tp, c.n_heads,
                                   c.n_kv_heads);
    for (int r = 0; r < tp; ++r) {
        ShardSpec s;
        s.tp_size = tp;
        s.tp_rank = r;
        auto d = shard_dims(c, s, units);
        if (!d) return;  // validated before loading: cannot happen
        line += fmt::format("{} tp rank {} q {} kv {}", r ? "," : "", r, heads(d->head_begin, d->n_heads),
                            heads(d->kv_head_begin, d->n_kv_heads));
    }
    std::fprintf(stderr, "%s\n", line.c_str());
}

void print_report(const dist::GenerateResult& r, const dist::Placement& at) {
    const dist::Layout& l = at.layout;
    std::fprintf(stderr, "dist: %s, %d MPI ranks (%s), tp reduce %s\n", l.str().c_str(), at.world_size, dist::mpi_library(),
                 dist::tp_reduce_name(l.reduce));
    std::fprintf(stderr, "dist: %-4s %-2s %-2s %-2s %-7s %5s %9s %9s %9s %10s %9s %10s %7s %9s %9s\n", "rank", "dp", "pp", "tp",
                 "layers", "steps", "wall_s", "compute_s", "tp_comm_s", "tp_KiB/st", "p2p_s", "p2p_KiB/st", "bubble", "rss_MiB",
                 "peak_MiB");
    for (const auto& k : r.ranks) {
        const double steps = k.steps > 0 ? k.steps : 1;
        std::fprintf(stderr, "dist: %-4d %-2d %-2d %-2d %3d-%-3d %5d %9.3f %9.3f %9.3f %10.1f %9.3f %10.1f %6.1f%% %9.1f %9.1f\n",
                     k.world_rank, k.dp_rank, k.pp_rank, k.tp_rank, k.layer_begin, k.layer_end - 1, k.steps, k.wall_s, k.compute_s,
                     k.tp_comm_s, static_cast<double>(k.tp_bytes) / 1024.0 / steps, k.p2p_comm_s,
                     static_cast<double>(k.p2p_bytes) / 1024.0 / steps, 100.0 * k.bubble(), k.rss_load_kib / 1024.0,
                     k.rss_peak_kib / 1024.0);
    }
}

}  // namespace

int run_generate_dist(const GenerateOptions& o) {
    const char* cmd = "generate";
    auto shard = load_rank_shard(cmd, o.model, o.parallel, o.threads);
    if (!shard) return 1;
    dist::Comm& w = dist::world();
    const dist::Placement& at = shard->at;
    dist::Grid& grid = shard->grid;
    const Model& model = *shard->model;
    const ModelConfig& cfg = model.config();
    const long rss_load = dist::proc_status_kib("VmRSS");

    // The tokenizer: world rank 0 encodes and prints, every replica root tests for end of generation.
    std::unique_ptr<Tokenizer> tok;
    Status tok_status;
    if (at.replica_root()) {
        auto t = Tokenizer::from_gguf(model.file());
        if (t) tok = std::move(t).value();
        tok_status = t.status().with_context("tokenizer");
    }
    if (agree(cmd, tok_status)) return 1;
    dist::GenerateJob job;
    std::vector<std::string> texts;
    if (w.rank() == 0) {
        auto prompts = encode_prompts(o, *tok, cfg.vocab_size, texts);
        if (prompts) job.prompts = std::move(prompts).value();
        tok_status = prompts.status();
    }
    if (agree(cmd, tok_status)) return 1;
    job.n_predict = o.n_predict;
    job.n_ctx = o.n_ctx;
    job.micro_batches = o.parallel.micro_batches;
    job.sampling = o.sampling;
    job.ignore_eos = o.ignore_eos;
    if (tok) job.is_eog = [&tok](int32_t id) { return tok->is_eog(id); };

    auto r = dist::generate(grid, model, job, rss_load);
    if (agree(cmd, r.status())) return 1;
    if (w.rank() != 0) return 0;

    const bool batch = !o.prompts_file.empty();
    for (size_t i = 0; i < r->outputs.size(); ++i) {
        const auto& ids = r->outputs[i];
        if (batch) {
            std::printf("[%zu] %s\n", i, o.print_ids ? ids_line(ids).c_str() : (texts[i] + tok->decode(ids)).c_str());
        } else if (o.print_ids) {
            std::printf("%s\n", ids_line(ids).c_str());
        } else {
            StreamDecoder dec(*tok);
            std::string text = o.prompt_ids.empty() ? tok->decode(job.prompts[0]) : "";
            for (int32_t id : ids) text += dec.push(id);
            text += dec.flush();
            std::printf("%s\n", text.c_str());
        }
    }
    std::fflush(stdout);
    if (batch) std::fprintf(stderr, "batch: %zu sequences\n", r->outputs.size());
    // The whole job's time (prompts and decode steps interleave in the pipeline), so every sampled
    // token counts: unlike the single-process line, which times decode steps only.
    std::fprintf(stderr, "generation: %d tokens in %.3f s, prompts included (%.2f tokens/s aggregate)\n", r->tokens, r->wall_s,
                 r->wall_s > 0 ? r->tokens / r->wall_s : 0.0);
    print_head_split(model, at.layout.tp);
    print_report(*r, at);
    return 0;
}

}  // namespace pl::cli
