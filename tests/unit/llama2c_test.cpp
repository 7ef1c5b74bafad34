// SPDX-License-Identifier: MIT
// llama2.c readers and the llama2c -> GGUF converter: the weight layout walk (checked with a
// synthetic checkpoint whose every float is its own index), header and size validation, the
// tokenizer.bin reader, and an unshared-classifier conversion read back through gguf::File.
#include "convert/convert.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "quant/formats.h"
#include "test_data.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

using pl::llama2c::Config;

struct Hdr {
    int32_t dim = 8, hidden_dim = 12, n_layers = 2, n_heads = 2, n_kv_heads = 1, vocab_size = 5, seq_len = 4;
};

// Header + floats 0, 1, 2, ... (value = index after the header), so every matrix start is checkable.
std::vector<uint8_t> make_checkpoint(const Hdr& h, int64_t extra_floats = 0) {
    Config c;
    c.dim = h.dim;
    c.hidden_dim = h.hidden_dim;
    c.n_layers = h.n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.vocab_size = std::abs(h.vocab_size);
    c.seq_len = h.seq_len;
    c.shared_classifier = h.vocab_size > 0;
    const int64_t n = static_cast<int64_t>(c.n_floats()) + extra_floats;
    std::vector<uint8_t> b(28 + static_cast<size_t>(std::max<int64_t>(n, 0)) * 4);
    const int32_t hdr[7] = {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len};
    std::memcpy(b.data(), hdr, 28);
    for (int64_t i = 0; i < n; ++i) {
        const float f = static_cast<float>(i);
        std::memcpy(b.data() + 28 + i * 4, &f, 4);
    }
    return b;
}

float first(const pl::llama2c::Matrix& m) {
    std::vector<float> row(static_cast<size_t>(m.cols));
    m.row(0, row.data());
    return row[0];
}

TEST(Llama2c, WalksTheWeightLayout) {
    Hdr h;
    h.vocab_size = -5;  // separate classifier
    auto bytes = make_checkpoint(h);
    auto ck = pl::llama2c::parse_checkpoint(bytes, "tiny.bin");
    ASSERT_TRUE(ck) << ck.error_message();
    const auto& c = ck->config;
    EXPECT_EQ(c.vocab_size, 5);
    EXPECT_FALSE(c.shared_classifier);
    EXPECT_EQ(c.head_dim(), 4);
    EXPECT_EQ(c.kv_dim(), 4);
    // Offsets in floats: emb 5*8=40; rms_att 2*8=16 -> wq at 56; wq 2*64=128 -> wk at 184; wk 2*32 -> wv at 248;
    // wv -> wo at 312; wo 128 -> rms_ffn at 440; rms_ffn 16 -> w1 at 456; w1 2*96 -> w2 at 648; w2 -> w3 at 840;
    // w3 -> rms_final at 1032; rms_final 8 -> freq_cis at 1040 (2 * 4*2 = 16) -> wcls at 1056.
    EXPECT_EQ(first(ck->token_embedding), 0);
    EXPECT_EQ(first(ck->layers[1].rms_att), 48);
    EXPECT_EQ(first(ck->layers[0].wq), 56);
    EXPECT_EQ(first(ck->layers[1].wq), 120);
    EXPECT_EQ(first(ck->layers[1].wk), 216);
    EXPECT_EQ(first(ck->layers[0].wv), 248);
    EXPECT_EQ(first(ck->layers[0].wo), 312);
    EXPECT_EQ(first(ck->layers[1].rms_ffn), 448);
    EXPECT_EQ(first(ck->layers[1].w1), 552);
    EXPECT_EQ(first(ck->layers[0].w2), 648);
    EXPECT_EQ(ck->layers[0].w2.cols, 12);
    EXPECT_EQ(first(ck->layers[1].w3), 936);
    EXPECT_EQ(first(ck->rms_final), 1032);
    EXPECT_EQ(first(ck->wcls), 1056);
    EXPECT_EQ(bytes.size(), 28u + (1056 + 40) * 4);
}

TEST(Llama2c, RejectsBadHeaders) {
    auto expect_err = [](Hdr h, const char* what) {
        auto bytes = make_checkpoint(Hdr{});
        const int32_t hdr[7] = {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len};
        std::memcpy(bytes.data(), hdr, 28);
        auto r = pl::llama2c::parse_checkpoint(bytes, "bad.bin");
        ASSERT_FALSE(r) << what;
        EXPECT_NE(r.error_message().find(what), std::string::npos) << r.error_message();
        EXPECT_NE(r.error_message().find("bad.bin"), std::string::npos) << r.error_message();
    };
    Hdr h;
    h.n_heads = 3;
    expect_err(h, "dim is not a multiple of n_heads");
    h = Hdr{};
    h.n_kv_heads = 4;
    expect_err(h, "n_kv_heads must be in [1, n_heads]");
    h = Hdr{};
    h.dim = -8;
    expect_err(h, "dim must be in");
    h = Hdr{};
    h.n_layers = 0;
    expect_err(h, "n_layers must be in");
    h = Hdr{};
    h.vocab_size = 0;
    expect_err(h, "vocab_size");
    h = Hdr{};
    h.dim = 6;
    h.n_heads = 2;  // head_dim 3
    h.n_kv_heads = 2;
    expect_err(h, "must be even");
    auto r = pl::llama2c::parse_checkpoint(std::vector<uint8_t>(10), "short.bin");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error_message().find("too short"), std::string::npos);
}

TEST(Llama2c, RejectsWrongFileSize) {
    for (int64_t extra : {-1, 1}) {
        auto bytes = make_checkpoint(Hdr{}, extra);
        auto r = pl::llama2c::parse_checkpoint(bytes, "x.bin");
        ASSERT_FALSE(r);
        const std::string e = r.error_message();
        EXPECT_NE(e.find(fmt::format("file has {} bytes", bytes.size())), std::string::npos) << e;
        EXPECT_NE(e.find("needs exactly"), std::string::npos) << e;
        EXPECT_NE(e.find(extra < 0 ? "truncated" : "trailing"), std::string::npos) << e;
    }
}

std::vector<uint8_t> make_tokenizer(const std::vector<std::string>& pieces, int32_t max_len) {
    std::vector<uint8_t> b(4);
    std::memcpy(b.data(), &max_len, 4);
    float score = -1;
    for (const auto& p : pieces) {
        const int32_t len = static_cast<int32_t>(p.size());
        const size_t at = b.size();
        b.resize(at + 8 + p.size());
        std::memcpy(b.data() + at, &score, 4);
        std::memcpy(b.data() + at + 4, &len, 4);
        std::memcpy(b.data() + at + 8, p.data(), p.size());
        score -= 1;
    }
    return b;
}

TEST(Llama2c, ReadsTokenizer) {
    auto b = make_tokenizer({"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", "hi"}, 6);
    auto t = pl::llama2c::parse_tokenizer(b, 5);
    ASSERT_TRUE(t) << t.error_message();
    EXPECT_EQ(t->pieces[1], "\n<s>\n");
    EXPECT_EQ(t->pieces[4], "hi");
    EXPECT_EQ(t->scores[4], -5.0f);

    auto e = pl::llama2c::parse_tokenizer(b, 6, "tok.bin");
    ASSERT_FALSE(e);
    EXPECT_NE(e.error_message().find("truncated at token 5 of 6"), std::string::npos) << e.error_message();
    e = pl::llama2c::parse_tokenizer(b, 4, "tok.bin");
    ASSERT_FALSE(e);
    EXPECT_NE(e.error_message().find("trailing bytes"), std::string::npos) << e.error_message();
    e = pl::llama2c::parse_tokenizer(make_tokenizer({"toolong"}, 3), 1, "tok.bin");
    ASSERT_FALSE(e);
    EXPECT_NE(e.error_message().find("length 7"), std::string::npos) << e.error_message();
}

// Found by fuzz/llama2c_fuzz.cpp: the reader reserved vocab_size entries before looking at the
// bytes, so a hostile vocab_size (up to INT32_MAX) asked for tens of GB up front.
TEST(Llama2c, HugeVocabSizeOnATinyTokenizerFailsWithoutAllocating) {
    auto b = make_tokenizer({"a", "b"}, 4);
    for (int32_t vocab : {INT32_MAX, 1 << 30, 1 << 24}) {
        auto e = pl::llama2c::parse_tokenizer(b, vocab, "tok.bin");
        ASSERT_FALSE(e) << vocab;
        EXPECT_NE(e.error_message().find(fmt::format("truncated at token 2 of {}", vocab)), std::string::npos)
            << e.error_message();
    }
}

TEST(Llama2c, ReadsStories260K) {
    const std::string path = pl::test::model_file("stories260K/stories260K.bin");
    PL_REQUIRE_DATA(path, "stories260K/stories260K.bin");
    auto ck = pl::llama2c::open_checkpoint(path);
    ASSERT_TRUE(ck) << ck.error_message();
    const auto& c = ck->config;
    EXPECT_EQ(c.dim, 64);
    EXPECT_EQ(c.hidden_dim, 172);
    EXPECT_EQ(c.n_layers, 5);
    EXPECT_EQ(c.n_heads, 8);
    EXPECT_EQ(c.n_kv_heads, 4);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_EQ(c.seq_len, 512);
    EXPECT_TRUE(c.shared_classifier);
    const std::string tok = pl::test::model_file("stories260K/tok512-ids.bin");
    PL_REQUIRE_DATA(tok, "stories260K/tok512-ids.bin");
    auto t = pl::llama2c::read_tokenizer(tok, c.vocab_size);
    ASSERT_TRUE(t) << t.error_message();
    EXPECT_EQ(t->pieces[0], "<unk>");
    EXPECT_EQ(t->pieces[511], "<511>");
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

TEST(Llama2c, ConvertsUnsharedClassifierAndTokenTypes) {
    const std::string dir = pl::test::make_temp_dir("l2c-conv");
    Hdr h;
    h.vocab_size = -5;
    write_bytes(dir + "/m.bin", make_checkpoint(h));
    write_bytes(dir + "/t.bin", make_tokenizer({"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", "hi"}, 6));
    pl::convert::Llama2cOptions o;
    o.checkpoint = dir + "/m.bin";
    o.tokenizer = dir + "/t.bin";
    o.output = dir + "/m.gguf";
    o.progress = false;
    ASSERT_TRUE(pl::convert::llama2c_to_gguf(o));
    auto g = pl::gguf::File::open(o.output);
    ASSERT_TRUE(g) << g.error_message();
    const auto* out = (*g)->find_tensor("output.weight");
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(out->ne, (std::vector<int64_t>{8, 5}));
    float f0;
    std::memcpy(&f0, out->data, 4);
    EXPECT_EQ(f0, 1056);  // wcls, not the embedding
    const auto* k = (*g)->find_tensor("blk.1.attn_k.weight");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->ne, (std::vector<int64_t>{8, 4}));
    std::memcpy(&f0, k->data, 4);
    EXPECT_EQ(f0, 216);
    const auto* tokens = (*g)->find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    EXPECT_EQ(tokens->arr.at(1).s, "<s>");  // llama2.c's "\n<s>\n" normalised
    EXPECT_EQ(tokens->arr.at(2).s, "</s>");
    const auto* types = (*g)->find("tokenizer.ggml.token_type");
    ASSERT_NE(types, nullptr);
    std::vector<int64_t> tt;
    for (const auto& v : types->arr) tt.push_back(v.i);
    EXPECT_EQ(tt, (std::vector<int64_t>{2, 3, 3, 6, 1}));
    EXPECT_EQ((*g)->get_u64("llama.rope.dimension_count")->value_or(0), 4u);
    EXPECT_EQ((*g)->get_u64("llama.attention.head_count_kv")->value_or(0), 1u);
}

TEST(Llama2c, ConvertFailureLeavesNoOutput) {
    const std::string dir = pl::test::make_temp_dir("l2c-fail");
    write_bytes(dir + "/m.bin", make_checkpoint(Hdr{}));
    write_bytes(dir + "/t.bin", make_tokenizer({"<unk>", "<s>", "</s>"}, 6));  // 3 pieces, model has 5
    pl::convert::Llama2cOptions o;
    o.checkpoint = dir + "/m.bin";
    o.tokenizer = dir + "/t.bin";
    o.output = dir + "/m.gguf";
    o.progress = false;
    pl::Status s = pl::convert::llama2c_to_gguf(o);
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("t.bin"), std::string::npos) << s.message();
    EXPECT_FALSE(std::filesystem::exists(o.output));
}

}  // namespace
