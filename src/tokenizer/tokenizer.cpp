// SPDX-License-Identifier: MIT
// Tokenizer base: validation and construction from a VocabSpec, special-token partitioning,
// decode, and StreamDecoder.
#include "tokenizer/tokenizer.h"

#include "core/log.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer_impl.h"

#include <algorithm>

namespace pl {

namespace {

bool is_special_type(TokenType t) {
    return t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
}

Status check_id(const char* what, const std::optional<int32_t>& id, size_t n_vocab) {
    if (id && (*id < 0 || static_cast<size_t>(*id) >= n_vocab))
        return err("tokenizer: {} = {} is out of range (vocabulary has {} tokens)", what, *id, n_vocab);
    return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_vocab(VocabSpec spec) {
    const size_t n = spec.tokens.size();
    if (n == 0) return err("tokenizer: the vocabulary is empty");
    if (n > static_cast<size_t>(INT32_MAX)) return err("tokenizer: vocabulary of {} tokens is too large", n);
    if (!spec.scores.empty() && spec.scores.size() != n)
        return err("tokenizer: {} scores for {} tokens", spec.scores.size(), n);
    if (!spec.types.empty() && spec.types.size() != n)
        return err("tokenizer: {} token types for {} tokens", spec.types.size(), n);
    for (size_t i = 0; i < spec.types.size(); ++i) {
        const auto t = static_cast<int32_t>(spec.types[i]);
        if (t < 0 || t > static_cast<int32_t>(TokenType::Byte))
            return err("tokenizer: token {} ('{}') has unknown token type {}", i, spec.tokens[i], t);
    }
    PL_TRY(check_id("bos_token_id", spec.bos_id, n));
    PL_TRY(check_id("eos_token_id", spec.eos_id, n));
    PL_TRY(check_id("unknown_token_id", spec.unk_id, n));
    PL_TRY(check_id("eot_token_id", spec.eot_id, n));
    PL_TRY(check_id("eom_token_id", spec.eom_id, n));
    PL_TRY(check_id("padding_token_id", spec.pad_id, n));
    if (spec.model == "llama") return tok::make_spm(std::move(spec));
    if (spec.model == "gpt2") return tok::make_bpe(std::move(spec));
    return err("tokenizer: unsupported tokenizer.ggml.model '{}' (supported: llama, gpt2)", spec.model);
}

TokenType Tokenizer::token_type(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return TokenType::Undefined;
    return types_[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
    auto it = token_ids_.find(std::string(text));
    if (it == token_ids_.end()) return std::nullopt;
    return it->second;
}

bool Tokenizer::is_eog(int32_t id) const {
    return id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::string Tokenizer::render_token(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return {};
    const TokenType t = types_[static_cast<size_t>(id)];
    if (t == TokenType::Control || t == TokenType::Unknown) return tokens_[static_cast<size_t>(id)];
    return token_to_piece(id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
    std::string out;
    const bool strip = kind() == "spm" && add_space_prefix_;
    bool at_start = true;
    for (int32_t id : ids) {
        std::string piece = token_to_piece(id);
        if (piece.empty()) continue;
        if (at_start && strip && piece[0] == ' ') piece.erase(0, 1);
        at_start = false;
        out += piece;
    }
    return out;
}

namespace tok {

void TokenizerCommon::init_common(VocabSpec& spec) {
    const size_t n = spec.tokens.size();
    tokens_ = std::move(spec.tokens);
    types_ = spec.types.empty() ? std::vector<TokenType>(n, TokenType::Normal) : std::move(spec.types);
    token_ids_.reserve(n);
    for (size_t i = 0; i < n; ++i) token_ids_[tokens_[i]] = static_cast<int32_t>(i);
    bos_id_ = spec.bos_id.value_or(-1);
    eos_id_ = spec.eos_id.value_or(-1);
    unk_id_ = spec.unk_id.value_or(-1);
    chat_template_ = std::move(spec.chat_template);

    for (size_t i = 0; i < n; ++i)
        if (is_special_type(types_[i]) && !tokens_[i].empty()) special_ids_.push_back(static_cast<int32_t>(i));
    std::stable_sort(special_ids_.begin(), special_ids_.end(), [&](int32_t a, int32_t b) {
        return tokens_[static_cast<size_t>(a)].size() > tokens_[static_cast<size_t>(b)].size();
    });

    // End of generation: EOS, EOT, EOM, and the well-known end-of-turn texts when they are special.
    auto add_eog = [&](int32_t id) {
        if (id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) == eog_ids_.end()) eog_ids_.push_back(id);
    };
    add_eog(eos_id_);
    add_eog(spec.eot_id.value_or(-1));
    add_eog(spec.eom_id.value_or(-1));
    static constexpr std::string_view kEogTexts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "<|EOT|>",
    };
    for (std::string_view t : kEogTexts) {
        auto it = token_ids_.find(std::string(t));
        if (it != token_ids_.end() && is_special_type(types_[static_cast<size_t>(it->second)])) add_eog(it->second);
    }
}

std::vector<Fragment> TokenizerCommon::partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});
    for (int32_t id : special_ids_) {
        const TokenType t = types_[static_cast<size_t>(id)];
        if (!parse_special && t != TokenType::UserDefined) continue;
        const std::string& st = tokens_[static_cast<size_t>(id)];
        std::vector<Fragment> next;
        next.reserve(frags.size());
        bool changed = false;
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t pos = f.begin;
            while (pos < f.end) {
                const size_t hit = text.substr(0, f.end).find(st, pos);
                if (hit == std::string_view::npos) break;
                if (hit > pos) next.push_back({-1, pos, hit});
                next.push_back({id, hit, hit + st.size()});
                pos = hit + st.size();
                changed = true;
            }
            if (pos < f.end) next.push_back({-1, pos, f.end});
        }
        if (changed) frags = std::move(next);
    }
    return frags;
}

}  // namespace tok

// ---------------------------------------------------------------------------------------------
// StreamDecoder

namespace {

// Length of the longest prefix of s[pos..] that could still become a valid sequence (0: the byte
// at pos can never start a valid sequence), and whether it is complete.
struct SeqCheck {
    size_t len;
    bool complete;
};

SeqCheck check_seq(std::string_view s, size_t pos) {
    const auto b0 = static_cast<uint8_t>(s[pos]);
    const int n = utf8::seq_len(b0);
    if (n == 0) return {0, false};
    if (n == 1) return {1, true};
    size_t k = 1;
    for (; k < static_cast<size_t>(n) && pos + k < s.size(); ++k) {
        const auto b = static_cast<uint8_t>(s[pos + k]);
        if ((b & 0xC0) != 0x80) return {0, false};
        // Second-byte restrictions that rule out overlongs, surrogates and > U+10FFFF early.
        if (k == 1) {
            if (b0 == 0xE0 && b < 0xA0) return {0, false};
            if (b0 == 0xED && b > 0x9F) return {0, false};
            if (b0 == 0xF0 && b < 0x90) return {0, false};
            if (b0 == 0xF4 && b > 0x8F) return {0, false};
        }
    }
    return {k, k == static_cast<size_t>(n)};
}

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string StreamDecoder::push(int32_t id) {
    std::string piece = tok_.token_to_piece(id);
    if (first_) {
        if (id == tok_.bos_id() && tok_.bos_id() >= 0) {
            strip_space_ = true;  // a whole sequence: drop the SPM prefix space like decode()
            return {};
        }
        if (piece.empty()) return {};
        first_ = false;
        if (strip_space_ && tok_.kind() == "spm" && tok_.add_space_prefix() && piece[0] == ' ') piece.erase(0, 1);
    }
    pending_ += piece;
    std::string out;
    size_t pos = 0;
    while (pos < pending_.size()) {
        const SeqCheck c = check_seq(pending_, pos);
        if (c.len == 0) {
            out += kReplacement;
            ++pos;
        } else if (c.complete) {
            out.append(pending_, pos, c.len);
            pos += c.len;
        } else {
            break;  // an unfinished sequence at the end: wait for more bytes
        }
    }
    pending_.erase(0, pos);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    if (!pending_.empty()) out = kReplacement;
    pending_.clear();
    return out;
}

}  // namespace pl
