// SPDX-License-Identifier: MIT
// parallama chat: interactive chat using the model's chat template. Reads one user message per
// line from stdin (works with pipes too); /reset clears the history, /exit or EOF quits.
// The KV cache keeps the longest common token prefix between turns, so only new text is evaluated.
#include "command.h"
#include "common.h"

#include "core/log.h"

#include "model/llama.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace pl::cli {
namespace {

struct ChatOptions {
    std::string model;
    std::string system;
    std::string template_name;
    int n_predict = 512;
    int n_ctx = 0;
    int threads = 0;
    SamplingParams sampling;
};

int run_chat(const ChatOptions& o) {
    if (Status s = o.sampling.validate(); !s) return fail("chat", s);
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("chat", model.status());
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("chat", tok.status().with_context("tokenizer"));
    const Tokenizer& tk = **tok;
    std::optional<std::string> tmpl = o.template_name.empty() ? tk.chat_template() : std::optional<std::string>(o.template_name);
    // Check the template once up front so an unknown one fails before the first prompt.
    {
        const ChatMessage probe[1] = {{"user", "hi"}};
        auto r = apply_chat_template(tmpl, probe, true);
        if (!r) return fail("chat", r.status());
    }
    auto session = Session::create(**model, o.n_ctx);
    if (!session) return fail("chat", session.status());
    Session& sess = **session;
    const int vocab = (*model)->config().vocab_size;
    std::vector<float> logits(static_cast<size_t>(vocab));
    Sampler sampler(o.sampling, vocab);

    std::vector<ChatMessage> history;
    if (!o.system.empty()) history.push_back({"system", o.system});
    std::vector<int32_t> cached;  // tokens whose K/V are in the session, in order
    const bool tty = ::isatty(0);
    std::fprintf(stderr, "chat: %s; type a message, /reset to clear, /exit to quit\n", (*model)->config().name.c_str());

    std::string line;
    while (true) {
        if (tty) std::fprintf(stderr, "\n> ");
        if (!std::getline(std::cin, line)) break;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
            history.resize(o.system.empty() ? 0 : 1);
            continue;
        }
        if (line.empty()) continue;
        history.push_back({"user", line});
        auto text = apply_chat_template(tmpl, history, true);
        if (!text) return fail("chat", text.status());
        std::vector<int32_t> ids = tk.encode(*text, tk.add_bos_default(), /*parse_special=*/true);
        size_t common = 0;
        while (common < cached.size() && common < ids.size() && cached[common] == ids[common]) ++common;
        if (common == ids.size()) --common;  // always evaluate at least one token for fresh logits
        if (static_cast<int64_t>(ids.size()) + o.n_predict > sess.n_ctx())
            return fail("chat", err("the conversation ({} tokens) + -n {} no longer fits the context of {} tokens; use /reset or a larger -c",
                                    ids.size(), o.n_predict, sess.n_ctx()));
        sess.truncate(static_cast<int>(common));
        cached.resize(common);
        const std::span<const int32_t> fresh(ids.data() + common, ids.size() - common);
        if (Status s = sess.eval(fresh, logits.data()); !s) return fail("chat", s);
        cached.insert(cached.end(), fresh.begin(), fresh.end());
        for (int32_t id : fresh) sampler.accept(id);

        StreamDecoder dec(tk);
        std::string reply;
        const auto t0 = std::chrono::steady_clock::now();
        int n = 0;
        for (; n < o.n_predict; ++n) {
            const int32_t next = sampler.sample(logits);
            sampler.accept(next);
            if (tk.is_eog(next)) break;
            std::string piece = dec.push(next);
            reply += piece;
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            const int32_t one[1] = {next};
            if (Status s = sess.eval(one, logits.data()); !s) return fail("chat", s);
            cached.push_back(next);
        }
        std::string rest = dec.flush();
        reply += rest;
        std::fwrite(rest.data(), 1, rest.size(), stdout);
        std::printf("\n");
        std::fflush(stdout);
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        PL_LOG_INFO("chat: {} tokens in {:.2f} s ({:.1f} tokens/s)", n, t, t > 0 ? n / t : 0.0);
        history.push_back({"assistant", reply});
    }
    return 0;
}

const CommandRegistrar kChat({"chat", "Interactive chat using the model's chat template", 25, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<ChatOptions>();
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("--system", o->system, "System message");
    std::string names;
    for (const auto& n : chat_template_names()) names += (names.empty() ? "" : ", ") + n;
    app.add_option("--chat-template", o->template_name, "Force a template family: " + names);
    app.add_option("-n,--n-predict", o->n_predict, "Maximum tokens per reply")->check(CLI::Range(1, 1 << 20))->capture_default_str();
    app.add_option("-c,--ctx-size", o->n_ctx, "Context size (0 = min(model's, 4096))")->check(CLI::Range(0, 1 << 20));
    add_sampling_options(app, o->sampling);
    add_threads_option(app, o->threads);
    return [o] { return run_chat(*o); };
}});

}  // namespace
}  // namespace pl::cli
