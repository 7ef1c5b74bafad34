// SPDX-License-Identifier: MIT
#include "convert/hf_tokenizer.h"

#include "convert/llama_gguf.h"
#include "core/log.h"
#include "core/mmap_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>

namespace pl::convert {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

Result<json> read_json(const std::string& path) {
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    const char* p = reinterpret_cast<const char*>(map->data());
    json j = json::parse(p, p + map->size(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return err("{}: not valid JSON", path);
    if (!j.is_object()) return err("{}: top level is not a JSON object", path);
    return j;
}

// True when `node` (a normalizer / pre_tokenizer / decoder) or any member of a Sequence has `type`.
// Sequences nest at most a few levels in real files; deeper ones are not searched (a hostile
// tokenizer.json could otherwise nest far enough to overflow the stack).
bool has_component(const json& node, std::string_view type, const json** found = nullptr, int depth = 0) {
    if (!node.is_object() || depth > 32) return false;
    auto t = node.find("type");
    if (t != node.end() && t->is_string() && *t == type) {
        if (found) *found = &node;
        return true;
    }
    for (const char* key : {"normalizers", "pretokenizers", "decoders", "processors"}) {
        auto seq = node.find(key);
        if (seq != node.end() && seq->is_array())
            for (const auto& n : *seq)
                if (has_component(n, type, found, depth + 1)) return true;
    }
    return false;
}

// A special token in tokenizer_config.json is a string or {"content": "..."}.
std::optional<std::string> token_content(const json& cfg, const char* key) {
    auto it = cfg.find(key);
    if (it == cfg.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object()) {
        auto c = it->find("content");
        if (c != it->end() && c->is_string()) return c->get<std::string>();
    }
    return std::nullopt;
}

std::string infer_pre(const json& pre) {
    const json* split = nullptr;
    if (has_component(pre, "Split", &split)) {
        const json pat = split->value("pattern", json());
        std::string regex;
        if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) regex = pat["Regex"].get<std::string>();
        if (regex.find("(?i:'s|'t|'re|'ve|'m|'ll|'d)") != std::string::npos && regex.find("\\p{N}{1,3}") != std::string::npos)
            return "llama-bpe";
        PL_LOG_WARN("tokenizer.json: unrecognised pre-tokenizer split regex; writing tokenizer.ggml.pre=default");
        return "default";
    }
    const json* bl = nullptr;
    if (has_component(pre, "ByteLevel", &bl)) {
        auto r = bl->find("use_regex");
        if (r == bl->end() || (r->is_boolean() && r->get<bool>())) return "gpt2";
    }
    PL_LOG_WARN("tokenizer.json: unrecognised pre-tokenizer; writing tokenizer.ggml.pre=default");
    return "default";
}

Status set_tokenizer_impl(gguf::Writer& w, const std::string& dir, int64_t n_vocab, const json& config) {
    const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
    std::error_code ec;
    if (!fs::exists(tok_path, ec)) return err("{}: missing (only tokenizer.json vocabularies are supported)", tok_path);
    PL_ASSIGN_OR_RETURN(json tj, read_json(tok_path));
    json tc = json::object();
    const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
    if (fs::exists(cfg_path, ec)) {
        PL_ASSIGN_OR_RETURN(tc, read_json(cfg_path));
    }

    const json& model = tj["model"];
    if (!model.is_object() || !model.contains("type") || model["type"] != "BPE")
        return err("{}: model.type is {}, only BPE tokenizers are supported", tok_path,
                   model.is_object() && model.contains("type") ? model["type"].dump() : "missing");
    if (!model.contains("vocab") || !model["vocab"].is_object()) return err("{}: model.vocab is not an object", tok_path);
    const bool byte_fallback = model.value("byte_fallback", false);
    const bool byte_level = has_component(tj["pre_tokenizer"], "ByteLevel") || has_component(tj["decoder"], "ByteLevel");
    const bool spm = byte_fallback && !byte_level;
    if (!spm && !byte_level)
        return err("{}: BPE tokenizer is neither SentencePiece-style (byte_fallback) nor byte-level (ByteLevel "
                   "pre-tokenizer); cannot map it to a GGUF tokenizer", tok_path);

    // id -> token text
    std::map<int64_t, std::string> by_id;
    std::map<std::string, int64_t> id_of;
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
            return err("{}: vocab entry '{}' has a non-integer id", tok_path, it.key());
        const int64_t id = it.value().get<int64_t>();
        if (!by_id.emplace(id, it.key()).second) return err("{}: two vocab entries share id {}", tok_path, id);
        id_of[it.key()] = id;
    }
    std::map<int64_t, bool> added_special;  // id -> special
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
        for (const auto& a : tj["added_tokens"]) {
            if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
                return err("{}: malformed added_tokens entry {}", tok_path, a.dump());
            const int64_t id = a["id"].get<int64_t>();
            const std::string content = a["content"].get<std::string>();
            if (id < 0) return err("{}: added token '{}' has negative id", tok_path, content);
            auto [it, inserted] = by_id.emplace(id, content);
            if (!inserted && it->second != content)
                return err("{}: added token '{}' reuses id {} of '{}'", tok_path, content, id, it->second);
            id_of[content] = id;
            added_special[id] = a.value("special", false);
        }
    }
    if (by_id.empty()) return err("{}: empty vocabulary", tok_path);
    // Compare the largest id itself: ids come from the file and may be INT64_MAX, so id + 1 can overflow.
    const int64_t max_id = by_id.rbegin()->first;
    if (max_id >= n_vocab)
        return err("{}: tokenizer has ids up to {} but the model's embedding has only {} rows", tok_path, max_id,
                   n_vocab);

    // merges: "a b" strings (older files) or ["a", "b"] pairs (newer files).
    std::vector<std::string> merges;
    if (model.contains("merges") && model["merges"].is_array()) {
        for (const auto& m : model["merges"]) {
            if (m.is_string()) {
                merges.push_back(m.get<std::string>());
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
            } else {
                return err("{}: malformed merge {}", tok_path, m.dump());
            }
        }
    }

    std::optional<std::string> unk_piece;
    if (model.contains("unk_token") && model["unk_token"].is_string()) unk_piece = model["unk_token"].get<std::string>();

    std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
    std::vector<int32_t> types(static_cast<size_t>(n_vocab));
    std::vector<float> scores(static_cast<size_t>(n_vocab), 0.0f);
    // score by merge rank (SPM flavour): the merge "a b" produces the token "ab".
    std::map<std::string, size_t> merge_rank;
    if (spm) {
        for (size_t r = 0; r < merges.size(); ++r) {
            const auto sp = merges[r].find(' ');
            if (sp == std::string::npos) continue;
            std::string joined = merges[r].substr(0, sp) + merges[r].substr(sp + 1);
            merge_rank.emplace(std::move(joined), r);  // keeps the lowest rank
        }
    }
    for (int64_t id = 0; id < n_vocab; ++id) {
        auto it = by_id.find(id);
        const size_t i = static_cast<size_t>(id);
        if (it == by_id.end()) {
            tokens[i] = fmt::format("[PAD{}]", id);
            types[i] = static_cast<int32_t>(TokenType::Unused);
            scores[i] = -1000.0f;
            continue;
        }
        tokens[i] = it->second;
        TokenType t = TokenType::Normal;
        auto sp = added_special.find(id);
        if (sp != added_special.end()) {
            t = sp->second ? TokenType::Control : TokenType::UserDefined;
        } else if (spm && is_byte_piece(it->second)) {
            t = TokenType::Byte;
        }
        if (unk_piece && it->second == *unk_piece) t = TokenType::Unknown;
        types[i] = static_cast<int32_t>(t);
        if (spm && t == TokenType::Normal) {
            auto mr = merge_rank.find(it->second);
            scores[i] = mr != merge_rank.end() ? -static_cast<float>(mr->second)
                                               : -static_cast<float>(merges.size() + static_cast<size_t>(id));
        }
    }

    using gguf::Value;
    if (spm) {
        w.set("tokenizer.ggml.model", Value::make_string("llama"));
        w.set("tokenizer.ggml.pre", Value::make_string("default"));
    } else {
        w.set("tokenizer.ggml.model", Value::make_string("gpt2"));
        w.set("tokenizer.ggml.pre", Value::make_string(infer_pre(tj["pre_tokenizer"])));
    }
    w.set("tokenizer.ggml.tokens", Value::make_string_array(std::move(tokens)));
    if (spm) w.set("tokenizer.ggml.scores", Value::make_f32_array(scores));
    w.set("tokenizer.ggml.token_type", Value::make_i32_array(types));
    if (!spm || !merges.empty()) w.set("tokenizer.ggml.merges", Value::make_string_array(std::move(merges)));

    if (spm) {
        // SentencePiece adds "▁" before the text unless the tokenizer says otherwise.
        const json* pre = nullptr;
        bool prefix = has_component(tj["normalizer"], "Prepend");
        if (has_component(tj["pre_tokenizer"], "Metaspace", &pre)) {
            const std::string scheme = pre->value("prepend_scheme", std::string(pre->value("add_prefix_space", true) ? "always" : "never"));
            prefix = prefix || scheme != "never";
        }
        w.set("tokenizer.ggml.add_space_prefix", Value::make_bool(prefix));
    }

    // Special token ids: tokenizer_config.json names them by content; config.json has ids.
    auto set_id = [&](const char* cfg_key, const char* id_key, const char* gguf_key) -> Status {
        std::optional<int64_t> id;
        if (auto content = token_content(tc, cfg_key)) {
            auto f = id_of.find(*content);
            if (f == id_of.end())
                return err("{}: {} '{}' is not in the vocabulary", cfg_path, cfg_key, *content);
            id = f->second;
        } else if (config.contains(id_key) && config[id_key].is_number_integer()) {
            id = config[id_key].get<int64_t>();
        }
        if (!id) return Status::ok();
        if (*id < 0 || *id >= n_vocab) return err("{} = {} is outside the vocabulary of {}", gguf_key, *id, n_vocab);
        w.set(gguf_key, Value::make_u32(static_cast<uint32_t>(*id)));
        return Status::ok();
    };
    PL_TRY(set_id("bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"));
    PL_TRY(set_id("eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"));
    PL_TRY(set_id("unk_token", "unk_token_id", "tokenizer.ggml.unknown_token_id"));
    PL_TRY(set_id("pad_token", "pad_token_id", "tokenizer.ggml.padding_token_id"));

    // add_bos/add_eos: tokenizer_config.json, else the post_processor's template, else the
    // SentencePiece default (BOS yes, EOS no).
    std::optional<bool> add_bos, add_eos;
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) add_bos = tc["add_bos_token"].get<bool>();
    if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) add_eos = tc["add_eos_token"].get<bool>();
    const json* tp = nullptr;
    if (has_component(tj["post_processor"], "TemplateProcessing", &tp) && tp->contains("single") &&
        (*tp)["single"].is_array() && !(*tp)["single"].empty()) {
        const json& single = (*tp)["single"];
        const bool first_special = single.front().contains("SpecialToken");
        const bool last_special = single.back().contains("SpecialToken");
        if (!add_bos) add_bos = first_special;
        if (!add_eos) add_eos = last_special && single.size() > 1;
    }
    if (!add_bos && spm) add_bos = true;
    if (!add_eos && spm) add_eos = false;
    if (add_bos) w.set("tokenizer.ggml.add_bos_token", Value::make_bool(*add_bos));
    if (add_eos) w.set("tokenizer.ggml.add_eos_token", Value::make_bool(*add_eos));

    if (tc.contains("chat_template")) {
        const json& ct = tc["chat_template"];
        if (ct.is_string()) {
            w.set("tokenizer.chat_template", Value::make_string(ct.get<std::string>()));
        } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
            for (const auto& t : ct) {
                if (!t.is_object() || !t.contains("name") || !t.contains("template") || !t["template"].is_string())
                    continue;
                const std::string name = t["name"].is_string() ? t["name"].get<std::string>() : "";
                if (name == "default")
                    w.set("tokenizer.chat_template", Value::make_string(t["template"].get<std::string>()));
                else if (!name.empty())
                    w.set("tokenizer.chat_template." + name, Value::make_string(t["template"].get<std::string>()));
            }
        }
    }
    return Status::ok();
}

}  // namespace

Status set_hf_tokenizer(gguf::Writer& w, const std::string& dir, int64_t n_vocab, const nlohmann::json& config) {
    try {
        return set_tokenizer_impl(w, dir, n_vocab, config);
    } catch (const nlohmann::json::exception& e) {  // a field of an unexpected JSON type
        return err("{}: malformed tokenizer files: {}", dir, e.what());
    }
}

}  // namespace pl::convert
