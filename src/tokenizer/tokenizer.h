// SPDX-License-Identifier: MIT
// Tokenizers read from GGUF metadata (tokenizer.ggml.*):
//  - model "llama": SentencePiece-style BPE over scores, "▁" for spaces, the leading-space rule
//    (add_space_prefix, default true), byte fallback through <0xXX> tokens.
//  - model "gpt2": byte-level BPE over tokenizer.ggml.merges, with the pre-tokenizer regexes named
//    by tokenizer.ggml.pre (default/gpt2, llama3/llama-bpe, smollm).
// Special (control) tokens are recognised in the input text only when parse_special is true;
// user-defined tokens (added vocabulary, type UserDefined) are always recognised, as in llama.cpp
// and HF tokenizers. Encoding is const and thread-safe. See docs/tokenizers.md.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pl {
namespace gguf { class File; }

enum class TokenType : int32_t {  // tokenizer.ggml.token_type values
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// Everything a tokenizer is built from (what from_gguf reads from tokenizer.ggml.*). Tests and
// other formats can build one directly and call Tokenizer::from_vocab.
struct VocabSpec {
    std::string model;                    // "llama" (SPM) or "gpt2" (byte-level BPE)
    std::string pre = "default";          // gpt2 only: default, gpt2, llama3/llama-bpe, smollm, ...
    std::vector<std::string> tokens;      // (n_vocab)
    std::vector<float> scores;            // (n_vocab) or empty (all 0); SPM merge priority
    std::vector<TokenType> types;         // (n_vocab) or empty (all Normal)
    std::vector<std::string> merges;      // gpt2: "left right", highest priority first
    std::optional<int32_t> bos_id, eos_id, unk_id, eot_id, eom_id, pad_id;
    std::optional<bool> add_bos;          // default: true for llama and llama3, else false
    std::optional<bool> add_space_prefix; // default: true for llama, false for gpt2
    std::optional<std::string> chat_template;
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Fails with a message naming the missing/malformed key or the unsupported model/pre type.
    static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::File& file);
    // Validates `spec` (sizes, ids in range, known model/pre, parsable merges) and builds.
    static Result<std::unique_ptr<Tokenizer>> from_vocab(VocabSpec spec);

    // Token ids for `text`; a BOS id first when add_bos (and the vocab has one).
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const = 0;
    // The bytes one token stands for in output text (byte tokens become their byte, "▁" a space,
    // byte-level BPE symbols their bytes; control tokens give ""). May be a partial UTF-8 sequence.
    virtual std::string token_to_piece(int32_t id) const = 0;
    // Like token_to_piece, but control/unknown tokens show their text ("<|im_start|>", "<s>").
    std::string render_token(int32_t id) const;
    // Whole-sequence decode; drops the leading space the SPM prefix rule added after BOS, so that
    // decode(encode(s)) == s.
    std::string decode(std::span<const int32_t> ids) const;

    int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
    const std::string& token_text(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
    TokenType token_type(int32_t id) const;
    std::optional<int32_t> find_token(std::string_view text) const;
    int32_t bos_id() const { return bos_id_; }   // -1 when none
    int32_t eos_id() const { return eos_id_; }   // -1 when none
    int32_t unk_id() const { return unk_id_; }   // -1 when none
    bool add_bos_default() const { return add_bos_; }
    bool add_space_prefix() const { return add_space_prefix_; }  // SPM leading-space rule
    // End-of-generation: EOS, EOT/<|eot_id|>/<|im_end|>/<|end|> style tokens.
    bool is_eog(int32_t id) const;
    const std::optional<std::string>& chat_template() const { return chat_template_; }
    virtual std::string_view kind() const = 0;  // "spm" or "bpe"

protected:
    std::vector<std::string> tokens_;
    std::vector<TokenType> types_;
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    int32_t unk_id_ = -1;
    bool add_bos_ = true;
    bool add_space_prefix_ = true;
    std::vector<int32_t> eog_ids_;
    std::unordered_map<std::string, int32_t> token_ids_;  // text -> id (the last id on duplicates)
    std::optional<std::string> chat_template_;
};

// Streams token pieces as text: buffers an incomplete UTF-8 sequence across tokens and emits it
// once complete, so every returned string is valid UTF-8 (bytes that can never complete a
// sequence become U+FFFD as soon as that is known; an unfinished tail becomes U+FFFD at flush()).
// When the first token pushed is BOS (a whole sequence from encode(..., add_bos=true)) the SPM
// prefix space is dropped as decode() does; a stream of generated tokens keeps every space.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
    std::string push(int32_t id);
    std::string flush();

private:
    const Tokenizer& tok_;
    std::string pending_;
    bool first_ = true;
    bool strip_space_ = false;  // the stream began with BOS
};

}  // namespace pl
