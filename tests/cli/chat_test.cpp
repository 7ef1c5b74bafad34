// SPDX-License-Identifier: MIT
// `parallama chat` on the real demo model (SmolLM2-135M-Instruct): the chat template, special
// tokens and the KV prefix re-use across turns must produce the model's known greedy answers.
#include "test_data.h"


namespace {

TEST(ChatCli, SmolLM2AnswersCapitalsOverTwoTurns) {
    const std::string model = pl::test::demo_model();
    PL_REQUIRE_DATA(model, "demo model (run scripts/fetch-model.sh)");
    const std::string dir = pl::test::make_temp_dir("chat");
    {
        FILE* f = std::fopen((dir + "/in.txt").c_str(), "w");
        std::fputs("What is the capital of France?\nAnd of Germany?\n", f);
        std::fclose(f);
    }
    auto r = pl::test::run_cmd(pl::test::parallama_bin() + " chat -m '" + model + "' --temp 0 -n 32 -t 1 < '" + dir + "/in.txt'");
    ASSERT_EQ(r.rc, 0) << r.err;
    const size_t paris = r.out.find("Paris");
    const size_t berlin = r.out.find("Berlin");
    EXPECT_NE(paris, std::string::npos) << r.out;
    EXPECT_NE(berlin, std::string::npos) << r.out;
    EXPECT_LT(paris, berlin) << r.out;
}

TEST(ChatCli, UnknownTemplateNameIsAnError) {
    const std::string model = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(model, "stories260K/stories260K-f32.gguf");
    auto r = pl::test::run_cmd("echo hi | " + pl::test::parallama_bin() + " chat -m '" + model + "' --chat-template nosuch");
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.err;
}

}  // namespace
