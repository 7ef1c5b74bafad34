// SPDX-License-Identifier: MIT
#include "eval/perplexity.h"

#include "model/llama.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

namespace pl::eval {

double MeanStat::stderr_mean() const {
    if (n < 2) return 0.0;
    const double m = mean();
    const double var = std::max(0.0, sum2 / static_cast<double>(n) - m * m);
    return std::sqrt(var / static_cast<double>(n - 1));
}

PplEstimate ppl_estimate(const MeanStat& nll) {
    PplEstimate e;
    e.n_tokens = nll.n;
    e.mean_nll = nll.mean();
    e.nll_err = nll.stderr_mean();
    e.ppl = std::exp(e.mean_nll);
    e.ppl_err = e.ppl * e.nll_err;
    return e;
}

double log_sum_exp(const float* logits, int64_t n) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
    return static_cast<double>(mx) + std::log(s);
}

double token_nll(const float* logits, int64_t n, int32_t target) {
    return log_sum_exp(logits, n) - static_cast<double>(logits[target]);
}

int32_t argmax(const float* logits, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
}

Result<Chunks> make_chunks(std::span<const int32_t> tokens, int n_ctx, int max_chunks, int32_t bos) {
    if (n_ctx < 8) return err("context size {} is too small (at least 8 tokens)", n_ctx);
    const int64_t available = static_cast<int64_t>(tokens.size()) / n_ctx;
    if (available < 1)
        return err("the text has {} tokens, fewer than one chunk of {} (use a longer text or a smaller --ctx)",
                   tokens.size(), n_ctx);
    const int64_t n = max_chunks > 0 ? std::min<int64_t>(available, max_chunks) : available;
    Chunks c;
    c.n_ctx = n_ctx;
    c.first = n_ctx / 2;
    c.text_tokens = static_cast<int64_t>(tokens.size());
    c.data.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        auto begin = tokens.begin() + static_cast<std::ptrdiff_t>(i * n_ctx);
        std::vector<int32_t> chunk(begin, begin + n_ctx);
        if (bos >= 0) chunk[0] = bos;
        c.data.push_back(std::move(chunk));
    }
    return c;
}

Result<std::string> read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return err("cannot open text file '{}'", path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return err("error reading text file '{}'", path);
    if (text.empty()) return err("text file '{}' is empty", path);
    return text;
}

Result<Chunks> chunk_text_file(const Tokenizer& tok, const std::string& path, int n_ctx, int max_chunks) {
    PL_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
    const bool add_bos = tok.add_bos_default() && tok.bos_id() >= 0;
    const std::vector<int32_t> ids = tok.encode(text, add_bos);
    auto chunks = make_chunks(ids, n_ctx, max_chunks, add_bos ? tok.bos_id() : -1);
    if (!chunks) return chunks.status().with_context(path);
    return chunks;
}

Result<PplEstimate> perplexity(const Model& model, const Chunks& chunks, bool reference, const PplChunkFn& on_chunk) {
    const int vocab = model.config().vocab_size;
    PL_ASSIGN_OR_RETURN(auto session, Session::create(model, chunks.n_ctx, reference));
    constexpr int kBatch = 32;  // logits rows per eval call: (kBatch, vocab) floats
    std::vector<float> logits(static_cast<size_t>(kBatch) * static_cast<size_t>(vocab));
    MeanStat nll;
    const auto t0 = std::chrono::steady_clock::now();
    const int last = chunks.n_ctx - 1;  // the last position predicts nothing inside the chunk
    for (int ci = 0; ci < chunks.n_chunks(); ++ci) {
        const std::vector<int32_t>& tokens = chunks.data[static_cast<size_t>(ci)];
        session->reset();
        PL_TRY(session->eval(std::span(tokens).first(static_cast<size_t>(chunks.first)), nullptr));
        for (int pos = chunks.first; pos < last; pos += kBatch) {
            const int n = std::min(kBatch, last - pos);
            PL_TRY(session->eval(std::span(tokens).subspan(static_cast<size_t>(pos), static_cast<size_t>(n)), logits.data(),
                                 /*all_logits=*/true));
            std::vector<double> row_nll(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
            for (int r = 0; r < n; ++r)
                row_nll[static_cast<size_t>(r)] = token_nll(logits.data() + static_cast<size_t>(r) * static_cast<size_t>(vocab),
                                                            vocab, tokens[static_cast<size_t>(pos + r + 1)]);
            for (double v : row_nll) nll.add(v);
        }
        if (on_chunk) {
            ChunkProgress p{ci + 1, chunks.n_chunks(),
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
            on_chunk(p, ppl_estimate(nll));
        }
    }
    return ppl_estimate(nll);
}

}  // namespace pl::eval
