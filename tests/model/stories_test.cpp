// SPDX-License-Identifier: MIT
// Golden test: stories260K greedy decoding equals llama2.c's run.c output (reference.md).
#include "test_data.h"

#include "model/llama.h"
#include "sampling/sampler.h"

#include <cstring>


namespace {

std::vector<int32_t> greedy(pl::Session& s, int32_t start, int n, int vocab) {
    std::vector<float> logits(static_cast<size_t>(vocab));
    std::vector<int32_t> out;
    int32_t tok = start;
    for (int i = 0; i < n; ++i) {
        const int32_t one[1] = {tok};
        EXPECT_TRUE(s.eval(one, logits.data()).is_ok());
        tok = pl::argmax(logits);
        out.push_back(tok);
    }
    return out;
}

TEST(Stories260K, GreedyFromBosMatchesRunC) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    const auto ref = pl::test::stories_reference_ids();
    ASSERT_EQ(ref.size(), 256u);

    auto model = pl::Model::load(path);
    ASSERT_TRUE(model) << model.error_message();
    const auto& c = (*model)->config();
    EXPECT_EQ(c.dim, 64);
    EXPECT_EQ(c.n_layers, 5);
    EXPECT_EQ(c.n_heads, 8);
    EXPECT_EQ(c.n_kv_heads, 4);
    EXPECT_EQ(c.hidden_dim, 172);
    EXPECT_EQ(c.vocab_size, 512);
    auto session = pl::Session::create(**model, 512);
    ASSERT_TRUE(session) << session.error_message();
    const auto got = greedy(**session, 1, 256, c.vocab_size);
    EXPECT_EQ(got, ref);
}

// --mmap off copies the weight matrices into huge-page memory: the views move out of the file
// mapping, the bytes (and so every logit) stay the same.
TEST(Stories260K, CopiedWeightsGiveTheMappedLogits) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    const pl::MmapMode saved = pl::default_mmap_mode();
    pl::set_default_mmap_mode(pl::MmapMode::On);
    auto mapped = pl::Model::load(path);
    pl::set_default_mmap_mode(pl::MmapMode::Off);
    auto copied = pl::Model::load(path);
    pl::set_default_mmap_mode(saved);
    ASSERT_TRUE(mapped && copied);
    EXPECT_FALSE((*mapped)->weights_copied());
    EXPECT_TRUE((*copied)->weights_copied());
    const pl::gguf::TensorInfo* wq_mapped = (*mapped)->file().find_tensor("blk.0.attn_q.weight");
    const pl::gguf::TensorInfo* wq_copied = (*copied)->file().find_tensor("blk.0.attn_q.weight");
    ASSERT_TRUE(wq_mapped && wq_copied);
    EXPECT_EQ((*mapped)->layer(0).wq.data, wq_mapped->data);
    EXPECT_NE((*copied)->layer(0).wq.data, wq_copied->data);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*copied)->layer(0).wq.data) % 64, 0u);
    EXPECT_EQ((*copied)->weight_bytes(), (*mapped)->weight_bytes());
    for (int l = 0; l < (*copied)->config().n_layers; ++l) {
        const pl::WeightView& a = (*mapped)->layer(l).w_down;
        const pl::WeightView& b = (*copied)->layer(l).w_down;
        ASSERT_EQ(a.nbytes(), b.nbytes());
        EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes()), 0) << "layer " << l;
    }
    const int vocab = (*mapped)->config().vocab_size;
    auto a = pl::Session::create(**mapped, 64);
    auto b = pl::Session::create(**copied, 64);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(greedy(**a, 1, 32, vocab), greedy(**b, 1, 32, vocab));
}

TEST(Stories260K, BatchEvalLogitsEqualTokenByToken) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model) << model.error_message();
    const int vocab = (*model)->config().vocab_size;
    const std::vector<int32_t> ids = {1, 461, 461, 401, 401, 401, 461, 378};
    auto a = pl::Session::create(**model, 64);
    auto b = pl::Session::create(**model, 64);
    ASSERT_TRUE(a && b);
    std::vector<float> all(ids.size() * static_cast<size_t>(vocab));
    ASSERT_TRUE((*a)->eval(ids, all.data(), true).is_ok());
    std::vector<float> one(static_cast<size_t>(vocab));
    for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_TRUE((*b)->eval(std::span(&ids[i], 1), one.data()).is_ok());
        for (int v = 0; v < vocab; ++v) ASSERT_EQ(all[i * static_cast<size_t>(vocab) + static_cast<size_t>(v)], one[static_cast<size_t>(v)]);
    }
}

TEST(Stories260K, ContextOverflowAndBadTokenAreErrors) {
    const std::string path = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(path, "stories260K/stories260K-f32.gguf");
    auto model = pl::Model::load(path);
    ASSERT_TRUE(model) << model.error_message();
    auto s = pl::Session::create(**model, 4);
    ASSERT_TRUE(s);
    const std::vector<int32_t> five = {1, 2, 3, 4, 5};
    auto st = (*s)->eval(five, nullptr);
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("context"), std::string::npos) << st.message();
    EXPECT_EQ((*s)->n_past(), 0);
    const std::vector<int32_t> bad = {1, 512};
    st = (*s)->eval(bad, nullptr);
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("512"), std::string::npos) << st.message();
}

}  // namespace
