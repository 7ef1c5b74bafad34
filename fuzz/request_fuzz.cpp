// SPDX-License-Identifier: MIT
// libFuzzer target for what `parallama serve` does with a request body before any token is
// generated: JSON parse (as http_server.cpp does, without exceptions), parse_request for both
// endpoints, error_body, and apply_chat_template on the messages for every known family and for
// the input itself used as a template text. Any crash, sanitizer report, escaped exception or
// broken invariant is a bug in src/serve/openai_api.cpp or src/tokenizer/chat_template.cpp.
#include "serve/openai_api.h"
#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "request_fuzz: invariant broken: %s\n", what);
    std::abort();
}

void check_params(const pl::api::GenParams& p, bool chat, const pl::api::Limits& lim) {
    if (p.chat != chat) fail("chat flag");
    if (chat && p.messages.empty()) fail("chat request without messages");
    if (!chat && !p.prompt_is_ids && p.prompt_text.empty()) fail("empty text prompt accepted");
    if (!chat && p.prompt_is_ids && p.prompt_ids.empty()) fail("empty id prompt accepted");
    for (int32_t id : p.prompt_ids)
        if (id < 0) fail("negative prompt id");
    if (p.n < 1 || p.n > lim.max_n) fail("n out of range");
    if (static_cast<int>(p.stop.size()) > lim.max_stop) fail("too many stop strings");
    if (p.max_tokens && *p.max_tokens < 1) fail("max_tokens < 1");
    if (!p.sampling.validate()) fail("accepted sampling parameters that do not validate");
    if (p.include_usage && !p.stream) fail("include_usage without stream");
}

void run_templates(const std::vector<pl::ChatMessage>& msgs, std::string_view raw) {
    for (const std::string& name : pl::chat_template_names()) {
        for (bool add_ass : {false, true}) {
            auto r = pl::apply_chat_template(name, msgs, add_ass);
            if (!r) fail("a known family name was refused");
            if (pl::detect_chat_template(name) != name) fail("family name not detected as itself");
        }
    }
    if (!pl::apply_chat_template(std::nullopt, msgs, true)) fail("no template (chatml) refused");
    // The input as a model's Jinja text: detection must either pick a family or explain itself.
    const std::string tmpl(raw);
    auto r = pl::apply_chat_template(tmpl, msgs, true);
    if (!r && r.error_message().empty()) fail("template error without a message");
    if (r.has_value() != pl::detect_chat_template(tmpl).has_value()) fail("apply and detect disagree");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    nlohmann::json body = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
        // Not JSON: still a template text to detect (chat_template comes from untrusted GGUFs).
        std::vector<pl::ChatMessage> msgs{{"system", "s"}, {"user", std::string(raw)}, {"assistant", "a"}};
        run_templates(msgs, raw);
        return 0;
    }
    const pl::api::Limits lim{4, 4};
    for (bool chat : {false, true}) {
        auto parsed = pl::api::parse_request(body, chat, lim);
        if (auto* e = std::get_if<pl::api::ApiError>(&parsed)) {
            if (e->message.empty()) fail("error without a message");
            if (e->status < 400 || e->status > 599) fail("error status");
            // What the server sends (http_server.cpp json_text).
            (void)pl::api::error_body(*e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            continue;
        }
        const auto& p = std::get<pl::api::GenParams>(parsed);
        check_params(p, chat, lim);
        if (chat) run_templates(p.messages, raw.substr(0, 256));
    }
    return 0;
}
