// SPDX-License-Identifier: MIT
// Tokenizers: llama.cpp's SPM test vectors (shared/models/vocab), the SmolLM2 byte-level BPE against
// an independent HuggingFace `tokenizers` reference (tests/python/bpe_reference.py), decode round
// trips, special tokens, the pre-tokenizer regexes, StreamDecoder, errors and speed.
#include "format/gguf.h"
#include "test_data.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using pl::StreamDecoder;
using pl::Tokenizer;
using pl::TokenType;
using pl::VocabSpec;

namespace {

const std::string kSep = "\n__ggml_vocab_test__\n";

// Splits a .inp file exactly as llama.cpp's test-tokenizer-0 does: cases are separated by
// "\n__ggml_vocab_test__\n" (so the newline before the marker is not part of the case).
std::vector<std::string> split_inp(const std::string& raw) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < raw.size()) {
        const size_t next = raw.find(kSep, pos);
        if (next == std::string::npos) {
            out.push_back(raw.substr(pos));
            break;
        }
        out.push_back(raw.substr(pos, next - pos));
        pos = next + kSep.size();
    }
    return out;
}

std::vector<int32_t> parse_ids(const std::string& line) {
    std::vector<int32_t> ids;
    std::istringstream ss(line);
    long v;
    while (ss >> v) ids.push_back(static_cast<int32_t>(v));
    return ids;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream ss(s);
    for (std::string line; std::getline(ss, line);) out.push_back(line);
    return out;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

std::unique_ptr<Tokenizer> load(const std::string& path) {
    auto f = pl::gguf::File::open(path);
    EXPECT_TRUE(f.has_value()) << f.error_message();
    if (!f) return nullptr;
    auto tok = Tokenizer::from_gguf(**f);
    EXPECT_TRUE(tok.has_value()) << tok.error_message();
    if (!tok) return nullptr;
    return std::move(*tok);
}

std::string smollm_path() {
    const fs::path p = fs::path(PL_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
    return fs::exists(p) ? p.string() : std::string();
}

// ---- llama.cpp SPM vectors ----------------------------------------------------------------------

TEST(Tokenizer, LlamaSpmVectorsMatchLlamaCpp) {
    const std::string gguf = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(gguf, "vocab/ggml-vocab-llama-spm.gguf");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    EXPECT_EQ(tok->kind(), "spm");
    EXPECT_EQ(tok->n_vocab(), 32000);
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
    EXPECT_TRUE(tok->add_bos_default());
    EXPECT_TRUE(tok->is_eog(2));

    const auto inputs = split_inp(pl::test::read_file(gguf + ".inp"));
    const auto outputs = lines_of(pl::test::read_file(gguf + ".out"));
    ASSERT_EQ(inputs.size(), outputs.size());
    ASSERT_GT(inputs.size(), 30u);
    size_t pass = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const auto want = parse_ids(outputs[i]);
        const auto got = tok->encode(inputs[i], /*add_bos=*/false, /*parse_special=*/false);
        EXPECT_EQ(ids_str(got), ids_str(want)) << "case " << i << ": '" << inputs[i] << "'";
        if (got == want) ++pass;
        EXPECT_EQ(tok->decode(got), inputs[i]) << "round trip of case " << i;
        // With BOS the text is the same after decode.
        EXPECT_EQ(tok->decode(tok->encode(inputs[i], true)), inputs[i]) << "round trip with BOS, case " << i;
    }
    std::printf("llama-spm vectors: %zu/%zu cases match llama.cpp\n", pass, inputs.size());
}

TEST(Tokenizer, LlamaSpmBasics) {
    const std::string gguf = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(gguf, "vocab/ggml-vocab-llama-spm.gguf");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    // Known llama.cpp results (test-tokenizer-0-llama).
    EXPECT_EQ(tok->encode("Hello World", true), (std::vector<int32_t>{1, 15043, 2787}));
    EXPECT_EQ(tok->encode(" this is 🦙.cpp", true),
              (std::vector<int32_t>{1, 29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223}));
    EXPECT_TRUE(tok->encode("", false).empty());
    EXPECT_EQ(tok->encode("", true), (std::vector<int32_t>{1}));
    // "<s>" is control: plain text unless parse_special.
    EXPECT_NE(tok->encode("<s>", false, false), (std::vector<int32_t>{1}));
    EXPECT_EQ(tok->encode("<s>", false, true), (std::vector<int32_t>{1}));
    EXPECT_EQ(tok->token_to_piece(1), "");
    EXPECT_EQ(tok->render_token(1), "<s>");
    EXPECT_EQ(tok->token_to_piece(3 + 0x41), "A");  // <0x41>
    EXPECT_EQ(tok->token_type(3), TokenType::Byte);
}

TEST(Tokenizer, SpmStreamDecoderBuffersSplitCharacter) {
    const std::string gguf = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(gguf, "vocab/ggml-vocab-llama-spm.gguf");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    // 🦙 is not in the vocab: four byte tokens <0xF0> <0x9F> <0xA6> <0x99>.
    const auto ids = tok->encode("a🦙b", true);
    StreamDecoder sd(*tok);
    std::vector<std::string> outs;
    std::string all;
    for (int32_t id : ids) {
        outs.push_back(sd.push(id));
        all += outs.back();
    }
    all += sd.flush();
    EXPECT_EQ(all, "a🦙b");  // began with BOS: the prefix space is dropped like decode()
    for (const auto& o : outs) EXPECT_TRUE(o.empty() || o == "a" || o == "🦙" || o == "b" || o == " a") << o;
    // Generated tokens (no BOS first) keep their leading space.
    StreamDecoder gen(*tok);
    std::string g;
    for (int32_t id : tok->encode("Hello world", false)) g += gen.push(id);
    EXPECT_EQ(g, " Hello world");
    // An unfinished sequence becomes U+FFFD at flush.
    StreamDecoder bad(*tok);
    EXPECT_EQ(bad.push(3 + 0xF0), "");
    EXPECT_EQ(bad.flush(), "\xEF\xBF\xBD");
    // A byte that can never start a sequence is replaced at once.
    StreamDecoder bad2(*tok);
    EXPECT_EQ(bad2.push(3 + 0x80), "\xEF\xBF\xBD");
}

// ---- SmolLM2 byte-level BPE vs HuggingFace tokenizers ------------------------------------------

const std::vector<std::string>& bpe_cases() {
    static const std::vector<std::string> cases = {
        "Hello world",
        " Hello world",
        "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
        "12345",
        "3.14159 and 1,000,000 and 2024-06-01",
        "   leading spaces",
        "trailing spaces   ",
        "multiple   spaces    between\twords",
        "tabs\tand\nnewlines\n\n\nmore\r\nwindows",
        "def foo(x):\n    return x ** 2  # square\n",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n}\n",
        "naïve café résumé — déjà vu",
        "Ünïcödé ÅÆØ straße",
        "中文分词测试，你好世界！",
        "日本語のテキストです。",
        "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅",
        "!!!!!! ??? ... ---",
        "' era",
        "\n =",
        "I'm you're we've they'll she'd it's",
        "IT'S I'M",
        "",
        " ",
        "  ",
        "\t",
        "\n",
        "\n\n",
        " \n \n",
        "a\xC2\xA0" "b",  // no-break space
        "Cửa Việt",
        "нещо на Български",
        "email@example.com https://example.org/a/b?q=1&r=2",
        "$100.00 + 50% = ??? (approx.)",
        "Ⅷ ½ ² ٣٤٥",
        "<|im_start|>user",
        "    Hello\n    Hello",
        "333333333",
    };
    return cases;
}

// Encodes every case with `tok` and with the HF reference built from `gguf`; returns how many
// match (each mismatch is also a test failure). Skips (or fails under
// PARALLAMA_REQUIRE_TEST_DATA=1) when python3 with tokenizers/gguf is missing.
void compare_with_hf(const Tokenizer& tok, const std::string& gguf, const std::string& label) {
    const std::string dir = pl::test::make_temp_dir("bpe-ref");
    const std::string cases_path = dir + "/cases.inp";
    {
        std::ofstream f(cases_path, std::ios::binary);
        for (const auto& c : bpe_cases()) f << c << kSep;
    }
    const std::string script = std::string(PL_SOURCE_DIR) + "/tests/python/bpe_reference.py";
    const auto r = pl::test::run_cmd("python3 '" + script + "' '" + gguf + "' '" + cases_path + "'");
    if (r.rc == 77 || r.rc == 127) {
        if (pl::test::require_test_data()) FAIL() << "reference tokenizer unavailable: " << r.err;
        GTEST_SKIP() << "python3 with tokenizers/gguf not available (pip install -r tests/requirements.txt): "
                     << r.err;
    }
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto ref = lines_of(r.out);
    ASSERT_EQ(ref.size(), bpe_cases().size()) << r.out;
    size_t pass = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const auto& text = bpe_cases()[i];
        const auto got = tok.encode(text, false, false);
        EXPECT_EQ(ids_str(got), ref[i]) << "case " << i << ": '" << text << "'";
        if (ids_str(got) == ref[i]) ++pass;
        EXPECT_EQ(tok.decode(got), text) << "round trip of case " << i;
    }
    std::printf("%s: %zu/%zu cases match HF tokenizers\n", label.c_str(), pass, ref.size());
}

TEST(Tokenizer, SmolLm2BpeMatchesHfTokenizers) {
    const std::string gguf = smollm_path();
    PL_REQUIRE_DATA(gguf, "models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    EXPECT_EQ(tok->kind(), "bpe");
    compare_with_hf(*tok, gguf, "SmolLM2 BPE (smollm)");
}

// The llama3 pre-tokenizer on a real vocabulary: SmolLM2's tokens and merges re-labelled
// tokenizer.ggml.pre = llama3 (the HF reference then uses LLaMA 3's Split regex and ignore_merges).
TEST(Tokenizer, Llama3PreTokenizerMatchesHfTokenizers) {
    const std::string src = smollm_path();
    PL_REQUIRE_DATA(src, "models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)");
    auto f = pl::gguf::File::open(src);
    ASSERT_TRUE(f.has_value()) << f.error_message();
    pl::gguf::Writer w;
    w.set("general.architecture", pl::gguf::Value::make_string("llama"));
    w.set("tokenizer.ggml.model", pl::gguf::Value::make_string("gpt2"));
    w.set("tokenizer.ggml.pre", pl::gguf::Value::make_string("llama3"));
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"}) {
        const pl::gguf::Value* v = (*f)->find(key);
        ASSERT_NE(v, nullptr) << key;
        w.set(key, *v);
    }
    const std::string out = pl::test::make_temp_dir("llama3-vocab") + "/llama3-vocab.gguf";
    ASSERT_TRUE(w.write(out).is_ok());
    auto tok = load(out);
    ASSERT_TRUE(tok);
    compare_with_hf(*tok, out, "SmolLM2 vocab with llama3 pre-tokenizer");
}

TEST(Tokenizer, SmolLm2SpecialTokens) {
    const std::string gguf = smollm_path();
    PL_REQUIRE_DATA(gguf, "models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    const int32_t im_start = tok->find_token("<|im_start|>").value_or(-1);
    const int32_t im_end = tok->find_token("<|im_end|>").value_or(-1);
    ASSERT_EQ(im_start, 1);
    ASSERT_EQ(im_end, 2);
    const auto with = tok->encode("<|im_start|>user\nHi<|im_end|>\n", false, true);
    ASSERT_GE(with.size(), 4u);
    EXPECT_EQ(with.front(), im_start);
    EXPECT_EQ(tok->decode(std::vector<int32_t>(with.begin() + 1, with.begin() + 2)), "user");
    EXPECT_NE(std::find(with.begin(), with.end(), im_end), with.end());
    const auto without = tok->encode("<|im_start|>user", false, false);
    EXPECT_EQ(std::find(without.begin(), without.end(), im_start), without.end());
    EXPECT_EQ(tok->decode(without), "<|im_start|>user");
    EXPECT_EQ(tok->render_token(im_start), "<|im_start|>");
    EXPECT_TRUE(tok->is_eog(im_end));
    EXPECT_FALSE(tok->add_bos_default());
    ASSERT_TRUE(tok->chat_template().has_value());
}

TEST(Tokenizer, BpeEncodesLargeTextFast) {
    const std::string gguf = smollm_path();
    PL_REQUIRE_DATA(gguf, "models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh)");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    std::string text;
    while (text.size() < 100 * 1024)
        text += "The quick brown fox jumps over the lazy dog 1234567890. Ünïcödé 中文 🚀\n    code(x) { return y; }\n";
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(tok->decode(ids), text);
    std::printf("BPE: %zu bytes -> %zu tokens in %.3f s\n", text.size(), ids.size(), s);
    EXPECT_LT(s, 3.0);  // sanitizer Debug builds are ~10x slower than Release
}

TEST(Tokenizer, SpmEncodesLargeTextFast) {
    const std::string gguf = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(gguf, "vocab/ggml-vocab-llama-spm.gguf");
    auto tok = load(gguf);
    ASSERT_TRUE(tok);
    std::string text;
    while (text.size() < 100 * 1024) text += "The quick brown fox jumps over the lazy dog 1234567890. Ünïcödé 中文 🚀\n";
    const std::string spaces(20000, ' ');  // one long run: no pre-tokenizer splits it for SPM
    text += spaces;
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(tok->decode(ids), text);
    std::printf("SPM: %zu bytes -> %zu tokens in %.3f s\n", text.size(), ids.size(), s);
    EXPECT_LT(s, 3.0);
}

// ---- synthetic vocabularies (no data needed) ---------------------------------------------------

// A byte-level vocabulary: the 256 stand-in characters, then the given extra tokens/merges.
VocabSpec byte_level_spec(const std::string& pre, const std::vector<std::pair<std::string, std::string>>& merges) {
    VocabSpec s;
    s.model = "gpt2";
    s.pre = pre;
    s.tokens.push_back("<|begin_of_text|>");
    s.types.push_back(TokenType::Control);
    for (int b = 0; b < 256; ++b) {
        s.tokens.push_back(pl::tok::byte_to_unicode(static_cast<uint8_t>(b)));
        s.types.push_back(TokenType::Normal);
    }
    for (const auto& [l, r] : merges) {
        s.merges.push_back(l + " " + r);
        if (std::find(s.tokens.begin(), s.tokens.end(), l + r) == s.tokens.end()) {
            s.tokens.push_back(l + r);
            s.types.push_back(TokenType::Normal);
        }
    }
    s.bos_id = 0;
    return s;
}

std::vector<std::string> split_with(const std::string& pre, const std::string& text) {
    auto def = pl::tok::pre_tokenizer_def(pre);
    EXPECT_TRUE(def.has_value()) << pre;
    auto rs = pl::tok::RegexSplitter::create(def->patterns);
    EXPECT_TRUE(rs.has_value()) << rs.error_message();
    std::vector<std::pair<size_t, size_t>> pieces;
    (*rs)->split(text, pieces);
    std::vector<std::string> out;
    for (auto [b, e] : pieces) out.push_back(text.substr(b, e - b));
    return out;
}

using Pieces = std::vector<std::string>;

TEST(Tokenizer, Llama3PreTokenizerSplits) {
    EXPECT_EQ(split_with("llama3", "Hello world"), (Pieces{"Hello", " world"}));
    EXPECT_EQ(split_with("llama3", "1234567"), (Pieces{"123", "456", "7"}));
    EXPECT_EQ(split_with("llama3", "I'M here"), (Pieces{"I", "'M", " here"}));
    EXPECT_EQ(split_with("llama3", "x  \n\n  y"), (Pieces{"x", "  \n\n", " ", " y"}));
    EXPECT_EQ(split_with("llama3", "a...\n\nb"), (Pieces{"a", "...\n\n", "b"}));
    EXPECT_EQ(split_with("llama3", "end   "), (Pieces{"end", "   "}));
    EXPECT_EQ(split_with("llama3", "(x)"), (Pieces{"(x", ")"}));
}

TEST(Tokenizer, SmollmAndGpt2PreTokenizerSplits) {
    EXPECT_EQ(split_with("smollm", "abc 123"), (Pieces{"abc", " ", "1", "2", "3"}));
    EXPECT_EQ(split_with("gpt2", "abc 123"), (Pieces{"abc", " 123"}));
    EXPECT_EQ(split_with("gpt2", "a  b"), (Pieces{"a", " ", " b"}));
    EXPECT_EQ(split_with("gpt2", "a\nb"), (Pieces{"a", "\n", "b"}));  // unmatched span kept
    EXPECT_EQ(split_with("gpt2", "it's"), (Pieces{"it", "'s"}));
    EXPECT_EQ(split_with("starcoder", "x1"), (Pieces{"x", "1"}));
    EXPECT_EQ(split_with("default", "a+b=1234"), (Pieces{"a", "+", "b", "=", "123", "4"}));
    // Invalid UTF-8 never matches but is kept (as unmatched spans), so no byte is lost.
    const std::string bad = "ab\xFF\xFE" "cd";
    std::string joined;
    for (const auto& p : split_with("gpt2", bad)) joined += p;
    EXPECT_EQ(joined, bad);
}

TEST(Tokenizer, Llama3SyntheticVocab) {
    const std::string G = pl::tok::byte_to_unicode(' ');  // "Ġ"
    auto spec = byte_level_spec("llama3", {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {G, "w"},
                                           {"1", "2"}, {"12", "3"}});
    auto tok = Tokenizer::from_vocab(spec);
    ASSERT_TRUE(tok.has_value()) << tok.error_message();
    auto& t = **tok;
    EXPECT_TRUE(t.add_bos_default());  // llama3 default
    auto id = [&](const std::string& s) { return t.find_token(s).value(); };
    EXPECT_EQ(t.encode("hello", false), (std::vector<int32_t>{id("hello")}));
    EXPECT_EQ(t.encode("hello 1234", true),
              (std::vector<int32_t>{0, id("hello"), id(G), id("123"), id("4")}));
    EXPECT_EQ(t.encode(" wo", false), (std::vector<int32_t>{id(G + "w"), id("o")}));
    EXPECT_EQ(t.decode(t.encode("hello 1234 wo ünï 🚀", true)), "hello 1234 wo ünï 🚀");
    EXPECT_EQ(t.encode("<|begin_of_text|>", false, true), (std::vector<int32_t>{0}));
    EXPECT_EQ(t.encode("<|begin_of_text|>", false, false).size(), 17u);  // one byte token each

    // Stream decoding a 4-byte emoji split over byte tokens.
    StreamDecoder sd(t);
    std::string out;
    const auto ids = t.encode("🚀!", false);
    ASSERT_EQ(ids.size(), 5u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(sd.push(ids[i]), "");
    EXPECT_EQ(sd.push(ids[3]), "🚀");
    EXPECT_EQ(sd.push(ids[4]), "!");
    EXPECT_EQ(sd.flush(), "");
}

TEST(Tokenizer, BpeMergeOrderIsByRankThenLeftmost) {
    // "aaa": the merge (a,a) applies leftmost first -> "aa" "a".
    auto spec = byte_level_spec("gpt2", {{"a", "a"}});
    auto tok = Tokenizer::from_vocab(spec);
    ASSERT_TRUE(tok.has_value());
    auto& t = **tok;
    EXPECT_EQ(t.encode("aaa", false), (std::vector<int32_t>{*t.find_token("aa"), *t.find_token("a")}));
    // Lower rank wins even when it is to the right: (b,c) before (a,b) in "abc".
    auto spec2 = byte_level_spec("gpt2", {{"b", "c"}, {"a", "b"}});
    auto tok2 = Tokenizer::from_vocab(spec2);
    ASSERT_TRUE(tok2.has_value());
    EXPECT_EQ((*tok2)->encode("abc", false), (std::vector<int32_t>{*(*tok2)->find_token("a"), *(*tok2)->find_token("bc")}));
}

TEST(Tokenizer, SpmSyntheticScoresAndByteFallback) {
    VocabSpec s;
    s.model = "llama";
    s.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "ab", "<0xC3>", "<0xA9>"};
    s.types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Normal, TokenType::Normal,
               TokenType::Normal, TokenType::Normal, TokenType::Normal, TokenType::Byte, TokenType::Byte};
    s.scores = {0, 0, 0, -1, -2, -2, -0.5f, -0.1f, 0, 0};
    s.bos_id = 1;
    s.eos_id = 2;
    s.unk_id = 0;
    auto tok = Tokenizer::from_vocab(s);
    ASSERT_TRUE(tok.has_value()) << tok.error_message();
    auto& t = **tok;
    EXPECT_EQ(t.encode("ab", true), (std::vector<int32_t>{1, 7}));   // "▁ab"
    EXPECT_EQ(t.encode("ab é", false), (std::vector<int32_t>{7, 3, 8, 9}));  // é -> <0xC3><0xA9>
    EXPECT_EQ(t.decode(t.encode("ab é", true)), "ab é");
    EXPECT_EQ(t.encode("ba", false), (std::vector<int32_t>{3, 5, 4}));
}

// Found by fuzz/tokenizer_fuzz.cpp: a lead byte without its continuation bytes took the first
// byte of the next "▁" into its "character", so the space came out as raw bytes of U+2581 (or
// <unk>) and decode(encode(s)) != s. Such a byte is now a symbol of its own.
TEST(Tokenizer, SpmInvalidUtf8BeforeASpaceKeepsTheSpace) {
    VocabSpec s;
    s.model = "llama";
    s.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "<0xC3>"};
    s.types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Normal, TokenType::Normal,
               TokenType::Byte};
    s.bos_id = 1;
    s.unk_id = 0;
    auto tok = Tokenizer::from_vocab(s);
    ASSERT_TRUE(tok.has_value()) << tok.error_message();
    auto& t = **tok;
    EXPECT_EQ(t.encode("\xC3 a", false), (std::vector<int32_t>{3, 5, 3, 4}));  // ▁ <0xC3> ▁ a
    EXPECT_EQ(t.decode(t.encode("\xC3 a", true)), "\xC3 a");

    const std::string gguf = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(gguf, "vocab/ggml-vocab-llama-spm.gguf");
    auto real = load(gguf);
    ASSERT_TRUE(real);
    for (const std::string text : {"\xC3 x", "hi\xF0\x9F there", "\xE2 \xE2\x96 \xC3", "ok\xC3"}) {
        EXPECT_EQ(real->decode(real->encode(text, true)), text);
    }
    const auto ids = real->encode("\xC3 x", false);
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids[1], 3 + 0xC3);  // <0xC3> alone, then the space as part of "▁x"
    for (int32_t id : ids) EXPECT_NE(id, 3 + 0xE2) << "the first byte of U+2581 leaked out as a byte token";
}

TEST(Tokenizer, FromVocabErrors) {
    VocabSpec s = byte_level_spec("gpt2", {{"a", "b"}});
    s.model = "wordpiece";
    auto r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("unsupported tokenizer.ggml.model 'wordpiece'"), std::string::npos) << r.error_message();

    s = byte_level_spec("qwen9", {{"a", "b"}});
    r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("unsupported tokenizer.ggml.pre 'qwen9'"), std::string::npos) << r.error_message();
    EXPECT_NE(r.error_message().find("smollm"), std::string::npos);

    s = byte_level_spec("gpt2", {});
    r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("merges"), std::string::npos) << r.error_message();

    s = byte_level_spec("gpt2", {{"a", "b"}});
    s.types[5] = static_cast<TokenType>(9);
    r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("unknown token type 9"), std::string::npos) << r.error_message();

    s = byte_level_spec("gpt2", {{"a", "b"}});
    s.eos_id = 100000;
    r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("eos_token_id = 100000 is out of range"), std::string::npos) << r.error_message();

    s = byte_level_spec("gpt2", {{"a", "b"}});
    s.merges.push_back("nospace");
    r = Tokenizer::from_vocab(s);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("'nospace'"), std::string::npos) << r.error_message();

    VocabSpec empty;
    empty.model = "llama";
    EXPECT_FALSE(Tokenizer::from_vocab(empty).has_value());
}

TEST(Tokenizer, FromGgufErrorsNameTheKey) {
    pl::gguf::Writer w;
    w.set("general.architecture", pl::gguf::Value::make_string("llama"));
    const std::string dir = pl::test::make_temp_dir("tok-gguf");
    ASSERT_TRUE(w.write(dir + "/nokeys.gguf").is_ok());
    auto f = pl::gguf::File::open(dir + "/nokeys.gguf");
    ASSERT_TRUE(f.has_value()) << f.error_message();
    auto r = Tokenizer::from_gguf(**f);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("tokenizer.ggml.model"), std::string::npos) << r.error_message();

    pl::gguf::Writer w2;
    w2.set("tokenizer.ggml.model", pl::gguf::Value::make_string("gpt2"));
    w2.set("tokenizer.ggml.tokens", pl::gguf::Value::make_string_array({"a", "b"}));
    w2.set("tokenizer.ggml.token_type", pl::gguf::Value::make_i32_array({1, 7}));
    ASSERT_TRUE(w2.write(dir + "/badtype.gguf").is_ok());
    auto f2 = pl::gguf::File::open(dir + "/badtype.gguf");
    ASSERT_TRUE(f2.has_value()) << f2.error_message();
    r = Tokenizer::from_gguf(**f2);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("unknown token type 7"), std::string::npos) << r.error_message();
}

}  // namespace
