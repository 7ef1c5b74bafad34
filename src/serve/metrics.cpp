// SPDX-License-Identifier: MIT
#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace pl {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    ++counts_[i];
    sum_ += v;
    ++count_;
}

void Histogram::render(std::string& out, const std::string& name) const {
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cum += counts_[i];
        out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cum);
    }
    cum += counts_.back();
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cum, name, sum_, name, count_);
}

namespace {
std::vector<double> seconds_buckets() { return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}; }
}  // namespace

ServerMetrics::ServerMetrics()
    : ttft_(seconds_buckets()),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      latency_(seconds_buckets()),
      step_secs_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
      batch_({1, 2, 4, 8, 16, 32, 64, 128, 256}) {}

void ServerMetrics::request_done(const std::string& endpoint, int status) {
    std::lock_guard lk(mu_);
    ++requests_[{endpoint, status}];
}
void ServerMetrics::tokens(int prompt, int completion) {
    std::lock_guard lk(mu_);
    prompt_tokens_ += static_cast<uint64_t>(std::max(prompt, 0));
    completion_tokens_ += static_cast<uint64_t>(std::max(completion, 0));
}
void ServerMetrics::first_token(double s) {
    std::lock_guard lk(mu_);
    ttft_.observe(s);
}
void ServerMetrics::per_output_token(double s) {
    std::lock_guard lk(mu_);
    tpot_.observe(s);
}
void ServerMetrics::request_latency(double s) {
    std::lock_guard lk(mu_);
    latency_.observe(s);
}
void ServerMetrics::step(int batch, double s) {
    std::lock_guard lk(mu_);
    step_secs_.observe(s);
    batch_.observe(batch);
}
void ServerMetrics::disconnect() {
    std::lock_guard lk(mu_);
    ++disconnects_;
}

std::string ServerMetrics::render(const EngineStats& s) const {
    std::lock_guard lk(mu_);
    std::string o;
    auto head = [&](const char* name, const char* type, const char* help) {
        o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    auto scalar = [&](const char* name, const char* type, const char* help, auto value) {
        head(name, type, help);
        o += fmt::format("{} {}\n", name, value);
    };
    head("parallama_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (const auto& [k, n] : requests_)
        o += fmt::format("parallama_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", k.first, k.second, n);
    scalar("parallama_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", prompt_tokens_);
    scalar("parallama_generation_tokens_total", "counter", "Tokens generated for completed requests.", completion_tokens_);
    scalar("parallama_client_disconnects_total", "counter", "Requests whose client went away before the end.", disconnects_);
    scalar("parallama_forward_steps_total", "counter", "Forward steps run by the engine.", s.steps);
    scalar("parallama_queue_depth", "gauge", "Requests waiting for a sequence slot or KV blocks.", s.queued);
    scalar("parallama_running_sequences", "gauge", "Sequences in the running batch.", s.running);
    scalar("parallama_max_sequences", "gauge", "Sequences the server runs at once (--parallel).", s.n_seq);
    scalar("parallama_batch_size", "gauge", "Tokens in the last forward step.", s.last_batch);
    scalar("parallama_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", s.kv_blocks_used);
    scalar("parallama_kv_blocks_total", "gauge", "KV cache blocks in the pool.", s.kv_blocks_total);
    if (!s.replicas.empty()) {  // serve --dp under mpirun
        head("parallama_replica_requests_total", "counter", "Requests sent to each data-parallel replica.");
        for (size_t d = 0; d < s.replicas.size(); ++d)
            o += fmt::format("parallama_replica_requests_total{{replica=\"{}\"}} {}\n", d, s.replicas[d].requests);
        head("parallama_replica_outstanding_requests", "gauge", "Requests sent to each replica and not finished yet.");
        for (size_t d = 0; d < s.replicas.size(); ++d)
            o += fmt::format("parallama_replica_outstanding_requests{{replica=\"{}\"}} {}\n", d, s.replicas[d].outstanding);
    }
    head("parallama_time_to_first_token_seconds", "histogram", "Request arrival to its first generated token.");
    ttft_.render(o, "parallama_time_to_first_token_seconds");
    head("parallama_time_per_output_token_seconds", "histogram", "Mean time between a request's tokens after the first.");
    tpot_.render(o, "parallama_time_per_output_token_seconds");
    head("parallama_request_duration_seconds", "histogram", "Request arrival to the end of its response.");
    latency_.render(o, "parallama_request_duration_seconds");
    head("parallama_step_duration_seconds", "histogram", "Duration of one forward step.");
    step_secs_.render(o, "parallama_step_duration_seconds");
    head("parallama_step_batch_tokens", "histogram", "Tokens per forward step.");
    batch_.render(o, "parallama_step_batch_tokens");
    return o;
}

}  // namespace pl
