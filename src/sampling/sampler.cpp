// SPDX-License-Identifier: MIT
// Sampler: see sampler.h for the exact semantics of each filter.
//
// Implementation note: top-k, top-p and min-p each keep a prefix of the candidates in descending
// logit order (min-p's threshold depends only on the maximum, which no earlier filter removes), so
// the final set is the shortest of the three prefixes. That lets min-p run first as an O(n)
// partition, and top-p only sorts what it walks (incremental nth_element + sort in growing
// chunks), instead of sorting the whole 128k vocabulary.
#include "sampling/sampler.h"

#include "core/check.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pl {
namespace {

using Cand = std::pair<float, int32_t>;

// Descending logit, then ascending id: a strict total order on distinct ids.
bool better(const Cand& a, const Cand& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Uniform double in [0, 1) from the top 53 bits: identical on every platform (unlike
// std::uniform_real_distribution, whose algorithm is implementation-defined).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Status SamplingParams::validate() const {
    if (!std::isfinite(temperature) || temperature < 0.0f)
        return err("sampling: temperature must be a finite value >= 0 (0 = greedy), got {}", temperature);
    if (!(top_p > 0.0f && top_p <= 1.0f))
        return err("sampling: top_p must be in (0, 1] (1 = off), got {}", top_p);
    if (!(min_p >= 0.0f && min_p <= 1.0f))
        return err("sampling: min_p must be in [0, 1] (0 = off), got {}", min_p);
    if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.0f)
        return err("sampling: repeat_penalty must be a finite value > 0 (1 = off), got {}", repeat_penalty);
    if (repeat_last_n < 0)
        return err("sampling: repeat_last_n must be >= 0 (0 = off), got {}", repeat_last_n);
    return Status::ok();
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : p_(params), n_vocab_(n_vocab), rng_(params.seed) {
    PL_CHECK(n_vocab > 0, "sampler: n_vocab must be > 0, got {}", n_vocab);
    const Status s = params.validate();
    PL_CHECK(s.is_ok(), "sampler: invalid params (call SamplingParams::validate() first): {}", s.message());
    cand_.resize(static_cast<size_t>(n_vocab));
    seen_.assign(static_cast<size_t>(n_vocab), 0);
}

void Sampler::accept(int32_t id) {
    if (p_.repeat_last_n <= 0) return;
    recent_.push_back(id);
    while (recent_.size() > static_cast<size_t>(p_.repeat_last_n)) recent_.pop_front();
}

void Sampler::reset() {
    recent_.clear();
    rng_.seed(p_.seed);
    n_last_ = 0;
}

void Sampler::apply_penalties(std::span<float> logits) {
    if (p_.repeat_penalty == 1.0f || recent_.empty()) return;
    for (const int32_t id : recent_) {
        if (id < 0 || id >= n_vocab_ || seen_[static_cast<size_t>(id)]) continue;
        seen_[static_cast<size_t>(id)] = 1;
        float& l = logits[static_cast<size_t>(id)];
        l = l > 0.0f ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
    for (const int32_t id : recent_)
        if (id >= 0 && id < n_vocab_) seen_[static_cast<size_t>(id)] = 0;
}

int32_t Sampler::sample(std::span<float> logits) {
    PL_CHECK(logits.size() == static_cast<size_t>(n_vocab_), "sampler: got {} logits, n_vocab is {}",
             logits.size(), n_vocab_);
    n_last_ = 0;
    apply_penalties(logits);
    if (p_.temperature <= 0.0f) return argmax(logits);

    const size_t n = logits.size();
    for (size_t i = 0; i < n; ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};
    const auto first = cand_.begin();

    // top-k: [0, m) becomes the k best (unordered).
    size_t m = n;
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
        m = static_cast<size_t>(p_.top_k);
        std::nth_element(first, first + static_cast<ptrdiff_t>(m), cand_.end(), better);
    }
    float lmax = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < m; ++i) lmax = std::max(lmax, cand_[i].first);
    if (!(lmax > -std::numeric_limits<float>::infinity()) || !std::isfinite(lmax)) return argmax(logits);

    // Softmax normaliser (temperature 1) over the top-k survivors, for top-p.
    double z = 0.0;
    if (p_.top_p < 1.0f)
        for (size_t i = 0; i < m; ++i) z += std::exp(static_cast<double>(cand_[i].first - lmax));

    // min-p: a prefix by logit, so an O(m) partition suffices. The maximum always survives.
    if (p_.min_p > 0.0f) {
        const double min_p = p_.min_p;
        const auto mid = std::partition(first, first + static_cast<ptrdiff_t>(m), [&](const Cand& c) {
            return std::exp(static_cast<double>(c.first - lmax)) >= min_p;
        });
        m = static_cast<size_t>(mid - first);
    }

    // top-p: walk in descending order, sorting lazily in doubling chunks.
    if (p_.top_p < 1.0f) {
        size_t sorted = 0, chunk = 64;
        double cum = 0.0;
        size_t keep = m;
        for (size_t i = 0; i < m; ++i) {
            if (i == sorted) {
                const size_t end = std::min(m, sorted + chunk);
                std::nth_element(first + static_cast<ptrdiff_t>(sorted), first + static_cast<ptrdiff_t>(end - 1),
                                 first + static_cast<ptrdiff_t>(m), better);
                std::sort(first + static_cast<ptrdiff_t>(sorted), first + static_cast<ptrdiff_t>(end), better);
                sorted = end;
                chunk *= 2;
            }
            cum += std::exp(static_cast<double>(cand_[i].first - lmax)) / z;
            if (cum >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
        m = keep;
    }
    n_last_ = m;

    // Temperature and draw.
    const double inv_t = 1.0 / static_cast<double>(p_.temperature);
    double total = 0.0;
    for (size_t i = 0; i < m; ++i) total += std::exp(static_cast<double>(cand_[i].first - lmax) * inv_t);
    const double u = uniform01(rng_) * total;
    double acc = 0.0;
    for (size_t i = 0; i < m; ++i) {
        acc += std::exp(static_cast<double>(cand_[i].first - lmax) * inv_t);
        if (u < acc) return cand_[i].second;
    }
    // Rounding left u at the very top: the last candidate with non-zero weight.
    for (size_t i = m; i-- > 0;)
        if (std::exp(static_cast<double>(cand_[i].first - lmax) * inv_t) > 0.0) return cand_[i].second;
    return cand_[0].second;
}

int32_t argmax(std::span<const float> logits) {
    if (logits.empty()) return -1;
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best] || (std::isnan(logits[best]) && !std::isnan(logits[i]))) best = i;
    return static_cast<int32_t>(best);
}

}  // namespace pl
