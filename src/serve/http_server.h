// SPDX-License-Identifier: MIT
// `parallama serve`'s HTTP layer (cpp-httplib): OpenAI-compatible endpoints over the Engine.
//   POST /v1/completions, POST /v1/chat/completions (both with "stream": true as Server-Sent
//   Events in OpenAI's chunk format, ending with "data: [DONE]"), GET /v1/models,
//   GET /v1/models/{id}, GET /health, GET /metrics (Prometheus text).
// Each HTTP request runs on a handler thread: it checks the body, tokenizes, submits to the
// engine and turns the tokens it gets back into text (stop strings are applied here). A
// streaming client that goes away is noticed at the next write (a keep-alive comment goes out
// every second while a request waits), and its sequence is cancelled.
#pragma once

#include "core/status.h"
#include "model/llama.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "tokenizer/tokenizer.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace pl {

struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                  // 0: any free port (printed on stderr)
    std::string model_id;             // the name clients use in "model"
    std::string api_key;              // empty: no authentication
    size_t max_body_bytes = 1 << 20;  // larger bodies get 413
    int http_threads = 64;            // concurrent connections served
    int default_max_tokens = 256;     // when a request gives no max_tokens (capped by the context)
    int max_n = 8;                    // largest "n" (choices per request)
    std::optional<std::string> chat_template;  // the model's unless forced
    std::chrono::milliseconds drain{10000};    // on SIGINT/SIGTERM: time given to running requests
};

// Serves until SIGINT or SIGTERM (which the caller must have blocked in every thread, see
// block_shutdown_signals()), then drains: new requests get 503, running ones may finish within
// opts.drain, the rest are cancelled. The engine must run on a Session made for `model`.
Status serve_http(const ServeOptions& opts, const Model& model, const Tokenizer& tok, Engine& engine,
                  ServerMetrics& metrics, int n_ctx);

// Blocks SIGINT/SIGTERM in the calling thread (and the threads it creates later), so that
// serve_http's signal thread receives them; ignores SIGPIPE (a client that went away).
void block_shutdown_signals();

}  // namespace pl
