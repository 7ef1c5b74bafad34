// SPDX-License-Identifier: MIT
// parallama synth: a GGUF with real LLaMA shapes and seeded random weights (benchmark models).
#include "command.h"
#include "common.h"
#include "progress.h"

#include "model/synth.h"

namespace pl::cli {
namespace {

const CommandRegistrar kSynth({"synth", "Write a model with real LLaMA shapes and random weights", 70, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<SynthOptions>();
    std::string names;
    for (const auto& s : model_shapes()) names += (names.empty() ? "" : ", ") + std::string(s.name);
    app.add_option("--shape", o->shape, "Model shape: " + names)->required();
    app.add_option("-o,--output", o->out_path, "Output GGUF file")->required();
    app.add_option("--type", o->type, "Weight type of the matrices (f32, f16, bf16, q8_0, q4_0, q4_1, q3.5, ...)")->capture_default_str();
    app.add_option("--layers", o->n_layers, "Keep only this many layers (0 = all)")->check(CLI::Range(0, 1000));
    app.add_option("--vocab", o->vocab_path, "GGUF to copy the tokenizer from (default: a built-in byte vocabulary)")
        ->check(CLI::ExistingFile);
    app.add_option("--seed", o->seed, "Random seed")->capture_default_str();
    app.add_option("--std", o->std, "Weight standard deviation")->capture_default_str();
    return [o] {
        ProgressBar bar("synth");
        Status s = synth_model(*o, [&](uint64_t done, uint64_t total) { bar.update(done, total); });
        bar.finish();
        if (!s) return fail("synth", s);
        std::fprintf(stderr, "synth: wrote %s\n", o->out_path.c_str());
        return 0;
    };
}});

}  // namespace
}  // namespace pl::cli
