// SPDX-License-Identifier: MIT
// Tokenizer::from_gguf: reads tokenizer.ggml.* (and tokenizer.chat_template) into a VocabSpec.
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace pl {
namespace {

const gguf::Value* find_array(const gguf::File& f, const std::string& key, gguf::ValueType elem, Status& st) {
    const gguf::Value* v = f.find(key);
    if (!v) return nullptr;
    if (v->type != gguf::ValueType::Array) {
        st = err("tokenizer: '{}' should be an array of {} but is {}", key, gguf::value_type_name(elem),
                 gguf::value_type_name(v->type));
        return nullptr;
    }
    return v;
}

Result<std::optional<std::vector<std::string>>> string_array(const gguf::File& f, const std::string& key) {
    Status st;
    const gguf::Value* v = find_array(f, key, gguf::ValueType::String, st);
    if (!st) return st;
    if (!v) return std::optional<std::vector<std::string>>();
    std::vector<std::string> out;
    out.reserve(v->arr.size());
    for (size_t i = 0; i < v->arr.size(); ++i) {
        if (v->arr[i].type != gguf::ValueType::String)
            return err("tokenizer: '{}'[{}] should be a string but is {}", key, i, gguf::value_type_name(v->arr[i].type));
        out.push_back(v->arr[i].s);
    }
    return std::optional(std::move(out));
}

Result<std::optional<int32_t>> token_id(const gguf::File& f, const std::string& key) {
    PL_ASSIGN_OR_RETURN(auto v, f.get_i64(key));
    if (!v) return std::optional<int32_t>();
    if (*v == -1 || *v == 0xFFFFFFFFll) return std::optional<int32_t>();  // "none" written as -1
    if (*v < 0 || *v > INT32_MAX) return err("tokenizer: '{}' = {} is not a valid token id", key, *v);
    return std::optional<int32_t>(static_cast<int32_t>(*v));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::File& file) {
    VocabSpec spec;
    PL_ASSIGN_OR_RETURN(auto model, file.get_string("tokenizer.ggml.model"));
    if (!model) return err("tokenizer: '{}' has no tokenizer.ggml.model key", file.path());
    spec.model = *model;
    PL_ASSIGN_OR_RETURN(auto pre, file.get_string("tokenizer.ggml.pre"));
    spec.pre = pre.value_or("default");

    PL_ASSIGN_OR_RETURN(auto tokens, string_array(file, "tokenizer.ggml.tokens"));
    if (!tokens) return err("tokenizer: '{}' has no tokenizer.ggml.tokens array", file.path());
    spec.tokens = std::move(*tokens);

    Status st;
    if (const gguf::Value* v = find_array(file, "tokenizer.ggml.scores", gguf::ValueType::F32, st)) {
        spec.scores.reserve(v->arr.size());
        for (size_t i = 0; i < v->arr.size(); ++i) {
            const gguf::Value& e = v->arr[i];
            if (!e.is_float() && !e.is_integer())
                return err("tokenizer: tokenizer.ggml.scores[{}] should be a number but is {}", i,
                           gguf::value_type_name(e.type));
            spec.scores.push_back(e.is_float() ? static_cast<float>(e.f) : static_cast<float>(e.i));
        }
    }
    PL_TRY(st);
    if (const gguf::Value* v = find_array(file, "tokenizer.ggml.token_type", gguf::ValueType::I32, st)) {
        spec.types.reserve(v->arr.size());
        for (size_t i = 0; i < v->arr.size(); ++i) {
            const gguf::Value& e = v->arr[i];
            if (!e.is_integer())
                return err("tokenizer: tokenizer.ggml.token_type[{}] should be an integer but is {}", i,
                           gguf::value_type_name(e.type));
            if (e.i < 0 || e.i > static_cast<int64_t>(TokenType::Byte))
                return err("tokenizer: token {} has unknown token type {} (known: 0..6)", i, e.i);
            spec.types.push_back(static_cast<TokenType>(e.i));
        }
    }
    PL_TRY(st);
    PL_ASSIGN_OR_RETURN(auto merges, string_array(file, "tokenizer.ggml.merges"));
    if (merges) spec.merges = std::move(*merges);

    PL_ASSIGN_OR_RETURN(spec.bos_id, token_id(file, "tokenizer.ggml.bos_token_id"));
    PL_ASSIGN_OR_RETURN(spec.eos_id, token_id(file, "tokenizer.ggml.eos_token_id"));
    PL_ASSIGN_OR_RETURN(spec.unk_id, token_id(file, "tokenizer.ggml.unknown_token_id"));
    PL_ASSIGN_OR_RETURN(spec.eot_id, token_id(file, "tokenizer.ggml.eot_token_id"));
    PL_ASSIGN_OR_RETURN(spec.eom_id, token_id(file, "tokenizer.ggml.eom_token_id"));
    PL_ASSIGN_OR_RETURN(spec.pad_id, token_id(file, "tokenizer.ggml.padding_token_id"));
    PL_ASSIGN_OR_RETURN(spec.add_bos, file.get_bool("tokenizer.ggml.add_bos_token"));
    PL_ASSIGN_OR_RETURN(spec.add_space_prefix, file.get_bool("tokenizer.ggml.add_space_prefix"));
    PL_ASSIGN_OR_RETURN(spec.chat_template, file.get_string("tokenizer.chat_template"));

    auto tok = from_vocab(std::move(spec));
    if (!tok) return tok.status().with_context(file.path());
    return tok;
}

}  // namespace pl
