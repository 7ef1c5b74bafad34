// SPDX-License-Identifier: MIT
// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty.
// Seeded and reproducible: the same seed, params and logits always give the same tokens.
// Order (as llama.cpp's default chain): repetition penalty -> top-k -> top-p -> min-p ->
// temperature -> draw. temperature <= 0 means greedy (argmax, lowest id on ties).
#pragma once

#include "core/status.h"

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace pl {

struct SamplingParams {
    float temperature = 0.8f;
    int32_t top_k = 40;          // <= 0: off
    float top_p = 0.95f;         // >= 1: off
    float min_p = 0.05f;         // <= 0: off
    float repeat_penalty = 1.0f; // 1: off
    int32_t repeat_last_n = 64;  // how many recent tokens the penalty looks at
    uint64_t seed = 0xC0FFEE;

    // Error naming the bad field (negative temperature, top_p outside (0,1], ...).
    Status validate() const;
};

class Sampler {
public:
    Sampler(const SamplingParams& params, int32_t n_vocab);
    // Picks the next token from `logits` (n_vocab floats; modified in place for penalties).
    int32_t sample(std::span<float> logits);
    // Records a token (prompt or generated) for the repetition penalty.
    void accept(int32_t id);
    void reset();

private:
    SamplingParams p_;
    int32_t n_vocab_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;  // scratch (n_vocab)
};

int32_t argmax(std::span<const float> logits);

}  // namespace pl
