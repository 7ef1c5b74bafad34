// SPDX-License-Identifier: MIT
// Tokenizers read from GGUF metadata (tokenizer.ggml.*):
//  - model "llama": SentencePiece-style BPE over scores, "▁" for spaces, the leading-space rule
//    (add_space_prefix, default true), byte fallback through <0xXX> tokens.
//  - model "gpt2": byte-level BPE over tokenizer.ggml.merges, with the pre-tokenizer regexes named
//    by tokenizer.ggml.pre (default/gpt2, llama3/llama-bpe, smollm).
// Special (control) tokens are recognised in the input text only when parse_special is true.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pl {
namespace gguf { class File; }

enum class TokenType : int32_t {  // tokenizer.ggml.token_type values
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Fails with a message naming the missing/malformed key or the unsupported model/pre type.
    static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::File& file);

    // Token ids for `text`; a BOS id first when add_bos (and the vocab has one).
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special = false) const = 0;
    // The bytes one token stands for in output text (byte tokens become their byte, "▁" a space,
    // byte-level BPE symbols their bytes; control tokens give ""). May be a partial UTF-8 sequence.
    virtual std::string token_to_piece(int32_t id) const = 0;
    // Whole-sequence decode; drops the leading space the SPM prefix rule added after BOS, so that
    // decode(encode(s)) == s.
    std::string decode(std::span<const int32_t> ids) const;

    int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
    const std::string& token_text(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
    TokenType token_type(int32_t id) const;
    std::optional<int32_t> find_token(std::string_view text) const;
    int32_t bos_id() const { return bos_id_; }   // -1 when none
    int32_t eos_id() const { return eos_id_; }   // -1 when none
    bool add_bos_default() const { return add_bos_; }
    // End-of-generation: EOS, EOT/<|eot_id|>/<|im_end|>/<|end|> style tokens.
    bool is_eog(int32_t id) const;
    const std::optional<std::string>& chat_template() const { return chat_template_; }
    virtual std::string_view kind() const = 0;  // "spm" or "bpe"

protected:
    std::vector<std::string> tokens_;
    std::vector<TokenType> types_;
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    bool add_bos_ = true;
    bool add_space_prefix_ = true;
    std::vector<int32_t> eog_ids_;
    std::optional<std::string> chat_template_;
};

// Streams token pieces as text: buffers an incomplete UTF-8 sequence across tokens and emits it
// once complete, so every returned string is valid UTF-8 (invalid bytes are emitted as U+FFFD at
// flush()).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
    std::string push(int32_t id);
    std::string flush();

private:
    const Tokenizer& tok_;
    std::string pending_;
    bool first_ = true;
};

}  // namespace pl
