// SPDX-License-Identifier: MIT
// KL divergence between a base model and a quantized (or otherwise changed) one, on the same
// chunks and scored positions as perplexity (see perplexity.h): for every scored token,
// KL(P_base || P_q) = sum_i p_i (log p_i - log q_i) over the full vocabulary, log-softmax in double;
// top-1 agreement (same argmax); both perplexities and their ratio. Both models run side by side
// (two sessions, a few rows of logits each), so no logits are stored.
#pragma once

#include "core/status.h"
#include "eval/perplexity.h"

#include <cstdint>
#include <vector>

namespace pl {
class Model;
class Tokenizer;
}  // namespace pl

namespace pl::eval {

// KL(softmax(base) || softmax(q)) over n logits, in double. Exactly 0 when the rows are equal.
double kl_divergence(const float* base, const float* q, int64_t n);

// Linear interpolation between order statistics: p in [0, 1] over `sorted` (ascending, non-empty).
double percentile(const std::vector<float>& sorted, double p);

struct KldSummary {
    int64_t n_tokens = 0;
    double kld_mean = 0.0, kld_mean_err = 0.0;
    double kld_median = 0.0, kld_p90 = 0.0, kld_p99 = 0.0, kld_max = 0.0;
    double top1 = 0.0, top1_err = 0.0;  // fraction of tokens whose argmax agrees, and its stderr
    PplEstimate ppl_base, ppl_q;
    double ln_ratio = 0.0, ln_ratio_err = 0.0;  // mean(nll_q - nll_base): ln(PPL_q / PPL_base)
    double ratio = 0.0, ratio_err = 0.0;        // PPL_q / PPL_base
};

// Per-token statistics, collected in order; summary() may be called at any time.
class KldAccumulator {
public:
    void add(double kld, double nll_base, double nll_q, bool same_top1);
    // Adds one scored row: both logits rows and the token that follows.
    void add_row(const float* base, const float* q, int64_t n_vocab, int32_t target);
    KldSummary summary() const;
    int64_t size() const { return kld_.n; }

private:
    MeanStat kld_, nll_base_, nll_q_, diff_;
    int64_t same_ = 0;
    double max_ = 0.0;
    std::vector<float> values_;  // (n_tokens) every KLD, for the median and percentiles
};

// Both vocabularies must be the same: the same size and the same text for every id.
Status check_same_vocab(const Tokenizer& base, const Tokenizer& q, int base_vocab_size, int q_vocab_size);

using KldChunkFn = std::function<void(const ChunkProgress&, const KldSummary& running)>;
// Runs every chunk through both models (each on its own path: reference = float path) and compares.
Result<KldSummary> kld(const Model& base, bool base_reference, const Model& q, bool q_reference, const Chunks& chunks,
                       const KldChunkFn& on_chunk = {});

}  // namespace pl::eval
