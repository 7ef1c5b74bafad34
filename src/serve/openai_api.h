// SPDX-License-Identifier: MIT
// The OpenAI request bodies we accept (POST /v1/completions, /v1/chat/completions), parsed and
// checked into GenParams, and OpenAI-style error objects. Field names, types and ranges follow
// OpenAI's API reference; top_k, min_p, repeat_penalty and ignore_eos are extensions (as in llama.cpp and
// vLLM). Parameters we do not implement (logprobs, echo, suffix, tools, logit_bias, non-zero
// presence/frequency penalties) are refused with a 400 naming them rather than silently ignored.
#pragma once

#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace pl::api {

struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // empty: null
    std::string code;   // empty: null
};
// {"error": {"message", "type", "param", "code"}}
nlohmann::json error_body(const ApiError& e);

struct GenParams {
    bool chat = false;
    std::string model;                  // empty when the request named none
    std::vector<ChatMessage> messages;  // chat
    std::string prompt_text;            // completions, text prompt
    std::vector<int32_t> prompt_ids;    // completions, token-id prompt
    bool prompt_is_ids = false;
    std::optional<int> max_tokens;
    SamplingParams sampling;            // OpenAI defaults: temperature 1, top_p 1, no top-k / min-p
    bool seeded = false;                // the request gave a seed (else the server draws one)
    std::vector<std::string> stop;
    int n = 1;
    bool stream = false;
    bool include_usage = false;         // stream_options.include_usage
    bool ignore_eos = false;            // extension: keep generating past end-of-generation tokens
};

struct Limits {
    int max_n = 8;
    int max_stop = 4;
};

// Checks every field's type and range; errors name the field (`param`).
std::variant<GenParams, ApiError> parse_request(const nlohmann::json& body, bool chat, const Limits& lim);

}  // namespace pl::api
