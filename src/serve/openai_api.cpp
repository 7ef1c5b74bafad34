// SPDX-License-Identifier: MIT
#include "serve/openai_api.h"

#include <fmt/format.h>

#include <cmath>

namespace pl::api {

using nlohmann::json;

json error_body(const ApiError& e) {
    json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
    if (!e.param.empty()) err["param"] = e.param;
    if (!e.code.empty()) err["code"] = e.code;
    return json{{"error", err}};
}

namespace {

ApiError bad(const std::string& param, std::string message) { return ApiError{400, std::move(message), "invalid_request_error", param, ""}; }

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::number_float: return "a number";
        default: return "an integer";
    }
}

// A number field in [lo, hi]; absent or null leaves `out` alone.
std::optional<ApiError> number(const json& b, const char* key, double lo, double hi, double& out) {
    auto it = b.find(key);
    if (it == b.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) return bad(key, fmt::format("'{}' must be a number, not {}", key, type_name(*it)));
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) return bad(key, fmt::format("'{}' must be between {} and {} (got {})", key, lo, hi, v));
    out = v;
    return std::nullopt;
}

std::optional<ApiError> integer(const json& b, const char* key, int64_t lo, int64_t hi, int64_t& out, bool& present) {
    present = false;
    auto it = b.find(key);
    if (it == b.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer() && !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()))
        return bad(key, fmt::format("'{}' must be an integer, not {}", key, type_name(*it)));
    const double d = it->get<double>();
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
        return bad(key, fmt::format("'{}' must be between {} and {} (got {})", key, lo, hi, it->dump()));
    out = it->is_number_float() ? static_cast<int64_t>(d) : (it->is_number_unsigned() ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>());
    present = true;
    return std::nullopt;
}

std::optional<ApiError> boolean(const json& b, const char* key, bool& out) {
    auto it = b.find(key);
    if (it == b.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) return bad(key, fmt::format("'{}' must be a boolean, not {}", key, type_name(*it)));
    out = it->get<bool>();
    return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& b, GenParams& p) {
    auto it = b.find("messages");
    if (it == b.end() || it->is_null()) return bad("messages", "'messages' is required");
    if (!it->is_array()) return bad("messages", fmt::format("'messages' must be an array, not {}", type_name(*it)));
    if (it->empty()) return bad("messages", "'messages' must not be empty");
    for (size_t i = 0; i < it->size(); ++i) {
        const json& m = (*it)[i];
        const std::string where = fmt::format("messages[{}]", i);
        if (!m.is_object()) return bad(where, fmt::format("'{}' must be an object, not {}", where, type_name(m)));
        auto role = m.find("role");
        if (role == m.end() || !role->is_string())
            return bad(where + ".role", fmt::format("'{}.role' must be a string", where));
        std::string r = role->get<std::string>();
        if (r == "developer") r = "system";
        if (r != "system" && r != "user" && r != "assistant")
            return bad(where + ".role", fmt::format("'{}.role' must be 'system', 'developer', 'user' or 'assistant' (got '{}')", where, r));
        std::string content;
        auto c = m.find("content");
        if (c == m.end() || c->is_null()) {
            if (r != "assistant") return bad(where + ".content", fmt::format("'{}.content' is required", where));
        } else if (c->is_string()) {
            content = c->get<std::string>();
        } else if (c->is_array()) {
            for (size_t j = 0; j < c->size(); ++j) {
                const json& part = (*c)[j];
                auto ty = part.is_object() ? part.find("type") : part.end();
                if (ty == part.end() || !ty->is_string() || ty->get<std::string>() != "text" || !part.contains("text") ||
                    !part["text"].is_string())
                    return bad(where + ".content", fmt::format("'{}.content[{}]' must be a text part ({{\"type\": \"text\", \"text\": ...}}); "
                                                               "only text is supported", where, j));
                content += part["text"].get<std::string>();
            }
        } else {
            return bad(where + ".content", fmt::format("'{}.content' must be a string or an array of text parts, not {}", where, type_name(*c)));
        }
        p.messages.push_back({r, std::move(content)});
    }
    return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& b, GenParams& p) {
    auto it = b.find("prompt");
    if (it == b.end() || it->is_null()) return bad("prompt", "'prompt' is required");
    const json* v = &*it;
    // A list of one prompt is the same as the prompt (a batch of several is refused below).
    if (v->is_array() && v->size() == 1 && ((*v)[0].is_string() || (*v)[0].is_array())) v = &(*v)[0];
    if (v->is_string()) {
        p.prompt_text = v->get<std::string>();
        if (p.prompt_text.empty()) return bad("prompt", "'prompt' must not be empty");
        return std::nullopt;
    }
    if (v->is_array()) {
        if (v->empty()) return bad("prompt", "'prompt' must not be empty");
        for (const json& x : *v) {
            if (x.is_string() || x.is_array())
                return bad("prompt", "a list of several prompts is not supported; send one request per prompt (or use n)");
            if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
                return bad("prompt", fmt::format("'prompt' token ids must be non-negative integers (got {})", x.dump()));
            p.prompt_ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
        }
        p.prompt_is_ids = true;
        return std::nullopt;
    }
    return bad("prompt", fmt::format("'prompt' must be a string or an array of token ids, not {}", type_name(*v)));
}

}  // namespace

std::variant<GenParams, ApiError> parse_request(const json& b, bool chat, const Limits& lim) {
    if (!b.is_object()) return bad("", fmt::format("the request body must be a JSON object, not {}", type_name(b)));
    GenParams p;
    p.chat = chat;
    p.sampling.temperature = 1.0f;
    p.sampling.top_p = 1.0f;
    p.sampling.top_k = 0;
    p.sampling.min_p = 0.0f;
    p.sampling.repeat_penalty = 1.0f;
    if (auto m = b.find("model"); m != b.end() && !m->is_null()) {
        if (!m->is_string()) return bad("model", fmt::format("'model' must be a string, not {}", type_name(*m)));
        p.model = m->get<std::string>();
    }
    if (auto e = chat ? parse_messages(b, p) : parse_prompt(b, p)) return *e;

    int64_t i;
    bool present;
    // Float sampling fields: [lo, hi], and > 0 where 0 has no meaning (1 turns those off).
    struct FloatField {
        const char* key;
        double lo, hi;
        bool positive;
        float* out;
    };
    for (const FloatField& f : {FloatField{"temperature", 0, 2, false, &p.sampling.temperature},
                                FloatField{"top_p", 0, 1, true, &p.sampling.top_p},
                                FloatField{"min_p", 0, 1, false, &p.sampling.min_p},
                                FloatField{"repeat_penalty", 0, 10, true, &p.sampling.repeat_penalty}}) {
        double d = *f.out;
        if (auto e = number(b, f.key, f.lo, f.hi, d)) return *e;
        if (f.positive && d <= 0) return bad(f.key, fmt::format("'{}' must be greater than 0 (1 turns it off)", f.key));
        *f.out = static_cast<float>(d);
    }
    if (auto e = integer(b, "top_k", 0, 1 << 20, i, present)) return *e;
    if (present) p.sampling.top_k = static_cast<int32_t>(i);
    if (auto e = integer(b, "seed", INT64_MIN / 2, INT64_MAX / 2, i, present)) return *e;
    if (present) {
        p.sampling.seed = static_cast<uint64_t>(i);
        p.seeded = true;
    }
    const char* max_key = chat && b.contains("max_completion_tokens") && !b["max_completion_tokens"].is_null() ? "max_completion_tokens"
                                                                                                              : "max_tokens";
    if (auto e = integer(b, max_key, 1, 1 << 24, i, present)) return *e;
    if (present) p.max_tokens = static_cast<int>(i);
    if (auto e = integer(b, "n", 1, lim.max_n, i, present)) return *e;
    if (present) p.n = static_cast<int>(i);
    if (auto e = boolean(b, "stream", p.stream)) return *e;
    if (auto e = boolean(b, "ignore_eos", p.ignore_eos)) return *e;
    if (auto so = b.find("stream_options"); so != b.end() && !so->is_null()) {
        if (!so->is_object()) return bad("stream_options", "'stream_options' must be an object");
        if (!p.stream) return bad("stream_options", "'stream_options' is only allowed with 'stream': true");
        if (auto e = boolean(*so, "include_usage", p.include_usage)) return *e;
    }
    if (auto st = b.find("stop"); st != b.end() && !st->is_null()) {
        if (st->is_string()) {
            p.stop.push_back(st->get<std::string>());
        } else if (st->is_array()) {
            if (static_cast<int>(st->size()) > lim.max_stop) return bad("stop", fmt::format("'stop' may hold at most {} strings", lim.max_stop));
            for (const json& s : *st) {
                if (!s.is_string()) return bad("stop", fmt::format("'stop' entries must be strings, not {}", type_name(s)));
                p.stop.push_back(s.get<std::string>());
            }
        } else {
            return bad("stop", fmt::format("'stop' must be a string or an array of strings, not {}", type_name(*st)));
        }
    }
    // Known OpenAI parameters we do not implement: refuse non-default values by name.
    for (const char* key : {"presence_penalty", "frequency_penalty"}) {
        double v = 0;
        if (auto e = number(b, key, -2, 2, v)) return *e;
        if (v != 0) return bad(key, fmt::format("'{}' is not supported (use the repeat_penalty extension)", key));
    }
    bool flag = false;
    if (auto e = boolean(b, "echo", flag)) return *e;
    if (flag) return bad("echo", "'echo' is not supported");
    for (const char* key : {"logprobs", "top_logprobs", "suffix", "tools", "functions", "logit_bias", "response_format"}) {
        auto it = b.find(key);
        if (it == b.end() || it->is_null() || (it->is_boolean() && !it->get<bool>()) || (it->is_object() && it->empty() && std::string(key) == "logit_bias"))
            continue;
        if (std::string(key) == "response_format" && it->is_object()) {
            // Only {"type": "text"} (the default) is accepted; a "type" that is not a string must
            // not reach json::value(), which throws on a type mismatch.
            auto ty = it->find("type");
            if (ty != it->end() && ty->is_string() && ty->get<std::string>() == "text") continue;
        }
        return bad(key, fmt::format("'{}' is not supported by this server", key));
    }
    if (auto e = integer(b, "best_of", 1, lim.max_n, i, present)) return *e;
    if (present && i != p.n) return bad("best_of", "'best_of' other than n is not supported");
    if (Status s = p.sampling.validate(); !s) return bad("", s.message());
    return p;
}

}  // namespace pl::api
