// SPDX-License-Identifier: MIT
// `parallama tokenize` against llama.cpp's vectors for the LLaMA SPM vocabulary.
#include "test_data.h"

namespace {

TEST(TokenizeCli, IdsMatchLlamaCppVectors) {
    const std::string vocab = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
    // Cases and expected ids as in ggml-vocab-llama-spm.gguf.inp/.out.
    const std::string inp = pl::test::read_file(vocab + ".inp");
    const std::string out = pl::test::read_file(vocab + ".out");
    ASSERT_NE(inp.find("\n Hello world\n"), std::string::npos);
    ASSERT_NE(out.find("\n 29871 15043 3186\n"), std::string::npos);  // the ids of " Hello world"
    auto r = pl::test::run_cmd(pl::test::parallama_bin() + " tokenize -m '" + vocab + "' --ids --no-bos ' Hello world'");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "29871 15043 3186\n");
    r = pl::test::run_cmd(pl::test::parallama_bin() + " tokenize -m '" + vocab + "' 'Hello world'");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "1\t'<s>'\n15043\t' Hello'\n3186\t' world'\n");
}

TEST(TokenizeCli, MissingModelIsOneLineError) {
    auto r = pl::test::run_cmd(pl::test::parallama_bin() + " tokenize -m /nonexistent.gguf hi");
    EXPECT_NE(r.rc, 0);
    EXPECT_LT(r.rc, 128);
    EXPECT_FALSE(r.err.empty());
}

}  // namespace
