// SPDX-License-Identifier: MIT
// parallama imatrix: runs a calibration text through the model and writes the importance matrix
// (per weight tensor, the mean of x[j]^2 per input column) as GGUF for `quantize --imatrix`.
// See src/eval/imatrix_collect.h, src/quant/imatrix.h and docs/quality.md.
#include "command.h"
#include "common.h"

#include "eval/imatrix_collect.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <cstdio>
#include <filesystem>

namespace pl::cli {
namespace {

struct ImatrixOptions {
    std::string model;
    std::string text;
    std::string out;
    int n_ctx = 512;
    int chunks = 0;
    bool reference = false;
    bool covariance = false;
    int threads = 0;
};

int run_imatrix(const ImatrixOptions& o) {
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("imatrix", model.status());
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("imatrix", tok.status().with_context("tokenizer"));
    auto chunks = eval::chunk_text_file(**tok, o.text, o.n_ctx, o.chunks);
    if (!chunks) return fail("imatrix", chunks.status());
    std::fprintf(stderr, "imatrix: %s: %d chunks of %d tokens from %s (%lld tokens in the text)\n", o.model.c_str(),
                 chunks->n_chunks(), chunks->n_ctx, o.text.c_str(), static_cast<long long>(chunks->text_tokens));
    const long long calib_tokens = static_cast<long long>(chunks->n_chunks()) * chunks->n_ctx;
    if (o.covariance && calib_tokens < 8192)
        std::fprintf(stderr,
                     "imatrix: warning: covariances from %lld tokens; a 256 x 256 covariance needs thousands of samples "
                     "(SmolLM2: 8192 tokens lowered q3.5's KLD by 23 %%, 1024 did not help), use more --chunks or --ctx\n",
                     calib_tokens);
    const std::string dataset = std::filesystem::path(o.text).filename().string();
    auto m = eval::collect_imatrix(**model, *chunks, o.reference, dataset,
                                   [](const eval::ChunkProgress& p, const eval::PplEstimate& e) {
        std::printf("[%d/%d] calibration PPL = %.4f +/- %.4f\n", p.chunk, p.n_chunks, e.ppl, e.ppl_err);
        std::fflush(stdout);
        const double per = p.seconds / p.chunk;
        std::fprintf(stderr, "imatrix: chunk %d/%d, %.2f s/chunk, ETA %.0f s\n", p.chunk, p.n_chunks, per,
                     per * (p.n_chunks - p.chunk));
    }, o.covariance);
    if (!m) return fail("imatrix", m.status());
    if (Status s = save_imatrix(*m, o.out); !s) return fail("imatrix", s);
    std::printf("imatrix: %zu tensors, %llu tokens (%u chunks of %u) from %s written to %s\n", m->data.size(),
                static_cast<unsigned long long>(m->token_count), m->chunk_count, m->chunk_size, dataset.c_str(), o.out.c_str());
    return 0;
}

const CommandRegistrar kImatrix({"imatrix", "Importance matrix (mean squared activations per input column) for quantize", 82,
                                 [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<ImatrixOptions>();
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("-f,--file", o->text, "Calibration text file (UTF-8); never the evaluation text")
        ->required()->check(CLI::ExistingFile);
    app.add_option("-o,--output", o->out, "Output imatrix GGUF")->required();
    app.add_option("-c,--ctx", o->n_ctx, "Tokens per chunk")->check(CLI::Range(8, 1 << 20))->capture_default_str();
    app.add_option("--chunks", o->chunks, "Use at most this many chunks (0 = all)")->check(CLI::Range(0, 1 << 30));
    app.add_flag("--reference", o->reference, "Use the float reference path for every matrix (no int8 activations)");
    app.add_flag("--covariance", o->covariance,
                 "Also store the activation covariance of every 256-column group (q3.5 then quantizes with GPTQ on it; "
                 "256 KiB per group in the file)");
    add_threads_option(app, o->threads, "f32");  // quality figures measure the weights alone
    return [o] { return run_imatrix(*o); };
}});

}  // namespace
}  // namespace pl::cli
