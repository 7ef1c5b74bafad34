// SPDX-License-Identifier: MIT
// Request parsing for the OpenAI endpoints: defaults, every field's type and range, the
// unsupported parameters, and the error body's shape; the Prometheus histogram.
#include "serve/metrics.h"
#include "serve/openai_api.h"

#include <gtest/gtest.h>

namespace {

using nlohmann::json;
using pl::api::ApiError;
using pl::api::GenParams;

std::variant<GenParams, ApiError> parse(const std::string& body, bool chat = false) {
    return pl::api::parse_request(json::parse(body), chat, {});
}

ApiError error_of(const std::string& body, bool chat = false) {
    auto r = parse(body, chat);
    EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(OpenAiApi, CompletionDefaultsAndFields) {
    auto r = parse(R"({"model": "m", "prompt": "hi"})");
    ASSERT_TRUE(std::holds_alternative<GenParams>(r));
    const GenParams& p = std::get<GenParams>(r);
    EXPECT_EQ(p.model, "m");
    EXPECT_EQ(p.prompt_text, "hi");
    EXPECT_FALSE(p.max_tokens);
    EXPECT_FLOAT_EQ(p.sampling.temperature, 1.0f);  // OpenAI's defaults, not the CLI's
    EXPECT_FLOAT_EQ(p.sampling.top_p, 1.0f);
    EXPECT_EQ(p.sampling.top_k, 0);
    EXPECT_FLOAT_EQ(p.sampling.min_p, 0.0f);
    EXPECT_EQ(p.n, 1);
    EXPECT_FALSE(p.stream || p.seeded || p.include_usage || p.ignore_eos);

    auto q = std::get<GenParams>(parse(R"({"prompt": ["one prompt"], "max_tokens": 7, "temperature": 0, "top_p": 0.5,
        "top_k": 3, "min_p": 0.1, "seed": 42, "n": 2, "stop": ["a", "b"], "stream": true,
        "stream_options": {"include_usage": true}, "ignore_eos": true, "presence_penalty": 0, "logprobs": null})"));
    EXPECT_EQ(q.prompt_text, "one prompt");
    EXPECT_EQ(*q.max_tokens, 7);
    EXPECT_EQ(q.sampling.temperature, 0.0f);
    EXPECT_EQ(q.sampling.top_k, 3);
    EXPECT_EQ(q.sampling.seed, 42u);
    EXPECT_TRUE(q.seeded && q.stream && q.include_usage && q.ignore_eos);
    EXPECT_EQ(q.n, 2);
    EXPECT_EQ(q.stop, (std::vector<std::string>{"a", "b"}));

    auto ids = std::get<GenParams>(parse(R"({"prompt": [1, 2, 3], "stop": "x"})"));
    EXPECT_TRUE(ids.prompt_is_ids);
    EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(ids.stop, std::vector<std::string>{"x"});
}

TEST(OpenAiApi, ChatMessages) {
    auto p = std::get<GenParams>(parse(R"({"messages": [{"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null}], "max_completion_tokens": 9})", true));
    ASSERT_EQ(p.messages.size(), 3u);
    EXPECT_EQ(p.messages[0].role, "system");
    EXPECT_EQ(p.messages[1].content, "ab");
    EXPECT_EQ(p.messages[2].content, "");
    EXPECT_EQ(*p.max_tokens, 9);
    EXPECT_EQ(error_of(R"({"messages": []})", true).param, "messages");
    EXPECT_EQ(error_of(R"({"messages": [{"role": "user"}]})", true).param, "messages[0].content");
    EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": 5}]})", true).param, "messages[0].content");
    EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true).param,
              "messages[0].content");
    EXPECT_EQ(error_of(R"({"messages": [{"content": "x"}]})", true).param, "messages[0].role");
    EXPECT_EQ(error_of(R"({"prompt": "x"})", true).param, "messages");
}

TEST(OpenAiApi, BadFieldsNameThemselves) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"prompt": 5})", "prompt"},
        {R"({"prompt": ""})", "prompt"},
        {R"({"prompt": ["a", "b"]})", "prompt"},
        {R"({"prompt": [1, -2]})", "prompt"},
        {R"({})", "prompt"},
        {R"({"prompt": "x", "model": 3})", "model"},
        {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
        {R"({"prompt": "x", "max_tokens": "5"})", "max_tokens"},
        {R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens"},
        {R"({"prompt": "x", "temperature": -1})", "temperature"},
        {R"({"prompt": "x", "temperature": 2.5})", "temperature"},
        {R"({"prompt": "x", "top_p": 0})", "top_p"},
        {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
        {R"({"prompt": "x", "top_k": -1})", "top_k"},
        {R"({"prompt": "x", "n": 0})", "n"},
        {R"({"prompt": "x", "n": 9})", "n"},
        {R"({"prompt": "x", "stream": "yes"})", "stream"},
        {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
        {R"({"prompt": "x", "stop": [1]})", "stop"},
        {R"({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
        {R"({"prompt": "x", "seed": "1"})", "seed"},
        {R"({"prompt": "x", "frequency_penalty": 0.5})", "frequency_penalty"},
        {R"({"prompt": "x", "presence_penalty": 9})", "presence_penalty"},
        {R"({"prompt": "x", "echo": true})", "echo"},
        {R"({"prompt": "x", "logprobs": 2})", "logprobs"},
        {R"({"prompt": "x", "suffix": "y"})", "suffix"},
        {R"({"prompt": "x", "best_of": 3})", "best_of"},
        {R"({"prompt": "x", "logit_bias": {"1": 5}})", "logit_bias"},
        // Found by fuzz/request_fuzz.cpp: a non-string type used to throw (a 500, not a 400).
        {R"({"prompt": "x", "response_format": {"type": 1}})", "response_format"},
        {R"({"prompt": "x", "response_format": {"type": null}})", "response_format"},
        {R"({"prompt": "x", "response_format": "text"})", "response_format"},
    };
    for (const auto& [body, param] : cases) {
        const ApiError e = error_of(body);
        EXPECT_EQ(e.status, 400) << body;
        EXPECT_EQ(e.param, param) << body << ": " << e.message;
        EXPECT_FALSE(e.message.empty());
    }
    EXPECT_EQ(error_of("[1]").status, 400);
    // Allowed no-op values of unsupported parameters.
    EXPECT_TRUE(std::holds_alternative<GenParams>(parse(R"({"prompt": "x", "logit_bias": {}, "echo": false, "best_of": 1,
        "response_format": {"type": "text"}, "frequency_penalty": 0})")));
}

TEST(OpenAiApi, ErrorBodyShape) {
    const json j = pl::api::error_body({429, "slow down", "rate_limit_error", "", "queue_full"});
    EXPECT_EQ(j.dump(), R"({"error":{"code":"queue_full","message":"slow down","param":null,"type":"rate_limit_error"}})");
}

TEST(Metrics, HistogramIsCumulativeWithInf) {
    pl::Histogram h({0.1, 1.0});
    for (double v : {0.05, 0.1, 0.5, 3.0}) h.observe(v);
    std::string out;
    h.render(out, "x");
    EXPECT_EQ(out, "x_bucket{le=\"0.1\"} 2\nx_bucket{le=\"1\"} 3\nx_bucket{le=\"+Inf\"} 4\nx_sum 3.65\nx_count 4\n");
}

TEST(Metrics, RendersGaugesAndCounters) {
    pl::ServerMetrics m;
    m.request_done("/v1/completions", 200);
    m.request_done("/v1/completions", 200);
    m.request_done("/v1/completions", 429);
    m.tokens(10, 5);
    pl::EngineStats s;
    s.queued = 3;
    s.kv_blocks_used = 7;
    s.kv_blocks_total = 64;
    const std::string t = m.render(s);
    EXPECT_NE(t.find("parallama_requests_total{endpoint=\"/v1/completions\",code=\"200\"} 2\n"), std::string::npos) << t;
    EXPECT_NE(t.find("parallama_requests_total{endpoint=\"/v1/completions\",code=\"429\"} 1\n"), std::string::npos);
    EXPECT_NE(t.find("parallama_queue_depth 3\n"), std::string::npos);
    EXPECT_NE(t.find("parallama_kv_blocks_used 7\n"), std::string::npos);
    EXPECT_NE(t.find("parallama_generation_tokens_total 5\n"), std::string::npos);
    EXPECT_NE(t.find("# TYPE parallama_time_to_first_token_seconds histogram\n"), std::string::npos);
}

}  // namespace
