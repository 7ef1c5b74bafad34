// SPDX-License-Identifier: MIT
// libFuzzer target for the tokenizers on arbitrary text (invalid UTF-8 included):
//  - the real LLaMA SentencePiece vocabulary (32000 pieces), from $PL_FUZZ_SPM_VOCAB or
//    ../shared/models/vocab/ggml-vocab-llama-spm.gguf next to the source tree
//    (or $PARALLAMA_TEST_DATA/vocab/...);
//  - synthetic byte-level BPE vocabularies (256 byte symbols, a few merges, control and
//    user-defined tokens) for every pre-tokenizer family, plus $PL_FUZZ_BPE_VOCAB when set
//    (any GGUF with a gpt2 tokenizer, e.g. models/SmolLM2-135M-Instruct.Q4_1.gguf).
// The first input byte picks the tokenizer and the flags; the rest is the text. Checked: every id
// is in range; decode(encode(s)) == s without special parsing (docs/tokenizers.md); rendering the
// ids gives back the text with special parsing (BPE); StreamDecoder output is valid UTF-8 and
// equals decode() when that is valid UTF-8; arbitrary ids (from the input) decode without harm.
#include "core/utf8.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Entry {
    std::string label;
    std::unique_ptr<pl::Tokenizer> tok;
    bool synthetic = false;  // built here: its user-defined tokens decode to their own text
    std::vector<std::string> user_defined;  // texts of UserDefined tokens (always split out)
    // Bytes the vocabulary cannot spell (a byte-level BPE vocabulary may lack some: SmolLM2 has no
    // token for 21 of the 256, e.g. 0x14 and 0xC0, and they become the unknown token, as in HF).
    bool lossy_byte[256] = {};
};

[[noreturn]] void fail(const Entry& e, const char* what) {
    std::fprintf(stderr, "tokenizer_fuzz (%s): invariant broken: %s\n", e.label.c_str(), what);
    std::abort();
}

std::unique_ptr<pl::Tokenizer> load_gguf(const std::string& path) {
    auto f = pl::gguf::File::open(path);
    if (!f) {
        std::fprintf(stderr, "tokenizer_fuzz: %s\n", f.error_message().c_str());
        std::exit(1);
    }
    auto t = pl::Tokenizer::from_gguf(**f);
    if (!t) {
        std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", path.c_str(), t.error_message().c_str());
        std::exit(1);
    }
    return std::move(*t);
}

std::unique_ptr<pl::Tokenizer> synthetic_bpe(const std::string& pre) {
    pl::VocabSpec s;
    s.model = "gpt2";
    s.pre = pre;
    auto add = [&](const std::string& t, pl::TokenType ty) {
        s.tokens.push_back(t);
        s.types.push_back(ty);
    };
    add("<|begin_of_text|>", pl::TokenType::Control);
    add("<|im_start|>", pl::TokenType::Control);
    add("<|im_end|>", pl::TokenType::Control);
    add("<tool>", pl::TokenType::UserDefined);
    for (int b = 0; b < 256; ++b) add(pl::tok::byte_to_unicode(static_cast<uint8_t>(b)), pl::TokenType::Normal);
    const std::string sp = pl::tok::byte_to_unicode(' ');
    const std::pair<std::string, std::string> merges[] = {
        {sp, "t"}, {"h", "e"}, {sp + "t", "he"}, {"i", "n"}, {sp, "a"}, {"e", "r"}, {"1", "2"}, {"12", "3"},
        {sp, sp}, {sp + sp, sp + sp}, {"\xC3\xA9", "\xC3\xA9"}, {"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"},
    };
    for (const auto& [l, r] : merges) {
        s.merges.push_back(l + " " + r);
        bool have = false;
        for (const auto& t : s.tokens) have |= t == l + r;
        if (!have) add(l + r, pl::TokenType::Normal);
    }
    s.bos_id = 0;
    s.eos_id = 2;
    auto t = pl::Tokenizer::from_vocab(std::move(s));
    if (!t) {
        std::fprintf(stderr, "tokenizer_fuzz: synthetic %s: %s\n", pre.c_str(), t.error_message().c_str());
        std::exit(1);
    }
    return std::move(*t);
}

Entry make_entry(std::string label, std::unique_ptr<pl::Tokenizer> tok, bool synthetic) {
    Entry e{std::move(label), std::move(tok), synthetic, {}};
    for (int32_t id = 0; id < e.tok->n_vocab(); ++id)
        if (e.tok->token_type(id) == pl::TokenType::UserDefined) e.user_defined.push_back(e.tok->token_text(id));
    if (e.tok->kind() == "bpe")
        for (int b = 0; b < 256; ++b) {
            const std::string one(1, static_cast<char>(b));
            e.lossy_byte[b] = e.tok->decode(e.tok->encode(one, false, false)) != one;
        }
    return e;
}

bool contains_user_defined(const Entry& e, std::string_view s) {
    for (const auto& t : e.user_defined)
        if (s.find(t) != std::string_view::npos) return true;
    return false;
}

std::string default_spm_path() {
    if (const char* p = std::getenv("PL_FUZZ_SPM_VOCAB"); p && *p) return p;
    if (const char* d = std::getenv("PARALLAMA_TEST_DATA"); d && *d)
        return std::string(d) + "/vocab/ggml-vocab-llama-spm.gguf";
    return std::string(PL_SOURCE_DIR) + "/../shared/models/vocab/ggml-vocab-llama-spm.gguf";
}

std::vector<Entry>& entries() {
    static std::vector<Entry> v = [] {
        std::vector<Entry> e;
        e.push_back(make_entry("spm", load_gguf(default_spm_path()), false));
        for (const char* pre : {"default", "gpt2", "llama3", "smollm"})
            e.push_back(make_entry(std::string("bpe-") + pre, synthetic_bpe(pre), true));
        if (const char* p = std::getenv("PL_FUZZ_BPE_VOCAB"); p && *p) e.push_back(make_entry(p, load_gguf(p), false));
        return e;
    }();
    return v;
}

void check_ids(const Entry& e, const std::vector<int32_t>& ids) {
    for (int32_t id : ids)
        if (id < 0 || id >= e.tok->n_vocab()) fail(e, "id out of range");
}

std::string stream_all(const pl::Tokenizer& t, const std::vector<int32_t>& ids) {
    pl::StreamDecoder sd(t);
    std::string out;
    for (int32_t id : ids) out += sd.push(id);
    out += sd.flush();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)entries();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    auto& all = entries();
    const uint8_t ctl = data[0];
    const Entry& e = all[ctl % all.size()];
    const pl::Tokenizer& tok = *e.tok;
    const bool add_bos = (ctl & 0x80) != 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    // Plain text: everything round trips (SPM: unless the text holds U+2581 itself, which is the
    // space stand-in, or UserDefined text whose pieces decode differently).
    const auto plain = tok.encode(text, add_bos, false);
    check_ids(e, plain);
    if (add_bos && tok.bos_id() >= 0 && (plain.empty() || plain[0] != tok.bos_id())) fail(e, "missing BOS");
    const std::string back = tok.decode(plain);
    const bool spm_ambiguous = tok.kind() == "spm" && text.find("\xE2\x96\x81") != std::string_view::npos;
    bool unspellable = false;
    for (char c : text) unspellable = unspellable || e.lossy_byte[static_cast<uint8_t>(c)];
    if (!spm_ambiguous && !unspellable && (e.synthetic || !contains_user_defined(e, text)) && back != text)
        fail(e, "decode(encode(text)) != text");

    // Special parsing: control tokens become ids; for BPE rendering every id gives the text back.
    const auto special = tok.encode(text, add_bos, true);
    check_ids(e, special);
    if (tok.kind() == "bpe" && !tok.add_space_prefix() && !unspellable) {
        std::string rendered;
        for (size_t i = (add_bos && tok.bos_id() >= 0) ? 1 : 0; i < special.size(); ++i)
            rendered += tok.render_token(special[i]);
        if (rendered != text) fail(e, "rendered special encode != text");
    }

    // Streaming: always valid UTF-8; the same text as decode() when that is valid.
    for (const auto* ids : {&plain, &special}) {
        const std::string streamed = stream_all(tok, *ids);
        if (!pl::utf8::is_valid(streamed)) fail(e, "StreamDecoder produced invalid UTF-8");
        const std::string whole = tok.decode(*ids);
        const bool starts_bos = !ids->empty() && (*ids)[0] == tok.bos_id();
        if (starts_bos && pl::utf8::is_valid(whole) && streamed != whole) fail(e, "stream != decode for valid UTF-8");
    }

    // Arbitrary ids (any int32, out of range included) from the input bytes.
    std::vector<int32_t> ids(text.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), text.data(), ids.size() * 4);
    for (auto& id : ids) {
        if (ctl & 0x40) id = static_cast<int32_t>(static_cast<uint32_t>(id) % static_cast<uint32_t>(tok.n_vocab() + 8));
        (void)tok.token_to_piece(id);
        (void)tok.render_token(id);
        (void)tok.token_type(id);
        (void)tok.is_eog(id);
    }
    (void)tok.decode(ids);
    if (!pl::utf8::is_valid(stream_all(tok, ids))) fail(e, "StreamDecoder produced invalid UTF-8 for arbitrary ids");
    (void)tok.find_token(text);
    return 0;
}
