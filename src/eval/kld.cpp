// SPDX-License-Identifier: MIT
#include "eval/kld.h"

#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace pl::eval {

double kl_divergence(const float* base, const float* q, int64_t n) {
    const double lse_p = log_sum_exp(base, n);
    const double lse_q = log_sum_exp(q, n);
    double kl = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double lp = static_cast<double>(base[i]) - lse_p;
        const double lq = static_cast<double>(q[i]) - lse_q;
        kl += std::exp(lp) * (lp - lq);
    }
    // Rounding can leave a tiny negative sum for nearly equal rows; KL is never negative.
    return std::max(0.0, kl);
}

double percentile(const std::vector<float>& sorted, double p) {
    if (sorted.empty()) return 0.0;
    const double pos = std::clamp(p, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    const double f = pos - static_cast<double>(lo);
    return static_cast<double>(sorted[lo]) * (1.0 - f) + static_cast<double>(sorted[hi]) * f;
}

void KldAccumulator::add(double kld, double nll_base, double nll_q, bool same_top1) {
    kld_.add(kld);
    nll_base_.add(nll_base);
    nll_q_.add(nll_q);
    diff_.add(nll_q - nll_base);
    same_ += same_top1 ? 1 : 0;
    max_ = std::max(max_, kld);
    values_.push_back(static_cast<float>(kld));
}

void KldAccumulator::add_row(const float* base, const float* q, int64_t n_vocab, int32_t target) {
    add(kl_divergence(base, q, n_vocab), token_nll(base, n_vocab, target), token_nll(q, n_vocab, target),
        argmax(base, n_vocab) == argmax(q, n_vocab));
}

KldSummary KldAccumulator::summary() const {
    KldSummary s;
    s.n_tokens = kld_.n;
    if (s.n_tokens == 0) return s;
    s.kld_mean = kld_.mean();
    s.kld_mean_err = kld_.stderr_mean();
    std::vector<float> sorted = values_;
    std::sort(sorted.begin(), sorted.end());
    s.kld_median = percentile(sorted, 0.5);
    s.kld_p90 = percentile(sorted, 0.9);
    s.kld_p99 = percentile(sorted, 0.99);
    s.kld_max = max_;
    const double n = static_cast<double>(s.n_tokens);
    s.top1 = static_cast<double>(same_) / n;
    s.top1_err = s.n_tokens > 1 ? std::sqrt(s.top1 * (1.0 - s.top1) / (n - 1.0)) : 0.0;
    s.ppl_base = ppl_estimate(nll_base_);
    s.ppl_q = ppl_estimate(nll_q_);
    // The ratio's error comes from the paired per-token differences, which are far less noisy than
    // either perplexity on its own (the two models find the same tokens hard).
    s.ln_ratio = diff_.mean();
    s.ln_ratio_err = diff_.stderr_mean();
    s.ratio = std::exp(s.ln_ratio);
    s.ratio_err = s.ratio * s.ln_ratio_err;
    return s;
}

Status check_same_vocab(const Tokenizer& base, const Tokenizer& q, int base_vocab_size, int q_vocab_size) {
    if (base_vocab_size != q_vocab_size)
        return err("the models have different vocabulary sizes: base {} tokens, model {}", base_vocab_size, q_vocab_size);
    if (base.n_vocab() != q.n_vocab())
        return err("the tokenizers have different sizes: base {} tokens, model {}", base.n_vocab(), q.n_vocab());
    for (int32_t id = 0; id < base.n_vocab(); ++id)
        if (base.token_text(id) != q.token_text(id))
            return err("the vocabularies differ at token {}: base '{}', model '{}'", id, base.token_text(id), q.token_text(id));
    return Status::ok();
}

Result<KldSummary> kld(const Model& base, bool base_reference, const Model& q, bool q_reference, const Chunks& chunks,
                       const KldChunkFn& on_chunk) {
    const int vocab = base.config().vocab_size;
    if (q.config().vocab_size != vocab)
        return err("the models have different vocabulary sizes: base {} tokens, model {}", vocab, q.config().vocab_size);
    PL_ASSIGN_OR_RETURN(auto sb, Session::create(base, chunks.n_ctx, base_reference));
    PL_ASSIGN_OR_RETURN(auto sq, Session::create(q, chunks.n_ctx, q_reference));
    constexpr int kBatch = 32;  // rows of logits per model per step: (kBatch, vocab) floats each
    const size_t rows = static_cast<size_t>(kBatch) * static_cast<size_t>(vocab);
    std::vector<float> lb(rows), lq(rows);
    KldAccumulator acc;
    const auto t0 = std::chrono::steady_clock::now();
    const int last = chunks.n_ctx - 1;
    for (int ci = 0; ci < chunks.n_chunks(); ++ci) {
        const std::vector<int32_t>& tokens = chunks.data[static_cast<size_t>(ci)];
        const auto head = std::span(tokens).first(static_cast<size_t>(chunks.first));
        sb->reset();
        sq->reset();
        PL_TRY(sb->eval(head, nullptr));
        PL_TRY(sq->eval(head, nullptr));
        for (int pos = chunks.first; pos < last; pos += kBatch) {
            const int n = std::min(kBatch, last - pos);
            const auto part = std::span(tokens).subspan(static_cast<size_t>(pos), static_cast<size_t>(n));
            PL_TRY(sb->eval(part, lb.data(), /*all_logits=*/true));
            PL_TRY(sq->eval(part, lq.data(), /*all_logits=*/true));
            struct Row {
                double kld, nll_b, nll_q;
                bool same;
            };
            std::vector<Row> out(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
            for (int r = 0; r < n; ++r) {
                const size_t off = static_cast<size_t>(r) * static_cast<size_t>(vocab);
                const int32_t target = tokens[static_cast<size_t>(pos + r + 1)];
                out[static_cast<size_t>(r)] = {kl_divergence(lb.data() + off, lq.data() + off, vocab),
                                               token_nll(lb.data() + off, vocab, target),
                                               token_nll(lq.data() + off, vocab, target),
                                               argmax(lb.data() + off, vocab) == argmax(lq.data() + off, vocab)};
            }
            for (const Row& r : out) acc.add(r.kld, r.nll_b, r.nll_q, r.same);
        }
        if (on_chunk) {
            ChunkProgress p{ci + 1, chunks.n_chunks(),
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
            on_chunk(p, acc.summary());
        }
    }
    return acc.summary();
}

}  // namespace pl::eval
