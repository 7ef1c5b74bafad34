// SPDX-License-Identifier: MIT
// Chat templates: family detection from real-world Jinja snippets, forcing by name, and the exact
// prompt text of every family (strings as llama.cpp's llm_chat_apply_template produces them).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using pl::ChatMessage;

namespace {

const std::vector<ChatMessage> kConv = {
    {"system", "You are helpful."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
};

std::string apply(const std::string& tmpl, bool add_ass = true, const std::vector<ChatMessage>& msgs = kConv) {
    auto r = pl::apply_chat_template(tmpl, msgs, add_ass);
    EXPECT_TRUE(r.has_value()) << r.error_message();
    return r.has_value() ? *r : std::string();
}

std::string detect(const std::string& t) { return pl::detect_chat_template(t).value_or("?"); }

TEST(ChatTemplate, DetectsFamiliesFromJinja) {
    // SmolLM2 / Qwen style.
    EXPECT_EQ(detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                     "'<|im_end|>' + '\\n'}}{% endfor %}"),
              "chatml");
    EXPECT_EQ(detect("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                     "message['content'] + ' [/INST]' }}{% endif %}{% endfor %}"),
              "llama2");
    EXPECT_EQ(detect("{% if messages[0]['role'] == 'system' %}{{ '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}"
                     "{% endif %}[INST]"),
              "llama2-sys");
    EXPECT_EQ(detect("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }} <<SYS>>"), "llama2-sys-strip");
    EXPECT_EQ(detect("{{ bos_token + '[INST] ' }} <<SYS>>"), "llama2-sys-bos");
    EXPECT_EQ(detect("{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + '[/INST]' }}"
                     "{%- elif %}[AVAILABLE_TOOLS]"),
              "mistral-v3");
    EXPECT_EQ(detect("{{ ' [INST] ' + system_message }}"), "mistral-v1");
    EXPECT_EQ(detect("[SYSTEM_PROMPT]{{ x }}[/SYSTEM_PROMPT][INST]"), "mistral-v7");
    EXPECT_EQ(detect("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
                     "message['content'] | trim + '<|eot_id|>' %}"),
              "llama3");
    EXPECT_EQ(detect("{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + "
                     "'<|end|>\\n' }}{% endfor %}{{ '<|assistant|>\\n' }}"),
              "phi3");
    EXPECT_EQ(detect("{% for message in messages %}{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}"
                     "{% endfor %}"),
              "zephyr");
    EXPECT_EQ(detect("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"),
              "gemma");
    EXPECT_EQ(detect("{{ 'USER: ' + content }}{{ 'ASSISTANT: ' }}"), "vicuna");
    EXPECT_EQ(detect("{{ 'SYSTEM: ' }}{{ 'USER: ' + content }}{{ 'ASSISTANT: ' }}"), "vicuna-orca");
    EXPECT_EQ(detect("{{ messages }}"), "?");
}

TEST(ChatTemplate, ForcedByName) {
    for (const auto& name : pl::chat_template_names()) EXPECT_EQ(detect(name), name);
}

TEST(ChatTemplate, NoTemplateMeansChatml) {
    auto r = pl::apply_chat_template(std::nullopt, kConv, true);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, apply("chatml"));
}

// The error quotes at most 60 bytes of the template, cut before a UTF-8 continuation byte (a cut
// inside "é" used to leave half a character in the message).
TEST(ChatTemplate, UnknownTemplateIsQuotedWithoutSplittingACharacter) {
    const std::string t = std::string(59, 'x') + "\xC3\xA9" + "{{ more }}";
    auto r = pl::apply_chat_template(t, kConv, true);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("'" + std::string(59, 'x') + "...'"), std::string::npos) << r.error_message();
    EXPECT_EQ(r.error_message().find('\xC3'), std::string::npos);
}

TEST(ChatTemplate, UnknownTemplateListsKnownNames) {
    auto r = pl::apply_chat_template(std::string("{{ weird }}"), kConv, true);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("unknown chat template"), std::string::npos);
    EXPECT_NE(r.error_message().find("chatml, llama2"), std::string::npos) << r.error_message();
    EXPECT_NE(r.error_message().find("llama3"), std::string::npos);
}

TEST(ChatTemplate, Chatml) {
    EXPECT_EQ(apply("chatml"),
              "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
              "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
              "<|im_start|>assistant\n");
    EXPECT_EQ(apply("chatml", false, {{"user", "x"}}), "<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplate, Llama2Variants) {
    EXPECT_EQ(apply("llama2"), "[INST] You are helpful.\nHello [/INST]Hi there</s>[INST] Who are you [/INST]");
    EXPECT_EQ(apply("llama2-sys"),
              "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]");
    EXPECT_EQ(apply("llama2-sys-bos"),
              "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you [/INST]");
    EXPECT_EQ(apply("llama2-sys-strip", true, {{"user", "  padded  "}}), "[INST] padded [/INST]");
}

TEST(ChatTemplate, MistralVariants) {
    EXPECT_EQ(apply("mistral-v1"),
              " [INST] You are helpful.\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]");
    EXPECT_EQ(apply("mistral-v3"), "[INST] You are helpful.\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST]");
    EXPECT_EQ(apply("mistral-v3-tekken"), "[INST]You are helpful.\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]");
    EXPECT_EQ(apply("mistral-v7"),
              "[SYSTEM_PROMPT] You are helpful.[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST]");
}

TEST(ChatTemplate, Llama3) {
    EXPECT_EQ(apply("llama3"),
              "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, ZephyrPhi3Gemma) {
    EXPECT_EQ(apply("zephyr"),
              "<|system|>\nYou are helpful.<|endoftext|>\n<|user|>\nHello<|endoftext|>\n"
              "<|assistant|>\nHi there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n");
    EXPECT_EQ(apply("phi3"),
              "<|system|>\nYou are helpful.<|end|>\n<|user|>\nHello<|end|>\n"
              "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n");
    EXPECT_EQ(apply("gemma"),
              "<start_of_turn>user\nYou are helpful.\n\nHello<end_of_turn>\n"
              "<start_of_turn>model\nHi there<end_of_turn>\n"
              "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Vicuna) {
    EXPECT_EQ(apply("vicuna"), "You are helpful.\n\nUSER: Hello\nASSISTANT: Hi there</s>\nUSER: Who are you\nASSISTANT:");
    EXPECT_EQ(apply("vicuna-orca"),
              "SYSTEM: You are helpful.\nUSER: Hello\nASSISTANT: Hi there</s>\nUSER: Who are you\nASSISTANT:");
}

}  // namespace
