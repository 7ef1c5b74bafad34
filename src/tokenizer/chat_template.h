// SPDX-License-Identifier: MIT
// Chat prompt formatting without a Jinja engine: the model's tokenizer.chat_template text is
// matched to a known family by characteristic substrings (as llama.cpp's llm_chat_detect_template
// does), and the family's format is applied in C++. The output contains special tokens as text
// ("<|im_start|>"), so encode it with parse_special = true. No BOS is added here; the tokenizer's
// add_bos rule supplies it.
#pragma once

#include "core/status.h"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pl {

struct ChatMessage {
    std::string role;     // "system", "user", "assistant" (others are passed through as text)
    std::string content;
};

// `template_text` is either the Jinja text from the GGUF or a family name to force one
// ("chatml", "llama2", "llama3", ...; see chat_template_names()). std::nullopt (the model has no
// template) means chatml, as in llama.cpp. An unrecognised template gives an error listing the
// known names. `add_assistant_prompt` appends the opening of an assistant turn.
Result<std::string> apply_chat_template(const std::optional<std::string>& template_text,
                                        std::span<const ChatMessage> msgs, bool add_assistant_prompt);

// The family a template text (or name) is detected as, e.g. "chatml"; std::nullopt if unknown.
std::optional<std::string> detect_chat_template(std::string_view template_text);

// Known family names, in a fixed order.
const std::vector<std::string>& chat_template_names();

}  // namespace pl
