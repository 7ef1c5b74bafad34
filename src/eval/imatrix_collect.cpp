// SPDX-License-Identifier: MIT
#include "eval/imatrix_collect.h"

#include "model/llama.h"

#include <algorithm>
#include <chrono>

namespace pl::eval {

void ImatrixCollector::observe(const WeightView& W, const float* x) {
    auto it = index_.find(W.name);
    if (it == index_.end()) {
        it = index_.emplace(W.name, entries_.size()).first;
        entries_.push_back(Entry{W.name, std::vector<double>(static_cast<size_t>(W.cols), 0.0), 0, {}, {}, 0});
    }
    Entry& e = entries_[it->second];
    // A name seen with another row length would be a model bug; PL_CHECK-free: keep the first shape.
    const size_t n = std::min(e.sum2.size(), static_cast<size_t>(W.cols));
    for (size_t j = 0; j < n; ++j) e.sum2[j] += static_cast<double>(x[j]) * static_cast<double>(x[j]);
    ++e.count;
    const size_t groups = n / kImatrixCovGroup;
    if (covariance_ && groups > 0) {
        if (e.cov.empty()) {
            e.cov.assign(groups * kImatrixCovGroup * kImatrixCovGroup, 0.0);
            e.pending.assign(static_cast<size_t>(kCovBatch) * groups * kImatrixCovGroup, 0.0f);
        }
        std::copy(x, x + groups * kImatrixCovGroup, e.pending.begin() + static_cast<ptrdiff_t>(e.n_pending * groups * kImatrixCovGroup));
        if (++e.n_pending == kCovBatch) flush(e);
    }
}

// cov_g += sum over the pending rows of x_g x_g^T: rows of the accumulator stay in L1 while the
// batch streams past, so the 512 KiB accumulator of a group is touched once per kCovBatch inputs.
// Cloned for AVX-512 and AVX2 (the rest of this file is built for baseline x86-64): 8 or 4 double
// FMAs per instruction instead of SSE2's 2 made collecting SmolLM2's covariances 4x cheaper.
namespace {
[[gnu::target_clones("avx512f", "avx2,fma", "default")]] void add_outer_products(double* cov, const float* x, int rows,
                                                                                  size_t stride, size_t G) {
    for (size_t i = 0; i < G; ++i) {
        double* acc = cov + i * G;
        for (int t = 0; t < rows; ++t) {
            const float* xg = x + static_cast<size_t>(t) * stride;
            const double xi = xg[i];
            for (size_t j = 0; j < G; ++j) acc[j] += xi * static_cast<double>(xg[j]);
        }
    }
}
}  // namespace

void ImatrixCollector::flush(Entry& e) {
    constexpr size_t G = kImatrixCovGroup;
    const int64_t groups = static_cast<int64_t>(e.cov.size() / (G * G));
    const size_t stride = static_cast<size_t>(groups) * G;
#pragma omp parallel for schedule(static) if (groups > 1)
    for (int64_t g = 0; g < groups; ++g)
        add_outer_products(e.cov.data() + static_cast<size_t>(g) * G * G, e.pending.data() + static_cast<size_t>(g) * G, e.n_pending,
                           stride, G);
    e.n_pending = 0;
}

uint64_t ImatrixCollector::count(const std::string& weight_name) const {
    auto it = index_.find(weight_name);
    return it == index_.end() ? 0 : entries_[it->second].count;
}

Imatrix ImatrixCollector::result(std::string dataset, uint32_t chunk_count, uint32_t chunk_size, uint64_t token_count) {
    Imatrix m;
    m.dataset = std::move(dataset);
    m.chunk_count = chunk_count;
    m.chunk_size = chunk_size;
    m.token_count = token_count;
    for (Entry& e : entries_) {
        if (e.count == 0) continue;
        std::vector<float> mean(e.sum2.size());
        for (size_t j = 0; j < mean.size(); ++j) mean[j] = static_cast<float>(e.sum2[j] / static_cast<double>(e.count));
        m.data.emplace(e.name, std::move(mean));
        if (!e.cov.empty()) {
            flush(e);
            std::vector<float> c(e.cov.size());
            for (size_t j = 0; j < c.size(); ++j) c[j] = static_cast<float>(e.cov[j] / static_cast<double>(e.count));
            m.cov.emplace(e.name, std::move(c));
        }
    }
    return m;
}

Result<Imatrix> collect_imatrix(const Model& model, const Chunks& chunks, bool reference, const std::string& dataset,
                                const PplChunkFn& on_chunk, bool covariance) {
    const int vocab = model.config().vocab_size;
    PL_ASSIGN_OR_RETURN(auto session, Session::create(model, chunks.n_ctx, reference));
    ImatrixCollector collector(covariance);
    session->set_activation_observer([&collector](const WeightView& W, const float* x) { collector.observe(W, x); });
    constexpr int kBatch = 32;
    std::vector<float> logits(static_cast<size_t>(kBatch) * static_cast<size_t>(vocab));
    MeanStat nll;
    uint64_t tokens_seen = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int ci = 0; ci < chunks.n_chunks(); ++ci) {
        const std::vector<int32_t>& tokens = chunks.data[static_cast<size_t>(ci)];
        session->reset();
        for (int pos = 0; pos < chunks.n_ctx; pos += kBatch) {
            const int n = std::min(kBatch, chunks.n_ctx - pos);
            PL_TRY(session->eval(std::span(tokens).subspan(static_cast<size_t>(pos), static_cast<size_t>(n)), logits.data(),
                                 /*all_logits=*/true));
            for (int r = 0; r < n; ++r) {
                const int p = pos + r;
                if (p >= chunks.first && p + 1 < chunks.n_ctx)
                    nll.add(token_nll(logits.data() + static_cast<size_t>(r) * static_cast<size_t>(vocab), vocab,
                                      tokens[static_cast<size_t>(p + 1)]));
            }
        }
        tokens_seen += static_cast<uint64_t>(chunks.n_ctx);
        if (on_chunk) {
            ChunkProgress p{ci + 1, chunks.n_chunks(),
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
            on_chunk(p, ppl_estimate(nll));
        }
    }
    return collector.result(dataset, static_cast<uint32_t>(chunks.n_chunks()), static_cast<uint32_t>(chunks.n_ctx), tokens_seen);
}

}  // namespace pl::eval
