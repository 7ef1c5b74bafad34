// SPDX-License-Identifier: MIT
// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty.
// Seeded and reproducible: the same seed, params and logits always give the same tokens.
// Order (as llama.cpp's default chain): repetition penalty -> top-k -> top-p -> min-p ->
// temperature -> draw. temperature <= 0 means greedy (argmax, lowest id on ties).
//
// Semantics (llama.cpp-compatible):
//   - repetition penalty: every distinct id among the last repeat_last_n accepted tokens gets
//     logit /= penalty when logit > 0, logit *= penalty otherwise (once per id, not per occurrence).
//   - top-k keeps the k largest logits (ties broken towards the lower id).
//   - top-p keeps the shortest prefix (by descending probability) whose softmax mass, computed at
//     temperature 1 over the top-k survivors, reaches top_p; always at least one token.
//   - min-p keeps tokens with p >= min_p * p_max, i.e. exp(logit - max_logit) >= min_p.
//   - temperature divides the surviving logits, then one token is drawn from their softmax.
// Cost: O(n_vocab) per call plus a partial sort of the candidates that top-p has to walk;
// all scratch is allocated in the constructor, sample() never allocates.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace pl {

struct SamplingParams {
    float temperature = 0.8f;
    int32_t top_k = 40;          // <= 0: off
    float top_p = 0.95f;         // 1: off; must be in (0, 1]
    float min_p = 0.05f;         // 0: off; must be in [0, 1]
    float repeat_penalty = 1.0f; // 1: off; must be > 0
    int32_t repeat_last_n = 64;  // how many recent tokens the penalty looks at (0: off, >= 0)
    uint64_t seed = 0xC0FFEE;

    // Error naming the bad field (negative temperature, top_p outside (0,1], ...).
    Status validate() const;
};

class Sampler {
public:
    // params must have passed validate(); n_vocab > 0.
    Sampler(const SamplingParams& params, int32_t n_vocab);
    // Picks the next token from `logits` (n_vocab floats; modified in place for penalties).
    int32_t sample(std::span<float> logits);
    // Records a token (prompt or generated) for the repetition penalty.
    void accept(int32_t id);
    // Forgets accepted tokens and restarts the random stream from params.seed.
    void reset();

    // The (logit, id) candidates the last non-greedy sample() drew from, after all filters and
    // before temperature (penalised logits). Valid until the next sample(); empty after a greedy
    // pick. Sorted by descending logit only when top-p was active.
    std::span<const std::pair<float, int32_t>> last_candidates() const { return {cand_.data(), n_last_}; }
    const SamplingParams& params() const { return p_; }

private:
    void apply_penalties(std::span<float> logits);

    SamplingParams p_;
    int32_t n_vocab_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;  // scratch (n_vocab)
    std::vector<uint8_t> seen_;                     // scratch (n_vocab): penalty dedup marks
    size_t n_last_ = 0;
};

int32_t argmax(std::span<const float> logits);

}  // namespace pl
