// SPDX-License-Identifier: MIT
// Internals shared by the SPM and BPE tokenizers (not part of the public tokenizer API).
#pragma once

#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pl::tok {

// A piece of the input: either raw text [begin, end) or one special token recognised in it.
struct Fragment {
    int32_t token = -1;  // >= 0: a special token; -1: raw text
    size_t begin = 0;
    size_t end = 0;
};

// Common state and helpers; SpmTokenizer and BpeTokenizer derive from this.
class TokenizerCommon : public Tokenizer {
public:
    // Fills the base fields from an already validated spec (moves tokens out of it).
    void init_common(VocabSpec& spec);

    // Splits `text` at special tokens (longest first, as llama.cpp's tokenizer_st_partition):
    // control and unknown tokens only when parse_special, user-defined tokens always.
    std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

    std::optional<int32_t> lookup(std::string_view text) const {
        auto it = token_ids_.find(std::string(text));
        if (it == token_ids_.end()) return std::nullopt;
        return it->second;
    }

protected:
    std::vector<int32_t> special_ids_;  // Control/UserDefined/Unknown, longest text first
};

// Length of the UTF-8 sequence a byte starts, as llama.cpp's unicode_len_utf8 counts it
// (continuation and invalid lead bytes count as 1, so any byte string splits into "chars").
inline size_t char_len(uint8_t lead) {
    static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[lead >> 4];
}

Result<std::unique_ptr<Tokenizer>> make_spm(VocabSpec spec);
Result<std::unique_ptr<Tokenizer>> make_bpe(VocabSpec spec);

// Pre-tokenizer: an ordered list of PCRE2 regexes applied as llama.cpp's unicode_regex_split does:
// each regex splits every piece produced by the previous one into matches and the unmatched spans
// between them (both kept), never looking across piece boundaries.
class RegexSplitter {
public:
    static Result<std::unique_ptr<RegexSplitter>> create(const std::vector<std::string>& patterns);
    ~RegexSplitter();
    RegexSplitter(const RegexSplitter&) = delete;
    RegexSplitter& operator=(const RegexSplitter&) = delete;

    // Appends the pieces of text[begin, end) as (begin, end) offsets into `text`.
    void split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const;

private:
    RegexSplitter() = default;
    std::vector<void*> codes_;  // pcre2_code_8*
};

// The regex list llama.cpp uses for a tokenizer.ggml.pre name, plus whether that pre-tokenizer
// ignores merges for whole words found in the vocab (llama3). Empty optional: unknown name.
struct PreTokenizerDef {
    std::vector<std::string> patterns;
    bool ignore_merges = false;
    bool add_bos = false;
};
std::optional<PreTokenizerDef> pre_tokenizer_def(std::string_view name);
std::string known_pre_tokenizers();  // "default, gpt2, ..." for error messages

// GPT-2 byte-level mapping: byte -> the UTF-8 of its stand-in code point, and back.
const std::string& byte_to_unicode(uint8_t b);
int unicode_to_byte(uint32_t cp);  // -1 when cp is not a stand-in

}  // namespace pl::tok
