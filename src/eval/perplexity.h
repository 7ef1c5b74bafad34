// SPDX-License-Identifier: MIT
// Perplexity the way llama-perplexity measures it, plus the numerics shared by `kld` and
// `imatrix`:
//  - the text is tokenized once (with BOS when the vocabulary adds one) and cut into chunks of
//    n_ctx consecutive tokens; the last partial chunk is dropped; when the vocabulary adds BOS the
//    first token of every chunk is replaced by BOS;
//  - every chunk runs in a fresh context (Session::reset), and only its second half is scored:
//    the logits at positions j in [first, n_ctx - 1), first = n_ctx / 2, predict token j + 1
//    (n_ctx - 1 - first tokens per chunk), so every scored token sees at least n_ctx/2 of context;
//  - per-token negative log-likelihoods come from a log-softmax in double over the full vocabulary;
//    PPL = exp(mean NLL), its standard error exp(mean) * stderr(NLL) (delta method), as llama.cpp.
// Threads: the forward pass is OpenMP-parallel inside Session::eval; nothing here adds threads.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace pl {
class Model;
class Tokenizer;
}  // namespace pl

namespace pl::eval {

// Mean of a per-token quantity with its standard error: sqrt(population variance / (n - 1)),
// llama.cpp's formula (= sample standard deviation / sqrt(n)). stderr is 0 for n < 2.
struct MeanStat {
    int64_t n = 0;
    double sum = 0.0;
    double sum2 = 0.0;
    void add(double x) {
        ++n;
        sum += x;
        sum2 += x * x;
    }
    double mean() const { return n ? sum / static_cast<double>(n) : 0.0; }
    double stderr_mean() const;
};

struct PplEstimate {
    int64_t n_tokens = 0;  // scored tokens
    double mean_nll = 0.0;
    double nll_err = 0.0;
    double ppl = 0.0;
    double ppl_err = 0.0;
};
PplEstimate ppl_estimate(const MeanStat& nll);

// log(sum_i exp(logits[i])) in double, stable (max subtracted).
double log_sum_exp(const float* logits, int64_t n);
// -log softmax(logits)[target] in double.
double token_nll(const float* logits, int64_t n, int32_t target);
// Index of the largest logit (the first on ties).
int32_t argmax(const float* logits, int64_t n);

// The tokenized text cut into chunks (see the header comment).
struct Chunks {
    int n_ctx = 0;
    int first = 0;                           // first scored position: n_ctx / 2
    int64_t text_tokens = 0;                 // tokens in the whole text
    std::vector<std::vector<int32_t>> data;  // (n_chunks, n_ctx)
    int n_chunks() const { return static_cast<int>(data.size()); }
    int scored_per_chunk() const { return n_ctx - 1 - first; }
};
// max_chunks <= 0: every full chunk. bos < 0: leave the first token of each chunk alone.
// Fails when n_ctx < 8 or the text has fewer than n_ctx tokens.
Result<Chunks> make_chunks(std::span<const int32_t> tokens, int n_ctx, int max_chunks, int32_t bos);
// Reads `path` whole, tokenizes it with the model's tokenizer (BOS as the vocabulary says) and
// chunks it. Errors name the file.
Result<Chunks> chunk_text_file(const Tokenizer& tok, const std::string& path, int n_ctx, int max_chunks);
// The whole file as bytes; an empty file is an error.
Result<std::string> read_text_file(const std::string& path);

// Called after each chunk with the estimate over all chunks so far.
struct ChunkProgress {
    int chunk = 0;     // 1-based
    int n_chunks = 0;
    double seconds = 0.0;  // since the run started
};
using PplChunkFn = std::function<void(const ChunkProgress&, const PplEstimate& running)>;

// Runs every chunk through `model` (reference = float path for every matrix) and scores it.
Result<PplEstimate> perplexity(const Model& model, const Chunks& chunks, bool reference, const PplChunkFn& on_chunk = {});

}  // namespace pl::eval
