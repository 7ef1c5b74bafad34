// SPDX-License-Identifier: MIT
// parallama perplexity: llama-perplexity's measurement (chunks of --ctx tokens, BOS per chunk,
// second half of each chunk scored) with the running estimate per chunk and the final PPL with
// its standard error. See src/eval/perplexity.h and docs/quality.md.
#include "command.h"
#include "common.h"

#include "eval/perplexity.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <cstdio>

namespace pl::cli {
namespace {

struct PerplexityOptions {
    std::string model;
    std::string text;
    int n_ctx = 512;
    int chunks = 0;
    bool reference = false;
    int threads = 0;
};

int run_perplexity(const PerplexityOptions& o) {
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("perplexity", model.status());
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("perplexity", tok.status().with_context("tokenizer"));
    auto chunks = eval::chunk_text_file(**tok, o.text, o.n_ctx, o.chunks);
    if (!chunks) return fail("perplexity", chunks.status());
    std::fprintf(stderr, "perplexity: %s: %d chunks of %d tokens (the text has %lld), scoring %d tokens per chunk, %s path\n",
                 o.model.c_str(), chunks->n_chunks(), chunks->n_ctx, static_cast<long long>(chunks->text_tokens),
                 chunks->scored_per_chunk(), o.reference ? "float reference" : "int8-activation");
    auto result = eval::perplexity(**model, *chunks, o.reference, [](const eval::ChunkProgress& p, const eval::PplEstimate& e) {
        std::printf("[%d/%d] PPL = %.4f +/- %.4f\n", p.chunk, p.n_chunks, e.ppl, e.ppl_err);
        std::fflush(stdout);
        const double per = p.seconds / p.chunk;
        std::fprintf(stderr, "perplexity: chunk %d/%d, %.2f s/chunk, ETA %.0f s\n", p.chunk, p.n_chunks, per,
                     per * (p.n_chunks - p.chunk));
    });
    if (!result) return fail("perplexity", result.status());
    std::printf("Final estimate: PPL = %.4f +/- %.5f  (%lld tokens, %d chunks of %d)\n", result->ppl, result->ppl_err,
                static_cast<long long>(result->n_tokens), chunks->n_chunks(), chunks->n_ctx);
    return 0;
}

const CommandRegistrar kPerplexity({"perplexity", "Perplexity of a model on a text file (llama-perplexity's chunking)", 80,
                                    [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<PerplexityOptions>();
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("-f,--file", o->text, "Text file (UTF-8) to evaluate on")->required()->check(CLI::ExistingFile);
    app.add_option("-c,--ctx", o->n_ctx, "Tokens per chunk; the second half of each chunk is scored")
        ->check(CLI::Range(8, 1 << 20))->capture_default_str();
    app.add_option("--chunks", o->chunks, "Evaluate at most this many chunks (0 = all)")->check(CLI::Range(0, 1 << 30));
    app.add_flag("--reference", o->reference, "Use the float reference path for every matrix (no int8 activations)");
    add_threads_option(app, o->threads, "f32");  // quality figures measure the weights alone
    return [o] { return run_perplexity(*o); };
}});

}  // namespace
}  // namespace pl::cli
