// SPDX-License-Identifier: MIT
// `parallama info`: facts printed for good files; for truncated, corrupt and missing files exactly
// one "parallama info: error: ..." line on stderr, exit code 1, and never a crash.
#include "format/gguf.h"
#include "quant/formats.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using pl::test::run_cmd;
using namespace pl::gguf;

namespace {

std::string info(const std::string& args) { return pl::test::parallama_bin() + " info " + args; }

void spit(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A failed run: no crash, non-zero exit, stdout empty, stderr exactly one line naming the error.
void expect_one_line_error(const pl::test::CmdResult& r, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_LT(r.rc, 128) << "crashed: " << r.err;
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.back(), '\n');
    EXPECT_EQ(r.err.rfind("parallama info: error: ", 0), 0u) << r.err;
}

// A small valid file: two tensors (f32 and q8_0) and a few keys.
std::string write_small(const std::string& dir, std::vector<uint8_t>& f32, std::vector<uint8_t>& q8) {
    f32.assign(4 * 16 * 2, 0);
    q8.assign(34 * 4, 1);
    Writer w(3);
    w.set("general.architecture", Value::make_string("llama"));
    w.set("llama.block_count", Value::make_u32(1));
    w.set("tokenizer.ggml.tokens", Value::make_string_array({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
    w.set("weird\nkey", Value::make_string("line1\nline2"));
    w.add_tensor_data("tok\tembd", static_cast<uint32_t>(pl::GgmlType::F32), {16, 2}, f32);
    w.add_tensor_data("blk.0.q", static_cast<uint32_t>(pl::GgmlType::Q8_0), {32, 4}, q8);
    const std::string p = dir + "/small.gguf";
    EXPECT_TRUE(w.write(p).is_ok());
    return p;
}

}  // namespace

TEST(InfoCli, Stories260K) {
    const std::string p = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(p, "stories260K/stories260K-f32.gguf");
    auto r = run_cmd(info(p));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    for (const char* s : {"version 3, alignment 32, data section at offset 14304", "metadata:   19 keys",
                          "general.architecture", "\"llama\"", "llama.block_count", "(512 elements)",
                          "(504 more, 512 total)", "tensors:    48", "token_embd.weight", "[64, 512]", "131072",
                          "blk.4.ffn_norm.weight", "292800 params, 1171200 bytes", "32.00 bits per weight"})
        EXPECT_NE(r.out.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.out;
}

TEST(InfoCli, VocabOnlyFile) {
    const std::string p = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(p, "vocab/ggml-vocab-llama-spm.gguf");
    auto r = run_cmd(info(p + " --max-elems 3"));
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const char* s : {"tensors:    0", "(32000 elements) [\"<unk>\", \"<s>\", \"</s>\", ... (31997 more",
                          "tokenizer.ggml.add_bos_token", "true", "0 params"})
        EXPECT_NE(r.out.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.out;
}

TEST(InfoCli, WrittenFileTotalsAndEscaping) {
    const std::string dir = pl::test::make_temp_dir("info");
    std::vector<uint8_t> f32, q8;
    const std::string p = write_small(dir, f32, q8);
    auto r = run_cmd(info(p));
    ASSERT_EQ(r.rc, 0) << r.err;
    // 32 f32 + 128 q8_0 params; 128 + 136 bytes -> 13.20 bits per weight.
    for (const char* s : {"160 params, 264 bytes", "13.20 bits per weight", "q8_0", "[32, 4]", "tok\\tembd",
                          "weird\\nkey", "\"line1\\nline2\"", "(10 elements)", "(2 more, 10 total)"})
        EXPECT_NE(r.out.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.out;
    r = run_cmd(info(p + " --no-tensors"));
    ASSERT_EQ(r.rc, 0);
    EXPECT_EQ(r.out.find("blk.0.q"), std::string::npos);
    EXPECT_NE(r.out.find("160 params"), std::string::npos);
}

TEST(InfoCli, MissingEmptyAndNonGgufFiles) {
    const std::string dir = pl::test::make_temp_dir("info-bad");
    expect_one_line_error(run_cmd(info(dir + "/does-not-exist.gguf")), "missing");
    expect_one_line_error(run_cmd(info(dir)), "directory");
    spit(dir + "/empty.gguf", {});
    auto r = run_cmd(info(dir + "/empty.gguf"));
    expect_one_line_error(r, "empty");
    EXPECT_NE(r.err.find("too short (0 bytes)"), std::string::npos) << r.err;
    spit(dir + "/text.gguf", {'h', 'e', 'l', 'l', 'o', '\n', 'w', 'o', 'r', 'l', 'd', '\n'});
    r = run_cmd(info(dir + "/text.gguf"));
    expect_one_line_error(r, "text");
    EXPECT_NE(r.err.find("not a GGUF file"), std::string::npos) << r.err;
}

TEST(InfoCli, TruncatedFiles) {
    const std::string dir = pl::test::make_temp_dir("info-trunc");
    std::vector<uint8_t> f32, q8;
    const auto full = slurp(write_small(dir, f32, q8));
    ASSERT_GT(full.size(), 300u);
    // Only prefixes that cut into the data are invalid (dropping the trailing padding is harmless).
    auto parsed = File::parse(full, "x");
    ASSERT_TRUE(parsed.has_value());
    uint64_t data_end = 0;
    for (const auto& t : (*parsed)->tensors())
        data_end = std::max(data_end, (*parsed)->data_offset() + t.offset + t.nbytes);
    std::vector<size_t> sizes;
    for (size_t n = 0; n < data_end; n += 23) sizes.push_back(n);
    sizes.push_back(data_end - 1);
    for (size_t n : sizes) {
        const std::string p = dir + "/cut" + std::to_string(n) + ".gguf";
        spit(p, std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)));
        auto r = run_cmd(info(p));
        expect_one_line_error(r, "prefix of " + std::to_string(n) + " bytes");
        EXPECT_NE(r.err.find(p), std::string::npos) << r.err;  // the message names the file
    }
}

TEST(InfoCli, CorruptFiles) {
    const std::string dir = pl::test::make_temp_dir("info-corrupt");
    std::vector<uint8_t> f32, q8;
    const auto full = slurp(write_small(dir, f32, q8));

    auto patched = [&](size_t at, std::vector<uint8_t> bytes) {
        auto b = full;
        std::copy(bytes.begin(), bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
        return b;
    };
    struct Case {
        std::string name;
        std::vector<uint8_t> bytes;
        std::string expect;
    };
    const std::vector<Case> cases = {
        {"version1", patched(4, {1, 0, 0, 0}), "version 1 is not supported"},
        {"version9", patched(4, {9, 0, 0, 0}), "unsupported GGUF version 9"},
        {"huge_tensor_count", patched(8, {0, 0, 0, 0, 0, 0, 0, 0x10}), "tensor count"},
        {"huge_kv_count", patched(16, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "metadata key count"},
        {"huge_key_length", patched(24, {0, 0, 0, 0, 0, 0, 0, 0x10}), "exceeds"},
        {"bad_value_type", patched(24 + 8 + 20, {0x63, 0, 0, 0}), "unknown value type 99"},
    };
    for (const auto& c : cases) {
        const std::string p = dir + "/" + c.name + ".gguf";
        spit(p, c.bytes);
        auto r = run_cmd(info(p));
        expect_one_line_error(r, c.name);
        EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    }

    // Seeded random corruption of the header region: whatever happens, no crash, and a failure is
    // always exactly one line.
    std::mt19937 rng(1234);
    auto r0 = File::parse(full, "x");
    ASSERT_TRUE(r0.has_value());
    const size_t header_end = static_cast<size_t>((*r0)->data_offset());
    int failures = 0;
    for (int k = 0; k < 40; ++k) {
        auto b = full;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int j = 0; j < flips; ++j) b[rng() % header_end] = static_cast<uint8_t>(rng());
        const std::string p = dir + "/rand" + std::to_string(k) + ".gguf";
        spit(p, b);
        auto r = run_cmd(info(p));
        EXPECT_LT(r.rc, 128) << "crashed on " << p << ": " << r.err;
        if (r.rc != 0) {
            ++failures;
            expect_one_line_error(r, p);
        }
    }
    EXPECT_GT(failures, 10);  // most corruptions of the header are detected
}
