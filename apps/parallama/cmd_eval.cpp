// SPDX-License-Identifier: MIT
// parallama eval: runs token ids as one sequence and writes every position's logits as raw
// little-endian float32, row-major [tokens x vocab], for reference checks.
#include "command.h"
#include "common.h"

#include "model/llama.h"

#include <cstdio>
#include <filesystem>

namespace pl::cli {
namespace {

struct EvalOptions {
    std::string model;
    std::string prompt_ids;
    std::string logits_out;
    int threads = 0;
};

int run_eval(const EvalOptions& o) {
    apply_threads(o.threads);
    auto ids = parse_ids(o.prompt_ids);
    if (!ids) return fail("eval", ids.status().with_context("--prompt-ids"));
    if (ids->empty()) return fail("eval", err("--prompt-ids is empty"));
    auto model = Model::load(o.model);
    if (!model) return fail("eval", model.status());
    const int vocab = (*model)->config().vocab_size;
    auto session = Session::create(**model, static_cast<int>(ids->size()));
    if (!session) return fail("eval", session.status());
    std::vector<float> logits(ids->size() * static_cast<size_t>(vocab));
    if (Status s = (*session)->eval(*ids, logits.data(), /*all_logits=*/true); !s) return fail("eval", s);

    const std::string tmp = o.logits_out + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return fail("eval", err("cannot write '{}'", o.logits_out));
    const size_t n = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
    const bool ok = n == logits.size() && std::fclose(f) == 0;
    if (!ok) {
        std::filesystem::remove(tmp);
        return fail("eval", err("short write to '{}'", o.logits_out));
    }
    std::filesystem::rename(tmp, o.logits_out);
    std::fprintf(stderr, "eval: %zu tokens x %d logits written to %s\n", ids->size(), vocab, o.logits_out.c_str());
    return 0;
}

const CommandRegistrar kEval({"eval", "Run token ids as one sequence and dump all logits (float32)", 40, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<EvalOptions>();
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("--prompt-ids", o->prompt_ids, "Token ids (\"1 2 3\")")->required();
    app.add_option("--logits-out", o->logits_out, "Output file: float32 [tokens x vocab], little-endian")->required();
    add_threads_option(app, o->threads, "f32");  // quality figures measure the weights alone
    return [o] { return run_eval(*o); };
}});

}  // namespace
}  // namespace pl::cli
