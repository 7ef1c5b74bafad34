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
#include "dist/topology.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::gguf {
class File;
}

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

// A model the suite runs: a GGUF file, or a synthetic shape made (once) in the cache.
struct ModelTarget {
    std::string path;
    std::string label;     // "llama-7b q4_0 (synth)" or the file name
    std::string shape;     // synth shape name, "" for a file
    int full_layers = 0;   // layers of the whole model (0: the file's)
};
// The targets of `o` (-m or --shape), synthesizing missing shapes into the cache.
Result<std::vector<ModelTarget>> model_targets(const ModelOptions& o, const MachineInfo& m, const LogFn& log);

// What one model row reports (model_row makes the JSON of docs/bench-schema.json).
struct ModelRowFacts {
    std::string test;  // pp | tg
    int tokens = 0, batch = 1, threads = 1;
    int roofline_threads = 0;  // threads whose probe bandwidth is the roofline (0: threads)
    std::string label, path, type;
    std::string id_suffix;     // appended to the id ("/tp2" for a distributed layout)
    int full_layers = 0, measured_layers = 0;
    double scale = 1;          // time factor from measured_layers to full_layers
    double full_wbytes = 0;    // weight bytes streamed per token by the whole model
    double full_macs = 0;      // multiply-adds of the weight products per token, whole model (0: not reported)
    bool int8 = true;          // the products run on int8 kernels (else the float path)
    std::string weights;       // "huge-pages" (copied, --mmap off) | "mmap" | "" (not recorded)
    std::string kv_type;       // the KV cache's element type ("f16" | "f32"; "" not recorded)
};
nlohmann::json model_row(const ModelRowFacts& f, const Stats& st, const MachineInfo& m);

// Weight bytes a token streams: `fixed` (output head, one embedding row) + n layers x `layer`;
// and the multiply-adds of its weight products, `fixed_macs` (output head) + n x `layer_macs`.
struct WeightBytes {
    double fixed = 0, layer = 0;
    double fixed_macs = 0, layer_macs = 0;
    int measured_layers = 0;
    double total(int layers) const { return fixed + layer * layers; }
    double macs(int layers) const { return fixed_macs + layer_macs * layers; }
};
WeightBytes weight_bytes_of(const gguf::File& f, int n_layers);

// The suite under mpirun (collective over the world; src/bench/model_suite_dist.cpp): every
// rank loads its shard of `layout`, pp and tg run through dist::generate, world rank 0 times
// them and returns the rows (other ranks: none), each with "layout" and per-rank "ranks"
// (compute and communication seconds and bytes per step). `m` is world rank 0's probe. A failure
// on another rank comes back as an error with an empty message.
Result<std::vector<nlohmann::json>> run_model_suite_dist(const ModelOptions& o, const dist::Layout& layout, const MachineInfo& m,
                                                         const LogFn& log);

// $PARALLAMA_BENCH_CACHE, else <directory of the executable>/../bench-models.
std::string default_cache_dir();

// Rows of pp and tg per model and thread count; see docs/bench-schema.json ("model row").
Result<std::vector<nlohmann::json>> run_model_suite(const ModelOptions& o, const MachineInfo& m, const LogFn& log);

}  // namespace pl::bench
