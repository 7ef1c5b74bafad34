// SPDX-License-Identifier: MIT
// The server's counters and latency histograms, rendered as Prometheus text (exposition format
// 0.0.4) for GET /metrics. Thread-safe.
#pragma once

#include "serve/engine.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pl {

class Histogram {
public:
    explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
    void observe(double v);
    // "<name>_bucket{le=...} n" lines (cumulative), _sum and _count.
    void render(std::string& out, const std::string& name) const;
    uint64_t count() const { return count_; }

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

class ServerMetrics {
public:
    ServerMetrics();
    void request_done(const std::string& endpoint, int status);
    void tokens(int prompt, int completion);
    void first_token(double seconds);      // request arrival -> first token sent
    void per_output_token(double seconds); // mean time between a request's tokens after the first
    void request_latency(double seconds);  // arrival -> last byte
    void step(int batch, double seconds);  // one forward step of `batch` tokens
    void disconnect();                     // a client went away before its request finished
    std::string render(const EngineStats& s) const;

private:
    mutable std::mutex mu_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;
    uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, disconnects_ = 0;
    Histogram ttft_, tpot_, latency_, step_secs_, batch_;
};

}  // namespace pl
