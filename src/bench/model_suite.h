// SPDX-License-Identifier: MIT
// Model suite of `parallama bench`: prompt processing (pp: Session::eval of P tokens at once,
// tokens/s) and generation (tg: G tokens one at a time, tokens/s), each from an empty context, on
// a GGUF file or on synthetic models made by shape name and cached.
//
// Synthetic models are written once to the cache directory as <shape>-<type>-L<layers>.gguf.
// A shape too large for this machine (weights over half of physical memory, e.g. llama-70b) runs
// with `layers_big` layers and the whole-model figure is extrapolated from weight bytes: the time
// per token is split into a fixed part (embedding row, output head) and a per-layer part in
// proportion to the bytes each streams, then the layer part is scaled to the full layer count.
// Such rows carry "extrapolated": true.
//
// Batches: batch 1 runs one sequence through Session::eval; batch B > 1 runs B sequences
// together through Session::decode (pp: the B prompts in one call; tg: one step of B tokens per
// position), and reports aggregate tokens/s (time per step / B).
#pragma once

#include "bench/kernel_suite.h"
#include "bench/probe.h"
#include "bench/stats.h"
#include "core/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

struct ModelOptions {
    std::string model_path;                                // a GGUF; empty = synthetic shapes
    std::vector<std::string> shapes = {"llama-7b", "llama-70b"};
    std::string type = "q3.5";                             // weight type of synthetic models
    int layers = 0;                                        // 0 = full, or layers_big when too large
    int layers_big = 2;
    std::string cache_dir;                                 // empty = default_cache_dir()
    int n_prompt = 16;                                     // P of pp
    int n_gen = 16;                                        // G of tg
    std::vector<int> threads = {1};
    std::vector<int> batches = {1};
    int repeat = 3;
    int warmup = 1;
    uint64_t seed = 42;
};

// $PARALLAMA_BENCH_CACHE, else <directory of the executable>/../bench-models.
std::string default_cache_dir();

// Rows of pp and tg per model and thread count; see docs/bench-schema.json ("model row").
Result<std::vector<nlohmann::json>> run_model_suite(const ModelOptions& o, const MachineInfo& m, const LogFn& log);

}  // namespace pl::bench
