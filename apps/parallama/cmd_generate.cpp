// SPDX-License-Identifier: MIT
// parallama generate: text (or token ids) in, sampled continuation out, speed at the end.
#include "command.h"
#include "common.h"
#include "generate.h"

#include "model/llama.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cstdio>

namespace pl::cli {

Result<std::vector<std::string>> read_prompts_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) return err("cannot open --prompts-file {}", path);
    std::vector<std::string> texts;
    for (std::string line; std::getline(f, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) texts.push_back(line);
    }
    if (texts.empty()) return err("--prompts-file {} has no prompts (one per line)", path);
    return texts;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The generation speed line. The first token of each sequence is sampled from the prompt pass's
// logits and the last one is never fed back, so of the `tokens` sampled only `decoded` went
// through a decode step (one fewer per sequence); the rate counts those, as llama.cpp's eval
// timing counts runs.
void print_generation_speed(int tokens, int decoded, double t_gen, const char* aggregate) {
    if (decoded == 0) {
        std::fprintf(stderr, "generation: %d tokens in %.3f s (no decode step: sampled from the prompt pass)\n", tokens, t_gen);
        return;
    }
    std::fprintf(stderr, "generation: %d tokens in %.3f s (%.2f tokens/s%s over the %d decoded)\n", tokens, t_gen,
                 t_gen > 0 ? decoded / t_gen : 0.0, aggregate, decoded);
}

// --prompts-file: every prompt is its own sequence, all decoded together (Session::decode), one
// step per generated token; each sequence samples with its own sampler seeded like a lone run,
// so every output equals what `generate -p` gives for that prompt alone.
int run_generate_batch(const GenerateOptions& o, const Model& model, const Tokenizer& tok) {
    const ModelConfig& cfg = model.config();
    auto read = read_prompts_file(o.prompts_file);
    if (!read) return fail("generate", read.status());
    const std::vector<std::string>& texts = *read;
    const int n = static_cast<int>(texts.size());
    std::vector<std::vector<int32_t>> prompts;
    size_t longest = 0, prompt_tokens = 0;
    for (const auto& t : texts) {
        auto ids = tok.encode(t, tok.add_bos_default() && !o.no_bos);
        if (ids.empty()) ids.push_back(tok.bos_id() >= 0 ? tok.bos_id() : 0);
        longest = std::max(longest, ids.size());
        prompt_tokens += ids.size();
        prompts.push_back(std::move(ids));
    }
    const int n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int>(longest) + o.n_predict;
    if (static_cast<int64_t>(longest) + o.n_predict > n_ctx)
        return fail("generate", err("the longest prompt ({} tokens) + -n {} exceeds the context size {}", longest, o.n_predict, n_ctx));
    auto session = Session::create(model, n_ctx, false, 0, n);
    if (!session) return fail("generate", session.status());
    const size_t vocab = static_cast<size_t>(cfg.vocab_size);
    std::vector<Sampler> samplers;
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
    std::vector<int> len(static_cast<size_t>(n));
    std::vector<bool> done(static_cast<size_t>(n), false);
    std::vector<pl::BatchEntry> entries;
    for (int i = 0; i < n; ++i) {
        samplers.emplace_back(o.sampling, cfg.vocab_size);
        for (int32_t id : prompts[static_cast<size_t>(i)]) samplers.back().accept(id);
        const auto& p = prompts[static_cast<size_t>(i)];
        for (size_t j = 0; j < p.size(); ++j) entries.push_back({i, static_cast<int>(j), p[j], j + 1 == p.size()});
        len[static_cast<size_t>(i)] = static_cast<int>(p.size());
    }
    std::vector<float> logits(static_cast<size_t>(n) * vocab);
    std::vector<int> rows(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = (*session)->decode(entries, logits.data()); !s) return fail("generate", s);
    const double t_prompt = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    int total = 0, decoded = 0;  // tokens sampled; tokens that went through a decode step
    for (int step = 0; step < o.n_predict; ++step) {
        entries.clear();
        std::vector<int> next_rows;
        for (size_t j = 0; j < rows.size(); ++j) {
            const int i = rows[j];
            std::span<float> row(logits.data() + j * vocab, vocab);
            const int32_t next = samplers[static_cast<size_t>(i)].sample(row);
            samplers[static_cast<size_t>(i)].accept(next);
            out[static_cast<size_t>(i)].push_back(next);
            ++total;
            if ((!o.ignore_eos && tok.is_eog(next)) || step + 1 == o.n_predict) continue;
            entries.push_back({i, len[static_cast<size_t>(i)]++, next, true});
            next_rows.push_back(i);
        }
        rows = next_rows;
        if (entries.empty()) break;
        if (Status s = (*session)->decode(entries, logits.data()); !s) return fail("generate", s);
        decoded += static_cast<int>(entries.size());
    }
    const double t_gen = seconds_since(t1);
    for (int i = 0; i < n; ++i) {
        const auto& ids = out[static_cast<size_t>(i)];
        if (o.print_ids) {
            std::string line;
            for (size_t j = 0; j < ids.size(); ++j) line += (j ? " " : "") + std::to_string(ids[j]);
            std::printf("[%d] %s\n", i, line.c_str());
        } else {
            std::printf("[%d] %s%s\n", i, texts[static_cast<size_t>(i)].c_str(), tok.decode(ids).c_str());
        }
    }
    std::fflush(stdout);
    std::fprintf(stderr, "batch: %d sequences\n", n);
    std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.2f tokens/s)\n", prompt_tokens, t_prompt,
                 t_prompt > 0 ? static_cast<double>(prompt_tokens) / t_prompt : 0.0);
    print_generation_speed(total, decoded, t_gen, " aggregate");
    return 0;
}

int run_generate(const GenerateOptions& o) {
    if (Status s = o.sampling.validate(); !s) return fail("generate", s);
    if (!o.prompts_file.empty() && (!o.prompt.empty() || !o.prompt_ids.empty()))
        return fail("generate", err("give either --prompts-file or -p/--prompt-ids, not both"));
    if (!o.prompt.empty() && !o.prompt_ids.empty()) return fail("generate", err("give either -p or --prompt-ids, not both"));
    if (wants_distributed(o.parallel)) return run_generate_dist(o);
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("generate", model.status());
    const ModelConfig& cfg = (*model)->config();
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("generate", tok.status().with_context("tokenizer"));
    if (!o.prompts_file.empty()) return run_generate_batch(o, **model, **tok);

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
    int n_gen = 0, n_steps = 0;
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
            ++n_steps;
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
    print_generation_speed(n_gen, n_steps, t_gen, "");
    return 0;
}

const CommandRegistrar kGenerate({"generate", "Generate text from a prompt", 20, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<GenerateOptions>();
    o->sampling.temperature = 0.8f;
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("-p,--prompt", o->prompt, "Prompt text");
    app.add_option("--prompt-ids", o->prompt_ids, "Prompt as token ids (\"1 2 3\"), instead of -p");
    app.add_option("--prompts-file", o->prompts_file,
                   "A file of prompts, one per line, generated together as one batch (per-sequence output, aggregate tokens/s)")
        ->check(CLI::ExistingFile);
    app.add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->check(CLI::Range(1, 1 << 20))->capture_default_str();
    app.add_option("-c,--ctx-size", o->n_ctx, "Context size (0 = enough for prompt + -n, at most the model's)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_flag("--ids", o->print_ids, "Print generated token ids instead of text");
    app.add_flag("--no-bos", o->no_bos, "Do not add the BOS token to a text prompt");
    app.add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-generation tokens");
    add_sampling_options(app, o->sampling);
    add_threads_option(app, o->threads);
    add_parallel_options(app, o->parallel);
    return [o] { return run_generate(*o); };
}});

}  // namespace
}  // namespace pl::cli
