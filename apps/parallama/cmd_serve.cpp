// SPDX-License-Identifier: MIT
// parallama serve: an OpenAI-compatible HTTP server (src/serve/http_server.h) with continuous
// batching over one model: --parallel sequences share a paged KV cache of --kv-memory. Under
// mpirun it serves a tp x dp grid (serve_dist.cpp).
#include "command.h"
#include "common.h"
#include "serve.h"

#include "core/log.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "tokenizer/chat_template.h"

#include <cstdlib>
#include <filesystem>

namespace pl::cli {

Result<ServeSessionPlan> plan_serve_session(const ServeCliOptions& o, const ModelConfig& cfg) {
    ServeSessionPlan p;
    p.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min(cfg.context_length > 0 ? cfg.context_length : 4096, 4096);
    p.kv = default_kv_type();
    p.bytes_per_token = 2.0 * cfg.n_layers * cfg.kv_dim * (p.kv == KvType::F16 ? 2 : 4);
    int64_t budget = static_cast<int64_t>(o.parallel) * p.n_ctx;
    if (o.kv_memory_mib > 0) {
        budget = static_cast<int64_t>(o.kv_memory_mib * 1024 * 1024 / p.bytes_per_token);
        if (budget < Session::kKvBlock)
            return err("--kv-memory {} MiB holds {} tokens, less than one KV block of {} ({:.1f} KiB per token)", o.kv_memory_mib, budget,
                       Session::kKvBlock, p.bytes_per_token / 1024);
    } else if (budget * p.bytes_per_token > 4.0 * (1ull << 30)) {
        budget = static_cast<int64_t>(4.0 * (1ull << 30) / p.bytes_per_token);  // a sane default; --kv-memory sets it
    }
    p.kv_tokens = std::min(budget, static_cast<int64_t>(o.parallel) * p.n_ctx);
    return p;
}

Result<std::unique_ptr<Session>> make_serve_session(const ServeCliOptions& o, const Model& model, const ServeSessionPlan& plan) {
    return Session::create(model, plan.n_ctx, false, o.step_tokens, o.parallel, plan.kv, plan.kv_tokens);
}

void print_kv_line(const Session& s, const ServeSessionPlan& plan, int parallel, const std::string& per) {
    std::fprintf(stderr, "serve: KV cache %s, %d blocks of %d tokens = %.0f MiB%s (%lld tokens for %d sequences)\n", kv_type_name(plan.kv),
                 s.kv_blocks_total(), Session::kKvBlock, s.kv_blocks_total() * Session::kKvBlock * plan.bytes_per_token / (1024 * 1024),
                 per.c_str(), static_cast<long long>(s.kv_blocks_total()) * Session::kKvBlock, parallel);
}

Status prepare_http(ServeCliOptions& o, const Tokenizer& tok, int n_seq) {
    if (o.http.api_key.empty())
        if (const char* k = std::getenv("PARALLAMA_API_KEY")) o.http.api_key = k;
    if (!o.chat_template.empty()) o.http.chat_template = o.chat_template;
    const ChatMessage probe[1] = {{"user", "hi"}};
    if (auto r = apply_chat_template(o.http.chat_template ? o.http.chat_template : tok.chat_template(), probe, true); !r)
        return r.status().with_context("chat template (use --chat-template)");
    if (o.http.model_id.empty()) o.http.model_id = std::filesystem::path(o.model).stem().string();
    o.http.max_body_bytes = static_cast<size_t>(o.max_body_mib * 1024 * 1024);
    o.http.drain = std::chrono::milliseconds(static_cast<int64_t>(o.drain_s * 1000));
    if (o.http.http_threads <= 0) o.http.http_threads = n_seq + o.max_queue + 8;
    return Status::ok();
}

SchedulerOptions scheduler_options(const ServeCliOptions& o) {
    SchedulerOptions so;
    so.max_queue = o.max_queue;
    so.step_tokens = o.step_tokens;
    so.prefill_chunk = o.prefill_chunk;
    return so;
}

namespace {

int run_serve(ServeCliOptions o) {
    if (wants_distributed(o.parallel_layout)) return run_serve_dist(std::move(o));
    block_shutdown_signals();  // before any thread exists, so that every thread inherits the mask
    apply_threads(o.threads);
    auto model = Model::load(o.model);
    if (!model) return fail("serve", model.status());
    auto tok = Tokenizer::from_gguf((*model)->file());
    if (!tok) return fail("serve", tok.status().with_context("tokenizer"));
    if (Status s = prepare_http(o, **tok, o.parallel); !s) return fail("serve", s);
    auto plan = plan_serve_session(o, (*model)->config());
    if (!plan) return fail("serve", plan.status());
    auto session = make_serve_session(o, **model, *plan);
    if (!session) return fail("serve", session.status());
    print_kv_line(**session, *plan, o.parallel, "");

    ServerMetrics metrics;
    Engine engine(**session, scheduler_options(o), [&metrics](int batch, double secs) { metrics.step(batch, secs); });
    Status st = serve_http(o.http, **model, **tok, engine, metrics, plan->n_ctx);
    engine.shutdown(std::chrono::milliseconds(0));
    if (!st) return fail("serve", st);
    return 0;
}

const CommandRegistrar kServe({"serve", "OpenAI-compatible HTTP server with continuous batching", 27, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<ServeCliOptions>();
    app.add_option("-m,--model", o->model, "Model GGUF file")->required()->check(CLI::ExistingFile);
    app.add_option("--host", o->http.host, "Address to listen on (0.0.0.0 for every interface)")->capture_default_str();
    app.add_option("--port", o->http.port, "TCP port (0 = any free port, printed on stderr)")->check(CLI::Range(0, 65535))->capture_default_str();
    app.add_option("--alias", o->http.model_id, "Model name clients use (default: the file name without .gguf)");
    app.add_option("--api-key", o->http.api_key, "Require 'Authorization: Bearer KEY' on /v1 (also $PARALLAMA_API_KEY)");
    app.add_option("-c,--ctx-size", o->n_ctx, "Context per sequence (0 = min(model's, 4096))")->check(CLI::Range(0, 1 << 20));
    app.add_option("--np,--parallel", o->parallel, "Sequences decoded together (batch slots; per replica under --dp)")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app.add_option("--kv-memory", o->kv_memory_mib,
                   "KV cache budget in MiB shared by all sequences (0 = parallel x ctx, at most 4 GiB; per replica under --dp, split over its --tp ranks)")
        ->check(CLI::Range(0.0, 1e7));
    app.add_option("--max-queue", o->max_queue, "Requests that may wait for a slot; more get HTTP 429 (per replica under --dp)")
        ->check(CLI::Range(0, 1 << 16))
        ->capture_default_str();
    app.add_option("--max-tokens", o->http.default_max_tokens, "max_tokens when a request gives none (capped by the context)")
        ->check(CLI::Range(1, 1 << 20))->capture_default_str();
    app.add_option("--max-n", o->http.max_n, "Largest n (choices per request)")->check(CLI::Range(1, 128))->capture_default_str();
    app.add_option("--step-tokens", o->step_tokens, "Tokens per forward step (decode tokens first, then prompt chunks)")
        ->check(CLI::Range(1, 4096))->capture_default_str();
    app.add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens of one request per step")->check(CLI::Range(1, 4096))->capture_default_str();
    app.add_option("--max-body", o->max_body_mib, "Largest request body in MiB (larger: HTTP 413)")->check(CLI::Range(0.001, 1024.0))->capture_default_str();
    app.add_option("--http-threads", o->http.http_threads, "Connections served at once (0 = sequences + max-queue + 8)")->check(CLI::Range(0, 4096));
    app.add_option("--drain-timeout", o->drain_s, "Seconds running requests get to finish after SIGINT/SIGTERM")->check(CLI::Range(0.0, 3600.0))->capture_default_str();
    std::string names;
    for (const auto& n : chat_template_names()) names += (names.empty() ? "" : ", ") + n;
    app.add_option("--chat-template", o->chat_template, "Force a chat template family: " + names);
    add_threads_option(app, o->threads);
    add_parallel_options(app, o->parallel_layout);
    o->http.http_threads = 0;
    return [o] { return run_serve(*o); };
}});

}  // namespace
}  // namespace pl::cli
