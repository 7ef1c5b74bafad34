// SPDX-License-Identifier: MIT
// `parallama serve`'s options and setup, shared by the single-process path (cmd_serve.cpp) and
// the one under mpirun (serve_dist.cpp).
#pragma once

#include "parallel_options.h"

#include "core/status.h"
#include "model/llama.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

#include <memory>
#include <string>

namespace pl::cli {

struct ServeCliOptions {
    std::string model;
    ServeOptions http;
    int n_ctx = 0;
    int parallel = 8;
    double kv_memory_mib = 0;
    int max_queue = 64;
    int step_tokens = 64;
    int prefill_chunk = 32;
    double drain_s = 10;
    double max_body_mib = 1;
    std::string chat_template;
    int threads = 0;
    ParallelOptions parallel_layout;
};

// The context and the KV pool of one replica's Session, from the options and the whole model's
// shape (so every tp rank of a replica makes the same pool, each holding its share of the heads).
struct ServeSessionPlan {
    int n_ctx = 0;
    KvType kv = KvType::F32;
    int64_t kv_tokens = 0;       // the pool, in positions
    double bytes_per_token = 0;  // of the whole model's KV
};
Result<ServeSessionPlan> plan_serve_session(const ServeCliOptions& o, const ModelConfig& cfg);
Result<std::unique_ptr<Session>> make_serve_session(const ServeCliOptions& o, const Model& model, const ServeSessionPlan& plan);
// "serve: KV cache f16, 256 blocks of 16 tokens = 4 MiB (...)" on stderr; `per` names what it is of.
void print_kv_line(const Session& s, const ServeSessionPlan& plan, int parallel, const std::string& per);

// The HTTP options that depend on the model: $PARALLAMA_API_KEY, the chat template (checked
// once), the model id, the body limit, the drain time, the connection threads for `n_seq`.
Status prepare_http(ServeCliOptions& o, const Tokenizer& tok, int n_seq);
SchedulerOptions scheduler_options(const ServeCliOptions& o);

// serve under mpirun (docs/serving.md, "Serving over MPI"): every rank runs it.
int run_serve_dist(ServeCliOptions o);

}  // namespace pl::cli
