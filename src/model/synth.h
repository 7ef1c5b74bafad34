// SPDX-License-Identifier: MIT
// Synthetic models: GGUF files with real LLaMA shapes and seeded random weights (uniform, small
// std so activations stay finite), for benchmarks and tests. `n_layers` can be cut so that a
// 70B-shaped model fits a small machine.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pl {

struct ModelShape {
    const char* name;
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, context_length;
    float rope_theta;
    bool tied_embeddings;
};

// llama-7b, llama-13b, llama-70b (LLaMA-2 shapes), tinyllama-1.1b, smollm2-135m, and the test
// sizes tiny-gqa, tiny-uneven, tiny-gqa-8x2 and tiny-gqa-9x3.
const std::vector<ModelShape>& model_shapes();
const ModelShape* find_shape(std::string_view name);

struct SynthOptions {
    std::string shape;        // a name from model_shapes()
    std::string out_path;
    std::string type = "f16"; // weight type of the matrices (norms stay f32)
    int n_layers = 0;         // 0 = the shape's own
    std::string vocab_path;   // GGUF whose tokenizer.* metadata is copied; empty = built-in byte vocab
    uint64_t seed = 1234;
    float std = 0.02f;        // weight standard deviation
};

// Writes the model; progress(done_bytes, total_bytes) after each tensor.
Status synth_model(const SynthOptions& o, const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace pl
