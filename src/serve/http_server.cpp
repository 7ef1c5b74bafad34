// SPDX-License-Identifier: MIT
#include "serve/http_server.h"

#include "core/log.h"
#include "serve/openai_api.h"
#include "serve/text_stream.h"
#include "tokenizer/chat_template.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <random>
#include <thread>

namespace pl {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

void block_shutdown_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}

namespace {

constexpr auto kKeepAlive = std::chrono::milliseconds(1000);  // SSE comment while a request waits

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(json_text(body), "application/json");
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One request's generation, shared by the handler and (for streams) httplib's content provider.
struct Generation {
    api::GenParams p;
    std::string endpoint;
    std::string id;
    int64_t created = 0;
    int prompt_tokens = 0;
    Clock::time_point t_arrival;
    std::optional<Clock::time_point> t_first;
    Clock::time_point t_last;
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<StopTextStream> texts;
    std::vector<int> n_tokens;                     // tokens received per choice
    std::vector<std::optional<std::string>> finish;  // finish_reason per choice, once known
    std::vector<int> n_sampled;                    // completion tokens per choice, once known
    bool role_sent = false;
    bool closed = false;                           // metrics recorded, streams abandoned

    bool all_done() const {
        for (const auto& f : finish)
            if (!f) return false;
        return true;
    }
    int completion_tokens() const {
        int n = 0;
        for (size_t i = 0; i < n_sampled.size(); ++i) n += n_sampled[i] >= 0 ? n_sampled[i] : n_tokens[i];
        return n;
    }
    // Waits up to `timeout` for events and turns them into (choice, text) pieces; a finished
    // choice gets its finish reason (pieces may still carry its last text).
    void poll(std::chrono::milliseconds timeout, const std::function<void(size_t, const std::string&)>& emit) {
        size_t active = 0;
        for (const auto& f : finish) active += !f;
        if (active == 0) return;
        const auto slice = std::max(std::chrono::milliseconds(1), timeout / static_cast<int>(active));
        std::vector<StreamEvent> ev;
        for (size_t c = 0; c < streams.size(); ++c) {
            if (finish[c]) continue;
            ev.clear();
            streams[c]->wait(ev, slice);
            for (const StreamEvent& e : ev) {
                if (finish[c]) break;
                if (!e.done) {
                    ++n_tokens[c];
                    if (!t_first) t_first = Clock::now();
                    t_last = Clock::now();
                    std::string piece = texts[c].push(e.token);
                    if (!piece.empty()) emit(c, piece);
                    if (texts[c].stopped()) {
                        finish[c] = "stop";
                        n_sampled[c] = n_tokens[c];
                        streams[c]->abandon();
                    }
                    continue;
                }
                std::string rest = texts[c].finish();
                if (!rest.empty()) emit(c, rest);
                n_sampled[c] = e.n_generated;
                finish[c] = finish_reason_name(e.reason);
            }
        }
    }
    void abandon_all() {
        for (auto& s : streams) s->abandon();
    }
    json usage() const {
        const int c = completion_tokens();
        return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", c}, {"total_tokens", prompt_tokens + c}};
    }
    json chunk(json choices) const {
        return {{"id", id}, {"object", p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                {"model", p.model}, {"choices", std::move(choices)}};
    }
};

class Server {
public:
    Server(const ServeOptions& o, const Model& m, const Tokenizer& t, Engine& e, ServerMetrics& mt, int n_ctx)
        : o_(o), model_(m), tok_(t), engine_(e), metrics_(mt), n_ctx_(n_ctx) {
        for (int32_t id = 0; id < tok_.n_vocab(); ++id)
            if (tok_.is_eog(id)) eog_.push_back(id);
    }

    Status run();

private:
    bool authorized(const httplib::Request& req, httplib::Response& res, const std::string& endpoint);
    void error(httplib::Response& res, const std::string& endpoint, const api::ApiError& e) {
        send_json(res, e.status, api::error_body(e));
        metrics_.request_done(endpoint, e.status);
    }
    void generate(const httplib::Request& req, httplib::Response& res, bool chat);
    void finish_metrics(Generation& g, int status);
    json models_entry() const {
        return {{"id", o_.model_id}, {"object", "model"}, {"created", started_}, {"owned_by", "parallama"},
                {"meta", {{"n_ctx", n_ctx_}, {"n_vocab", model_.config().vocab_size}, {"n_params", model_.n_params()},
                          {"max_sequences", engine_.stats().n_seq}}}};
    }

    const ServeOptions& o_;
    const Model& model_;
    const Tokenizer& tok_;
    Engine& engine_;
    ServerMetrics& metrics_;
    int n_ctx_;
    std::vector<int32_t> eog_;
    int64_t started_ = static_cast<int64_t>(std::time(nullptr));
    std::atomic<bool> draining_{false};
    std::atomic<int> in_flight_{0};
    std::atomic<uint64_t> next_id_{1};
    std::mt19937_64 seed_rng_{std::random_device{}()};
    std::mutex seed_mu_;
};

bool Server::authorized(const httplib::Request& req, httplib::Response& res, const std::string& endpoint) {
    if (o_.api_key.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + o_.api_key) return true;
    error(res, endpoint,
          {401, auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key", "invalid_request_error", "",
           "invalid_api_key"});
    return false;
}

void Server::finish_metrics(Generation& g, int status) {
    if (g.closed) return;
    g.closed = true;
    g.abandon_all();  // a no-op for finished streams; frees the sequences of unfinished ones
    metrics_.request_done(g.endpoint, status);
    metrics_.tokens(g.prompt_tokens, g.completion_tokens());
    if (g.t_first) {
        metrics_.first_token(std::chrono::duration<double>(*g.t_first - g.t_arrival).count());
        int n = 0;
        for (int x : g.n_tokens) n = std::max(n, x);
        if (n > 1) metrics_.per_output_token(std::chrono::duration<double>(g.t_last - *g.t_first).count() / (n - 1));
    }
    metrics_.request_latency(since(g.t_arrival));
}

void Server::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    auto g = std::make_shared<Generation>();
    g->t_arrival = Clock::now();
    g->endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
    if (!authorized(req, res, g->endpoint)) return;
    if (draining_) return error(res, g->endpoint, {503, "the server is shutting down", "server_error", "", "shutting_down"});
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return error(res, g->endpoint, {400, "the request body is not valid JSON", "invalid_request_error", "", ""});
    auto parsed = api::parse_request(body, chat, {o_.max_n, 4});
    if (auto* e = std::get_if<api::ApiError>(&parsed)) return error(res, g->endpoint, *e);
    g->p = std::move(std::get<api::GenParams>(parsed));
    api::GenParams& p = g->p;
    if (p.model.empty()) p.model = o_.model_id;
    if (p.model != o_.model_id)
        return error(res, g->endpoint,
                     {404, fmt::format("the model '{}' does not exist; this server serves '{}'", p.model, o_.model_id),
                      "invalid_request_error", "model", "model_not_found"});

    std::vector<int32_t> prompt;
    if (chat) {
        auto text = apply_chat_template(o_.chat_template ? o_.chat_template : tok_.chat_template(), p.messages, true);
        if (!text) return error(res, g->endpoint, {400, text.error_message(), "invalid_request_error", "messages", ""});
        prompt = tok_.encode(*text, tok_.add_bos_default(), /*parse_special=*/true);
    } else if (p.prompt_is_ids) {
        prompt = p.prompt_ids;
        for (size_t i = 0; i < prompt.size(); ++i)
            if (prompt[i] >= tok_.n_vocab())
                return error(res, g->endpoint,
                             {400, fmt::format("prompt token id {} at index {} is out of range [0, {})", prompt[i], i, tok_.n_vocab()),
                              "invalid_request_error", "prompt", ""});
    } else {
        prompt = tok_.encode(p.prompt_text, tok_.add_bos_default());
    }
    if (prompt.empty()) return error(res, g->endpoint, {400, "the prompt has no tokens", "invalid_request_error", "prompt", ""});
    const int n_prompt = static_cast<int>(prompt.size());
    if (n_prompt >= n_ctx_)
        return error(res, g->endpoint,
                     {400, fmt::format("the prompt is {} tokens long; this model's context is {} tokens, which must also hold the reply",
                                       n_prompt, n_ctx_),
                      "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded"});
    int max_tokens = std::min(o_.default_max_tokens, n_ctx_ - n_prompt);
    if (p.max_tokens) {
        if (n_prompt + *p.max_tokens > n_ctx_)
            return error(res, g->endpoint,
                         {400,
                          fmt::format("this model's context is {} tokens, but the prompt ({} tokens) + max_tokens ({}) need {}; "
                                      "lower max_tokens to at most {}",
                                      n_ctx_, n_prompt, *p.max_tokens, n_prompt + *p.max_tokens, n_ctx_ - n_prompt),
                          "invalid_request_error", "max_tokens", "context_length_exceeded"});
        max_tokens = *p.max_tokens;
    }
    if (!p.seeded) {
        std::lock_guard lk(seed_mu_);
        p.sampling.seed = seed_rng_();
    }
    g->prompt_tokens = n_prompt;
    g->id = fmt::format("{}-{:x}{:06x}", chat ? "chatcmpl" : "cmpl", started_, next_id_++);
    g->created = static_cast<int64_t>(std::time(nullptr));
    for (int c = 0; c < p.n; ++c) {
        SchedRequest r;
        r.prompt = prompt;
        r.max_tokens = max_tokens;
        r.sampling = p.sampling;
        r.sampling.seed = p.sampling.seed + static_cast<uint64_t>(c);
        if (!p.ignore_eos) r.stop_tokens = eog_;
        SubmitResult s = engine_.submit(std::move(r));
        if (!s.stream) {
            g->abandon_all();
            g->closed = true;
            const api::ApiError e = s.error == SubmitError::QueueFull      ? api::ApiError{429, s.message, "rate_limit_error", "", "queue_full"}
                                    : s.error == SubmitError::ShuttingDown ? api::ApiError{503, s.message, "server_error", "", "shutting_down"}
                                                                           : api::ApiError{400, s.message, "invalid_request_error", "", ""};
            return error(res, g->endpoint, e);
        }
        g->streams.push_back(s.stream);
        g->texts.emplace_back(tok_, p.stop);
        g->n_tokens.push_back(0);
        g->finish.emplace_back();
        g->n_sampled.push_back(-1);
    }

    if (!p.stream) {
        std::vector<std::string> text(static_cast<size_t>(p.n));
        while (!g->all_done()) g->poll(std::chrono::milliseconds(500), [&](size_t c, const std::string& s) { text[c] += s; });
        json choices = json::array();
        for (size_t c = 0; c < text.size(); ++c) {
            json ch = {{"index", c}, {"logprobs", nullptr}, {"finish_reason", *g->finish[c]}};
            if (chat) ch["message"] = {{"role", "assistant"}, {"content", text[c]}};
            else ch["text"] = text[c];
            choices.push_back(std::move(ch));
        }
        json out = {{"id", g->id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", g->created},
                    {"model", p.model}, {"choices", std::move(choices)}, {"usage", g->usage()}};
        send_json(res, 200, out);
        finish_metrics(*g, 200);
        return;
    }

    ++in_flight_;
    auto provider = [this, g](size_t, httplib::DataSink& sink) -> bool {
        bool ok = true;
        auto write = [&](const json& j) {
            if (!ok) return;
            const std::string line = "data: " + json_text(j) + "\n\n";
            ok = sink.write(line.data(), line.size());
        };
        if (g->p.chat && !g->role_sent) {
            g->role_sent = true;
            json choices = json::array();
            for (int c = 0; c < g->p.n; ++c)
                choices.push_back({{"index", c}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
            write(g->chunk(std::move(choices)));
        }
        std::vector<std::optional<std::string>> before = g->finish;
        bool any = false;
        g->poll(kKeepAlive, [&](size_t c, const std::string& s) {
            any = true;
            json ch = {{"index", c}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
            if (g->p.chat) ch["delta"] = {{"content", s}};
            else ch["text"] = s;
            write(g->chunk(json::array({std::move(ch)})));
        });
        for (size_t c = 0; c < g->finish.size(); ++c) {
            if (before[c] || !g->finish[c]) continue;
            any = true;
            json ch = {{"index", c}, {"logprobs", nullptr}, {"finish_reason", *g->finish[c]}};
            if (g->p.chat) ch["delta"] = json::object();
            else ch["text"] = "";
            write(g->chunk(json::array({std::move(ch)})));
        }
        if (!any) {
            static const char kComment[] = ": keep-alive\n\n";
            ok = ok && sink.write(kComment, sizeof(kComment) - 1);
        }
        if (ok && g->all_done()) {
            if (g->p.include_usage) {
                json last = g->chunk(json::array());
                last["usage"] = g->usage();
                write(last);
            }
            static const char kDone[] = "data: [DONE]\n\n";
            ok = ok && sink.write(kDone, sizeof(kDone) - 1);
            if (ok) {
                finish_metrics(*g, 200);
                sink.done();
            }
        }
        return ok;
    };
    auto released = [this, g](bool success) {
        if (!g->closed) {  // the client went away (or the server stopped) before the end
            metrics_.disconnect();
            finish_metrics(*g, 499);
        }
        --in_flight_;
    };
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", provider, released);
}

Status Server::run() {
    httplib::Server svr;
    const int threads = std::max(4, o_.http_threads);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    svr.set_payload_max_length(o_.max_body_bytes);
    svr.set_keep_alive_timeout(5);
    svr.set_read_timeout(30);
    svr.set_write_timeout(30);
    svr.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        PL_LOG_ERROR("serve: {} {}: {}", req.method, req.path, what);
        error(res, req.path, {500, "internal error: " + what, "server_error", "", ""});
    });
    // Errors httplib produces itself (unknown path, body over the limit, bad HTTP) get an
    // OpenAI-style body too; our own error responses already have one.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        api::ApiError e{res.status, fmt::format("HTTP {}", res.status), "invalid_request_error", "", ""};
        if (res.status == 404) e = {404, fmt::format("unknown endpoint: {} {}", req.method, req.path), "invalid_request_error", "", "unknown_url"};
        if (res.status == 413)
            e = {413, fmt::format("the request body is larger than the server's limit of {} bytes", o_.max_body_bytes),
                 "invalid_request_error", "", "request_too_large"};
        if (res.status == 405) e = {405, fmt::format("method {} not allowed on {}", req.method, req.path), "invalid_request_error", "", ""};
        send_json(res, e.status, api::error_body(e));
        metrics_.request_done(req.path.rfind("/v1/", 0) == 0 ? req.path : "other", e.status);
        return httplib::Server::HandlerResponse::Handled;
    }));

    svr.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { generate(q, r, false); });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { generate(q, r, true); });
    svr.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) {
        if (!authorized(q, r, "/v1/models")) return;
        send_json(r, 200, {{"object", "list"}, {"data", json::array({models_entry()})}});
        metrics_.request_done("/v1/models", 200);
    });
    svr.Get(R"(/v1/models/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
        if (!authorized(q, r, "/v1/models")) return;
        if (q.matches[1] != o_.model_id)
            return error(r, "/v1/models", {404, fmt::format("the model '{}' does not exist", q.matches[1].str()), "invalid_request_error", "model", "model_not_found"});
        send_json(r, 200, models_entry());
        metrics_.request_done("/v1/models", 200);
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
        const EngineStats s = engine_.stats();
        const bool up = !draining_;
        send_json(r, up ? 200 : 503, {{"status", up ? "ok" : "shutting down"}, {"running", s.running}, {"queued", s.queued}});
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
        r.set_content(metrics_.render(engine_.stats()), "text/plain; version=0.0.4");
    });

    int port = o_.port;
    if (port == 0) {
        port = svr.bind_to_any_port(o_.host);
        if (port < 0) return err("cannot bind to {} on any port", o_.host);
    } else if (!svr.bind_to_port(o_.host, port)) {
        return err("cannot listen on {}:{} (in use, or not an address of this machine?)", o_.host, port);
    }
    std::fprintf(stderr, "serve: model '%s', %d sequences x %d tokens of context, listening on http://%s:%d\n", o_.model_id.c_str(),
                 engine_.stats().n_seq, n_ctx_, o_.host.c_str(), port);
    std::fflush(stderr);

    // Shutdown: the first SIGINT/SIGTERM drains (new requests get 503, running ones get
    // o_.drain to finish, the rest are cancelled), then the listener stops.
    std::atomic<bool> listening_done{false};
    std::thread sig([&] {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        const timespec tick{0, 200 * 1000 * 1000};
        int s = -1;
        while (!listening_done && (s = sigtimedwait(&set, nullptr, &tick)) < 0) {
        }
        if (s < 0) return;
        std::fprintf(stderr, "serve: %s: finishing running requests (at most %.1f s), refusing new ones\n", s == SIGINT ? "SIGINT" : "SIGTERM",
                     std::chrono::duration<double>(o_.drain).count());
        draining_ = true;
        engine_.shutdown(o_.drain);
        // Streams that were cancelled still have to write their end; give them a moment.
        const auto until = Clock::now() + std::chrono::seconds(2);
        while (in_flight_ > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        svr.stop();
    });
    const bool ok = svr.listen_after_bind();
    listening_done = true;
    sig.join();
    std::fprintf(stderr, "serve: stopped\n");
    if (!ok && !draining_) return err("the HTTP listener failed on {}:{}", o_.host, port);
    return Status::ok();
}

}  // namespace

Status serve_http(const ServeOptions& opts, const Model& model, const Tokenizer& tok, Engine& engine, ServerMetrics& metrics,
                  int n_ctx) {
    Server s(opts, model, tok, engine, metrics, n_ctx);
    return s.run();
}

}  // namespace pl
