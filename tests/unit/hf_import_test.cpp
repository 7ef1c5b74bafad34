// SPDX-License-Identifier: MIT
// The Hugging Face importer's JSON readers on hostile files (regressions from fuzz/hf_fuzz.cpp):
// config.json and tokenizer.json fields of the wrong type or out of range give an error naming the
// file and field, never an exception or undefined behaviour. The happy paths are covered end to end
// by tests/cli/convert_test.cpp.
#include "convert/convert.h"
#include "convert/hf_tokenizer.h"
#include "format/gguf.h"
#include "test_data.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;

std::string folder_with(const std::string& tag, const std::string& file, const std::string& text) {
    const std::string dir = pl::test::make_temp_dir(tag);
    std::ofstream(dir + "/" + file, std::ios::binary) << text;
    return dir;
}

std::string convert_error(const std::string& dir) {
    pl::convert::HfOptions opt;
    opt.dir = dir;
    opt.output = dir + "/out.gguf";
    opt.progress = false;
    pl::Status s = pl::convert::hf_to_gguf(opt);
    EXPECT_FALSE(fs::exists(opt.output));
    return s ? std::string("<converted>") : s.message();
}

const char* kConfigHead =
    R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
        "num_hidden_layers": 2, "num_attention_heads": 8, "rope_scaling": )";

// A rope_scaling type that is not a string used to escape as nlohmann::json::type_error (the CLI
// died in std::terminate).
TEST(HfImport, RopeScalingTypeOfTheWrongJsonTypeIsAnError) {
    for (const char* rs : {R"({"rope_type": 3})", R"({"type": ["llama3"]})", R"({"rope_type": null, "type": {}})"}) {
        const std::string dir = folder_with("hf-rope", "config.json", std::string(kConfigHead) + rs + "}");
        const std::string e = convert_error(dir);
        EXPECT_NE(e.find("config.json rope_scaling: \"rope_type\"/\"type\" must be a string"), std::string::npos)
            << rs << ": " << e;
    }
    // Still accepted: a string type, or no type at all (the default rope).
    const std::string dir = folder_with("hf-rope-ok", "config.json", std::string(kConfigHead) + R"({"factor": 2})" + "}");
    const std::string e = convert_error(dir);
    EXPECT_NE(e.find("no *.safetensors files"), std::string::npos) << e;
}

std::string tokenizer_error(const std::string& tokenizer_json, int64_t n_vocab) {
    const std::string dir = folder_with("hf-tok", "tokenizer.json", tokenizer_json);
    pl::gguf::Writer w;
    pl::Status s = pl::convert::set_hf_tokenizer(w, dir, n_vocab, nlohmann::json::object());
    return s ? std::string("<converted>") : s.message();
}

// The largest id plus one overflowed int64 (undefined behaviour; in practice the size check passed
// and the token was silently dropped).
TEST(HfImport, TokenIdsNearInt64MaxAreOutOfRange) {
    for (const char* id : {"9223372036854775807", "9223372036854775806", "300"}) {
        const std::string tj = std::string(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": )") + id +
                               R"(}}, "pre_tokenizer": {"type": "ByteLevel"}})";
        const std::string e = tokenizer_error(tj, 256);
        EXPECT_NE(e.find(std::string("tokenizer has ids up to ") + id + " but the model's embedding has only 256 rows"),
                  std::string::npos)
            << e;
    }
    const std::string tj = R"({"added_tokens": [{"id": 9223372036854775807, "content": "<x>", "special": true}],
        "model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}})";
    EXPECT_NE(tokenizer_error(tj, 256).find("ids up to 9223372036854775807"), std::string::npos);
}

// rms_norm_eps and rope_theta used to be taken as they came: a zero, negative or huge value made a
// model whose norms divide by zero or whose rotary frequencies are NaN.
TEST(HfImport, NormEpsAndRopeThetaOutOfRangeAreErrors) {
    const char* head = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
        "num_hidden_layers": 2, "num_attention_heads": 8, )";
    const struct {
        const char* field;
        const char* want;
    } cases[] = {
        {R"("rms_norm_eps": 0)", "rms_norm_eps=0 is out of range"},
        {R"("rms_norm_eps": -1e-5)", "rms_norm_eps=-1e-05 is out of range"},
        {R"("rms_norm_eps": 2)", "rms_norm_eps=2 is out of range"},
        {R"("rope_theta": 0)", "rope_theta=0 is out of range"},
        {R"("rope_theta": -10000)", "rope_theta=-10000 is out of range"},
        {R"("rope_theta": 1e300)", "rope_theta=1e+300 is out of range"},
    };
    for (const auto& c : cases) {
        const std::string dir = folder_with("hf-range", "config.json", std::string(head) + c.field + "}");
        const std::string e = convert_error(dir);
        EXPECT_NE(e.find(c.want), std::string::npos) << c.field << ": " << e;
    }
    const std::string dir = folder_with("hf-range-ok", "config.json", std::string(head) + R"("rms_norm_eps": 1e-5, "rope_theta": 500000})");
    EXPECT_NE(convert_error(dir).find("no *.safetensors files"), std::string::npos);
}

// A pre_tokenizer nested 200,000 Sequences deep recursed once per level (a stack overflow for
// a hostile file of a few MB); levels past 32 are not searched.
TEST(HfImport, DeeplyNestedSequencesDoNotRecurseWithoutBound) {
    std::string pre;
    const int depth = 200000;
    for (int i = 0; i < depth; ++i) pre += R"({"type": "Sequence", "pretokenizers": [)";
    pre += R"({"type": "ByteLevel"})";
    for (int i = 0; i < depth; ++i) pre += "]}";
    const std::string tj = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}, "pre_tokenizer": )" + pre + "}";
    // nlohmann parses (it has no depth limit either way); the importer must answer, not crash. The
    // ByteLevel buried past the limit is not seen, so this is not the byte-level BPE it expects.
    const std::string e = tokenizer_error(tj, 256);
    EXPECT_NE(e, "<converted>");
}

}  // namespace
