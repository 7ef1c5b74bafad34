// SPDX-License-Identifier: MIT
// Model loading errors: unsupported architecture, missing or mis-shaped tensors, bad metadata.
#include "test_data.h"

#include "format/gguf.h"
#include "model/llama.h"
#include "quant/formats.h"

namespace {

using pl::gguf::Value;

// A tiny llama GGUF: dim 32, 1 layer, 2 heads (1 KV head), hidden 64, vocab 16. `skip` names a
// tensor to leave out; `arch` overrides the architecture.
std::string write_tiny(const std::string& dir, const std::string& arch, const std::vector<std::string>& skip,
                       int64_t q_rows = 32) {
    pl::gguf::Writer w;
    w.set("general.architecture", Value::make_string(arch));
    const std::string p = arch + ".";
    w.set(p + "embedding_length", Value::make_u32(32));
    w.set(p + "feed_forward_length", Value::make_u32(64));
    w.set(p + "block_count", Value::make_u32(1));
    w.set(p + "attention.head_count", Value::make_u32(2));
    w.set(p + "attention.head_count_kv", Value::make_u32(1));
    w.set(p + "context_length", Value::make_u32(64));
    const uint32_t f32 = static_cast<uint32_t>(pl::GgmlType::F32);
    auto add = [&](const std::string& name, std::vector<int64_t> ne) {
        for (const auto& s : skip)
            if (s == name) return;
        w.add_tensor(name, f32, ne, [](std::span<uint8_t> out) {
            std::fill(out.begin(), out.end(), 0);
            return pl::Status::ok();
        });
    };
    add("token_embd.weight", {32, 16});
    add("output_norm.weight", {32});
    add("blk.0.attn_norm.weight", {32});
    add("blk.0.ffn_norm.weight", {32});
    add("blk.0.attn_q.weight", {32, q_rows});
    add("blk.0.attn_k.weight", {32, 16});
    add("blk.0.attn_v.weight", {32, 16});
    add("blk.0.attn_output.weight", {32, 32});
    add("blk.0.ffn_gate.weight", {32, 64});
    add("blk.0.ffn_up.weight", {32, 64});
    add("blk.0.ffn_down.weight", {64, 32});
    const std::string path = dir + "/tiny-" + arch + ".gguf";
    EXPECT_TRUE(w.write(path).is_ok());
    return path;
}

TEST(ModelLoad, TinyModelLoadsWithTiedEmbeddings) {
    const std::string dir = pl::test::make_temp_dir("load");
    auto m = pl::Model::load(write_tiny(dir, "llama", {}));
    ASSERT_TRUE(m) << m.error_message();
    EXPECT_TRUE((*m)->config().tied_embeddings);
    EXPECT_EQ((*m)->config().kv_dim, 16);
    EXPECT_EQ((*m)->config().vocab_size, 16);
}

TEST(ModelLoad, UnsupportedArchitectureIsNamed) {
    const std::string dir = pl::test::make_temp_dir("load");
    auto m = pl::Model::load(write_tiny(dir, "gpt2", {}));
    ASSERT_FALSE(m);
    EXPECT_NE(m.error_message().find("unsupported architecture 'gpt2'"), std::string::npos) << m.error_message();
}

TEST(ModelLoad, AllMissingTensorsListedAtOnce) {
    const std::string dir = pl::test::make_temp_dir("load");
    auto m = pl::Model::load(write_tiny(dir, "llama", {"blk.0.ffn_up.weight", "output_norm.weight", "blk.0.attn_k.weight"}));
    ASSERT_FALSE(m);
    const std::string& e = m.error_message();
    EXPECT_NE(e.find("3 missing tensor(s)"), std::string::npos) << e;
    for (const char* name : {"blk.0.ffn_up.weight", "output_norm.weight", "blk.0.attn_k.weight"})
        EXPECT_NE(e.find(name), std::string::npos) << e;
}

TEST(ModelLoad, WrongShapeIsNamedWithBothShapes) {
    const std::string dir = pl::test::make_temp_dir("load");
    auto m = pl::Model::load(write_tiny(dir, "llama", {}, /*q_rows=*/48));
    ASSERT_FALSE(m);
    EXPECT_NE(m.error_message().find("'blk.0.attn_q.weight' has shape [32, 48], expected [32, 32]"), std::string::npos)
        << m.error_message();
}

TEST(ModelLoad, MissingMetadataKeyIsNamed) {
    const std::string dir = pl::test::make_temp_dir("load");
    pl::gguf::Writer w;
    w.set("general.architecture", Value::make_string("llama"));
    w.set("llama.embedding_length", Value::make_u32(32));
    ASSERT_TRUE(w.write(dir + "/meta.gguf").is_ok());
    auto m = pl::Model::load(dir + "/meta.gguf");
    ASSERT_FALSE(m);
    EXPECT_NE(m.error_message().find("llama.feed_forward_length"), std::string::npos) << m.error_message();
}

}  // namespace
