// SPDX-License-Identifier: MIT
// Chat template families: detection by substring and formatting (see chat_template.h).
// Formats follow llama.cpp's llm_chat_apply_template for the same family names.
#include "tokenizer/chat_template.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pl {
namespace {

enum class Family {
    ChatML, Llama2, Llama2Sys, Llama2SysBos, Llama2SysStrip, MistralV1, MistralV3, MistralV3Tekken,
    MistralV7, Phi3, Zephyr, Gemma, Llama3, Vicuna, VicunaOrca, kCount
};

struct FamilyName {
    Family family;
    const char* name;
};
constexpr FamilyName kFamilies[] = {
    {Family::ChatML, "chatml"},
    {Family::Llama2, "llama2"},
    {Family::Llama2Sys, "llama2-sys"},
    {Family::Llama2SysBos, "llama2-sys-bos"},
    {Family::Llama2SysStrip, "llama2-sys-strip"},
    {Family::MistralV1, "mistral-v1"},
    {Family::MistralV3, "mistral-v3"},
    {Family::MistralV3Tekken, "mistral-v3-tekken"},
    {Family::MistralV7, "mistral-v7"},
    {Family::Phi3, "phi3"},
    {Family::Zephyr, "zephyr"},
    {Family::Gemma, "gemma"},
    {Family::Llama3, "llama3"},
    {Family::Vicuna, "vicuna"},
    {Family::VicunaOrca, "vicuna-orca"},
};
static_assert(std::size(kFamilies) == static_cast<size_t>(Family::kCount));

const char* family_name(Family f) { return kFamilies[static_cast<size_t>(f)].name; }

std::optional<Family> detect(std::string_view t) {
    for (const FamilyName& f : kFamilies)
        if (t == f.name) return f.family;
    auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
    if (has("<|im_start|>")) return Family::ChatML;
    if (t.substr(0, 7) == "mistral" || has("[INST]")) {
        if (has("[SYSTEM_PROMPT]")) return Family::MistralV7;
        if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
            if (has(" [INST]")) return Family::MistralV1;
            if (has("\"[INST]\"")) return Family::MistralV3Tekken;
            return Family::MistralV3;
        }
        if (has("content.strip()")) return Family::Llama2SysStrip;
        if (has("bos_token + '[INST]")) return Family::Llama2SysBos;
        if (has("<<SYS>>")) return Family::Llama2Sys;
        return Family::Llama2;
    }
    if (has("<|assistant|>") && has("<|end|>")) return Family::Phi3;
    if (has("<|user|>") && has("<|endoftext|>")) return Family::Zephyr;
    if (has("<start_of_turn>")) return Family::Gemma;
    if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? Family::VicunaOrca : Family::Vicuna;
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return Family::Llama3;
    return std::nullopt;
}

std::string trim(std::string_view s) {
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
    size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    return std::string(s.substr(b, e - b));
}

std::string format(Family fam, std::span<const ChatMessage> msgs, bool add_ass) {
    std::string o;
    switch (fam) {
        case Family::ChatML:
            for (const auto& m : msgs) o += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
            if (add_ass) o += "<|im_start|>assistant\n";
            break;
        case Family::Llama2:
        case Family::Llama2Sys:
        case Family::Llama2SysBos:
        case Family::Llama2SysStrip: {
            // "[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST]answer</s>[INST] ..."; the first BOS
            // comes from the tokenizer.
            const bool sys_block = fam != Family::Llama2;
            const bool bos_inside = fam == Family::Llama2SysBos;
            const bool strip = fam == Family::Llama2SysStrip;
            bool in_turn = true;
            o += "[INST] ";
            for (const auto& m : msgs) {
                const std::string content = strip ? trim(m.content) : m.content;
                if (!in_turn) {
                    in_turn = true;
                    o += bos_inside ? "<s>[INST] " : "[INST] ";
                }
                if (m.role == "system") {
                    o += sys_block ? fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n", content) : content + "\n";
                } else if (m.role == "user") {
                    o += content + " [/INST]";
                } else {
                    o += content + "</s>";
                    in_turn = false;
                }
            }
            break;
        }
        case Family::MistralV1:
        case Family::MistralV3:
        case Family::MistralV3Tekken: {
            const std::string lead = fam == Family::MistralV1 ? " " : "";
            const std::string trail = fam == Family::MistralV3Tekken ? "" : " ";
            const bool trim_answer = fam == Family::MistralV3;
            bool in_turn = false;
            for (const auto& m : msgs) {
                if (!in_turn) {
                    o += lead + "[INST]" + trail;
                    in_turn = true;
                }
                if (m.role == "system") {
                    o += m.content + "\n\n";
                } else if (m.role == "user") {
                    o += m.content + lead + "[/INST]";
                } else {
                    o += trail + (trim_answer ? trim(m.content) : m.content) + "</s>";
                    in_turn = false;
                }
            }
            break;
        }
        case Family::MistralV7:
            for (const auto& m : msgs) {
                if (m.role == "system") {
                    o += "[SYSTEM_PROMPT] " + m.content + "[/SYSTEM_PROMPT]";
                } else if (m.role == "user") {
                    o += "[INST] " + m.content + "[/INST]";
                } else {
                    o += " " + m.content + "</s>";
                }
            }
            break;
        case Family::Phi3:
            for (const auto& m : msgs) o += fmt::format("<|{}|>\n{}<|end|>\n", m.role, m.content);
            if (add_ass) o += "<|assistant|>\n";
            break;
        case Family::Zephyr:
            for (const auto& m : msgs) o += fmt::format("<|{}|>\n{}<|endoftext|>\n", m.role, m.content);
            if (add_ass) o += "<|assistant|>\n";
            break;
        case Family::Gemma: {
            // No system role: its text is prepended to the next user turn.
            std::string system;
            for (const auto& m : msgs) {
                if (m.role == "system") {
                    system += trim(m.content);
                    continue;
                }
                const std::string role = m.role == "assistant" ? "model" : m.role;
                o += "<start_of_turn>" + role + "\n";
                if (!system.empty() && role != "model") {
                    o += system + "\n\n";
                    system.clear();
                }
                o += trim(m.content) + "<end_of_turn>\n";
            }
            if (add_ass) o += "<start_of_turn>model\n";
            break;
        }
        case Family::Llama3:
            for (const auto& m : msgs)
                o += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", m.role, trim(m.content));
            if (add_ass) o += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        case Family::Vicuna:
        case Family::VicunaOrca:
            for (const auto& m : msgs) {
                if (m.role == "system") {
                    o += fam == Family::VicunaOrca ? "SYSTEM: " + m.content + "\n" : m.content + "\n\n";
                } else if (m.role == "user") {
                    o += "USER: " + m.content + "\n";
                } else if (m.role == "assistant") {
                    o += "ASSISTANT: " + m.content + "</s>\n";
                }
            }
            if (add_ass) o += "ASSISTANT:";
            break;
        case Family::kCount: break;
    }
    return o;
}

}  // namespace

const std::vector<std::string>& chat_template_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const FamilyName& f : kFamilies) v.emplace_back(f.name);
        return v;
    }();
    return names;
}

std::optional<std::string> detect_chat_template(std::string_view template_text) {
    auto f = detect(template_text);
    if (!f) return std::nullopt;
    return std::string(family_name(*f));
}

Result<std::string> apply_chat_template(const std::optional<std::string>& template_text,
                                        std::span<const ChatMessage> msgs, bool add_assistant_prompt) {
    Family fam = Family::ChatML;
    if (template_text) {
        auto f = detect(*template_text);
        if (!f) {
            // At most 60 bytes, cut before a UTF-8 continuation byte so the message stays valid text.
            size_t cut = std::min<size_t>(template_text->size(), 60);
            while (cut > 0 && cut < template_text->size() && (static_cast<uint8_t>((*template_text)[cut]) & 0xC0) == 0x80) --cut;
            const std::string shown = cut < template_text->size() ? template_text->substr(0, cut) + "..." : *template_text;
            return err("unknown chat template '{}': not one of the known families ({}) and no known markers found",
                       shown, fmt::join(chat_template_names(), ", "));
        }
        fam = *f;
    }
    return format(fam, msgs, add_assistant_prompt);
}

}  // namespace pl
