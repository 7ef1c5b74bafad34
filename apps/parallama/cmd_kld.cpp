// SPDX-License-Identifier: MIT
// parallama kld: KL divergence of a model (-m) from a base model (--base) on the same chunks as
// perplexity: mean/median/p90/p99/max KLD, top-1 agreement and both perplexities with their ratio.
// See src/eval/kld.h and docs/quality.md.
#include "command.h"
#include "common.h"

#include "eval/kld.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <cmath>
#include <cstdio>

namespace pl::cli {
namespace {

struct KldOptions {
    std::string base;
    std::string model;
    std::string text;
    int n_ctx = 512;
    int chunks = 0;
    bool base_reference = false;
    bool reference = false;
    int threads = 0;
};

void print_summary(const eval::KldSummary& s) {
    std::printf("tokens scored:   %lld\n", static_cast<long long>(s.n_tokens));
    std::printf("Mean KLD:        %.6f +/- %.6f\n", s.kld_mean, s.kld_mean_err);
    std::printf("Median KLD:      %.6f\n", s.kld_median);
    std::printf("p90 KLD:         %.6f\n", s.kld_p90);
    std::printf("p99 KLD:         %.6f\n", s.kld_p99);
    std::printf("Max KLD:         %.6f\n", s.kld_max);
    std::printf("Same top-1:      %.3f +/- %.3f %%\n", 100.0 * s.top1, 100.0 * s.top1_err);
    std::printf("PPL(base):       %.4f +/- %.4f\n", s.ppl_base.ppl, s.ppl_base.ppl_err);
    std::printf("PPL(model):      %.4f +/- %.4f\n", s.ppl_q.ppl, s.ppl_q.ppl_err);
    std::printf("PPL ratio:       %.6f +/- %.6f\n", s.ratio, s.ratio_err);
    std::printf("ln(PPL ratio):   %.6f +/- %.6f\n", s.ln_ratio, s.ln_ratio_err);
}

int run_kld(const KldOptions& o) {
    apply_threads(o.threads);
    auto base = Model::load(o.base);
    if (!base) return fail("kld", base.status().with_context("--base"));
    auto model = Model::load(o.model);
    if (!model) return fail("kld", model.status());
    auto tok_base = Tokenizer::from_gguf((*base)->file());
    if (!tok_base) return fail("kld", tok_base.status().with_context("--base tokenizer"));
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("kld", tok.status().with_context("tokenizer"));
    if (Status s = eval::check_same_vocab(**tok_base, **tok, (*base)->config().vocab_size, (*model)->config().vocab_size); !s)
        return fail("kld", s);
    auto chunks = eval::chunk_text_file(**tok_base, o.text, o.n_ctx, o.chunks);
    if (!chunks) return fail("kld", chunks.status());
    std::fprintf(stderr, "kld: base %s (%s path) vs %s (%s path): %d chunks of %d tokens, scoring %d per chunk\n",
                 o.base.c_str(), o.base_reference ? "float reference" : "int8-activation", o.model.c_str(),
                 o.reference ? "float reference" : "int8-activation", chunks->n_chunks(), chunks->n_ctx,
                 chunks->scored_per_chunk());
    auto result = eval::kld(**base, o.base_reference, **model, o.reference, *chunks,
                            [](const eval::ChunkProgress& p, const eval::KldSummary& s) {
        std::printf("[%d/%d] mean KLD %.6f, same top-1 %.2f %%, PPL ratio %.4f\n", p.chunk, p.n_chunks, s.kld_mean,
                    100.0 * s.top1, s.ratio);
        std::fflush(stdout);
        const double per = p.seconds / p.chunk;
        std::fprintf(stderr, "kld: chunk %d/%d, %.2f s/chunk, ETA %.0f s\n", p.chunk, p.n_chunks, per, per * (p.n_chunks - p.chunk));
    });
    if (!result) return fail("kld", result.status());
    print_summary(*result);
    return 0;
}

const CommandRegistrar kKld({"kld", "KL divergence, top-1 agreement and PPL ratio of a model against a base model", 81,
                             [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<KldOptions>();
    app.add_option("--base", o->base, "Base model GGUF (the reference distribution P)")->required()->check(CLI::ExistingFile);
    app.add_option("-m,--model", o->model, "Model GGUF to compare (Q)")->required()->check(CLI::ExistingFile);
    app.add_option("-f,--file", o->text, "Text file (UTF-8) to evaluate on")->required()->check(CLI::ExistingFile);
    app.add_option("-c,--ctx", o->n_ctx, "Tokens per chunk; the second half of each chunk is scored")
        ->check(CLI::Range(8, 1 << 20))->capture_default_str();
    app.add_option("--chunks", o->chunks, "Evaluate at most this many chunks (0 = all)")->check(CLI::Range(0, 1 << 30));
    app.add_flag("--base-reference", o->base_reference, "Run the base model on the float reference path");
    app.add_flag("--reference", o->reference, "Run the compared model on the float reference path");
    add_threads_option(app, o->threads, "f32");  // quality figures measure the weights alone
    return [o] { return run_kld(*o); };
}});

}  // namespace
}  // namespace pl::cli
