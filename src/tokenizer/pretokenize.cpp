// SPDX-License-Identifier: MIT
// Regex pre-tokenizers for byte-level BPE (PCRE2 with UTF + UCP so \p{L}, \p{N} and \s are
// Unicode-aware; JIT when available) and the GPT-2 byte <-> code point mapping.
//
// How a list of regexes is applied (as llama.cpp's unicode_regex_split): the input starts as one
// piece; each regex in turn replaces every piece by its matches and the unmatched spans between
// them, in order. A regex never sees past its piece (so a lookahead like \s+(?!\S) stops at the
// piece end), which is also what a HF `Sequence` of `Split` pre-tokenizers does.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/log.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer_impl.h"

#include <array>
#include <mutex>

namespace pl::tok {
namespace {

// GPT-2 style: letters/numbers with an optional leading space, other symbols, whitespace runs
// (a whitespace run before a word leaves its last space to that word).
const char* const kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// LLaMA 3 (tiktoken cl100k-like): case-insensitive contractions, numbers in groups of <= 3.
const char* const kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct NamedPre {
    const char* name;
    int kind;  // 0 default, 1 gpt2, 2 llama3, 3 smollm/starcoder
};
constexpr NamedPre kPreNames[] = {
    {"default", 0}, {"gpt2", 1},      {"gpt-2", 1},   {"llama3", 2},  {"llama-bpe", 2},
    {"llama-v3", 2}, {"smollm", 3}, {"starcoder", 3}, {"refact", 3},
};

}  // namespace

std::optional<PreTokenizerDef> pre_tokenizer_def(std::string_view name) {
    for (const NamedPre& p : kPreNames) {
        if (name != p.name) continue;
        PreTokenizerDef d;
        switch (p.kind) {
            case 0:  // llama.cpp's fallback list for "default" (and a missing tokenizer.ggml.pre)
                d.patterns = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
                break;
            case 1: d.patterns = {kGpt2}; break;
            case 2:
                d.patterns = {kLlama3};
                d.ignore_merges = true;
                d.add_bos = true;
                break;
            case 3: d.patterns = {"\\p{N}", kGpt2}; break;  // every digit on its own first
        }
        return d;
    }
    return std::nullopt;
}

std::string known_pre_tokenizers() {
    std::string s;
    for (const NamedPre& p : kPreNames) {
        if (!s.empty()) s += ", ";
        s += p.name;
    }
    return s;
}

Result<std::unique_ptr<RegexSplitter>> RegexSplitter::create(const std::vector<std::string>& patterns) {
    std::unique_ptr<RegexSplitter> rs(new RegexSplitter());
    for (const std::string& pat : patterns) {
        int errcode = 0;
        PCRE2_SIZE erroff = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(errcode, msg, sizeof msg);
            return err("tokenizer: pre-tokenizer regex '{}' does not compile at offset {}: {}", pat, erroff,
                       reinterpret_cast<const char*>(msg));
        }
        // JIT is optional: without it (or where it fails) the interpreter gives the same matches.
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        rs->codes_.push_back(code);
    }
    return rs;
}

RegexSplitter::~RegexSplitter() {
    for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
}

void RegexSplitter::split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const {
    if (text.empty()) return;
    std::vector<std::pair<size_t, size_t>> cur{{0, text.size()}};
    std::vector<std::pair<size_t, size_t>> next;
    // Per call (encode is const and may run on several threads at once): match data, and a JIT
    // stack larger than the 32 KiB default so long whitespace runs do not exhaust it.
    pcre2_match_context* mctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack* jstack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (mctx && jstack) pcre2_jit_stack_assign(mctx, nullptr, jstack);
    for (void* cv : codes_) {
        auto* code = static_cast<pcre2_code*>(cv);
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
        next.clear();
        for (auto [b, e] : cur) {
            const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + b);
            const size_t len = e - b;
            size_t start = 0;
            size_t last = 0;  // end of the previous match (start of the pending unmatched span)
            while (start < len) {
                const int rc = pcre2_match(code, subject, len, start, 0, md, mctx);
                if (rc < 0) {
                    if (rc != PCRE2_ERROR_NOMATCH)
                        PL_LOG_WARN("tokenizer: regex match failed with PCRE2 error {}; keeping the rest as one piece", rc);
                    break;
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                const size_t ms = ov[0];
                const size_t me = ov[1];
                if (me == ms) {  // empty match: move on one character, it stays unmatched
                    start = ms + std::max<size_t>(1, char_len(static_cast<uint8_t>(text[b + ms])));
                    continue;
                }
                if (ms > last) next.emplace_back(b + last, b + ms);
                next.emplace_back(b + ms, b + me);
                last = me;
                start = me;
            }
            if (last < len) next.emplace_back(b + last, e);
        }
        pcre2_match_data_free(md);
        cur.swap(next);
    }
    if (jstack) pcre2_jit_stack_free(jstack);
    if (mctx) pcre2_match_context_free(mctx);
    pieces.insert(pieces.end(), cur.begin(), cur.end());
}

namespace {

struct ByteTables {
    std::array<std::string, 256> to_unicode;
    std::array<int32_t, 512> to_byte;  // indexed by code point (all stand-ins are < 512)
};

const ByteTables& byte_tables() {
    static const ByteTables t = [] {
        ByteTables bt;
        bt.to_byte.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
            utf8::append(bt.to_unicode[static_cast<size_t>(b)], cp);
            bt.to_byte[cp] = b;
        }
        return bt;
    }();
    return t;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_tables().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_tables().to_byte[cp] : -1; }

}  // namespace pl::tok
