// SPDX-License-Identifier: MIT
// parallama generate: text (or token ids) in, sampled continuation out, speed at the end.
#include "command.h"
#include "common.h"

#include "model/llama.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <chrono>
#include <cstdio>

namespace pl::cli {
namespace {

struct GenerateOptions {
    std::string model;
    std::string prompt;
    std::string prompt_ids;
    int n_predict = 128;
    int n_ctx = 0;
    int threads = 0;
    bool print_ids = false;
    bool no_bos = false;
    bool ignore_eos = false;
    SamplingParams sampling;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_generate(const GenerateOptions& o) {
    if (Status s = o.sampling.validate(); !s) return fail("generate", s);
    if (!o.prompt.empty() && !o.prompt_ids.empty()) return fail("generate", err("give either -p or --prompt-ids, not both"));
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("generate", model.status());
    const ModelConfig& cfg = (*model)->config();
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("generate", tok.status().with_context("tokenizer"));

    std::vector<int32_t> prompt;
    if (!o.prompt_ids.empty()) {
        auto ids = parse_ids(o.prompt_ids);
        if (!ids) return fail("generate", ids.status().with_context("--prompt-ids"));
        prompt = *ids;
    } else {
        prompt = (*tok)->encode(o.prompt, (*tok)->add_bos_default() && !o.no_bos);
    }
    if (prompt.empty()) {
        if ((*tok)->bos_id() < 0) return fail("generate", err("empty prompt and the vocabulary has no BOS token to start from"));
        prompt.push_back((*tok)->bos_id());
    }
    for (size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] < 0 || prompt[i] >= cfg.vocab_size)
            return fail("generate", err("prompt token id {} at index {} is out of range [0, {})", prompt[i], i, cfg.vocab_size));

    const int n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min(cfg.context_length, std::max(4096, static_cast<int>(prompt.size()) + o.n_predict));
    if (static_cast<int64_t>(prompt.size()) + o.n_predict > n_ctx)
        return fail("generate", err("prompt ({} tokens) + -n {} exceeds the context size {}", prompt.size(), o.n_predict, n_ctx));
    auto session = Session::create(**model, n_ctx);
    if (!session) return fail("generate", session.status());

    Sampler sampler(o.sampling, cfg.vocab_size);
    for (int32_t id : prompt) sampler.accept(id);
    std::vector<float> logits(static_cast<size_t>(cfg.vocab_size));
    StreamDecoder decoder(**tok);

    if (!o.print_ids && o.prompt_ids.empty()) {
        // Echo the prompt text as llama.cpp does.
        std::string echo = (*tok)->decode(prompt);
        std::fwrite(echo.data(), 1, echo.size(), stdout);
        std::fflush(stdout);
    }

    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = (*session)->eval(prompt, logits.data()); !s) return fail("generate", s);
    const double t_prompt = seconds_since(t0);

    const auto t1 = std::chrono::steady_clock::now();
    int n_gen = 0;
    std::vector<int32_t> generated;
    for (; n_gen < o.n_predict; ++n_gen) {
        const int32_t next = sampler.sample(logits);
        sampler.accept(next);
        generated.push_back(next);
        if (o.print_ids) {
            std::printf(n_gen ? " %d" : "%d", next);
        } else {
            std::string piece = decoder.push(next);
            std::fwrite(piece.data(), 1, piece.size(), stdout);
        }
        std::fflush(stdout);
        if (!o.ignore_eos && (*tok)->is_eog(next)) {
            ++n_gen;
            break;
        }
        if (n_gen + 1 < o.n_predict) {
            const int32_t one[1] = {next};
            if (Status s = (*session)->eval(one, logits.data()); !s) return fail("generate", s);
        }
    }
    const double t_gen = seconds_since(t1);
    if (!o.print_ids) {
        std::string rest = decoder.flush();
        std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.2f tokens/s)\n", prompt.size(), t_prompt,
                 t_prompt > 0 ? static_cast<double>(prompt.size()) / t_prompt : 0.0);
    std::fprintf(stderr, "generation: %d tokens in %.3f s (%.2f tokens/s)\n", n_gen, t_gen,
                 t_gen > 0 ? n_gen / t_gen : 0.0);
    return 0;
}

const CommandRegistrar kGenerate({"generate", "Generate text from a prompt", 20, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<GenerateOptions>();
    o->sampling.temperature = 0.8f;
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("-p,--prompt", o->prompt, "Prompt text");
    app.add_option("--prompt-ids", o->prompt_ids, "Prompt as token ids (\"1 2 3\"), instead of -p");
    app.add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->check(CLI::Range(1, 1 << 20))->capture_default_str();
    app.add_option("-c,--ctx-size", o->n_ctx, "Context size (0 = enough for prompt + -n, at most the model's)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_flag("--ids", o->print_ids, "Print generated token ids instead of text");
    app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token to a text prompt");
    app.add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-generation tokens");
    add_sampling_options(app, o->sampling);
    add_threads_option(app, o->threads);
    return [o] { return run_generate(*o); };
}});

}  // namespace
}  // namespace pl::cli
