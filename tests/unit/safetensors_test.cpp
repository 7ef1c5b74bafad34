// SPDX-License-Identifier: MIT
// safetensors reader: well-formed files parse and convert to f32; every malformed header field
// (length, JSON, dtype, shape, offsets, overlap) gives an error naming the problem; sharded folders
// resolve through the index.
#include "format/safetensors.h"

#include "core/fp16.h"
#include "test_data.h"

#include <cstring>
#include <fstream>

namespace {

using pl::safetensors::Dtype;
using pl::safetensors::File;

std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data, int64_t len_override = -1) {
    std::vector<uint8_t> out(8);
    const uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<uint8_t> floats(std::initializer_list<float> v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.begin(), b.size());
    return b;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    auto r = File::parse(bytes, "t.safetensors");
    return r ? std::string("<parsed>") : r.error_message();
}

TEST(Safetensors, ParsesTensorsMetadataAndConverts) {
    std::vector<uint8_t> data = floats({1, 2, 3, 4, 5, 6});
    const uint16_t h[2] = {pl::fp32_to_fp16(0.5f), pl::fp32_to_fp16(-2.0f)};
    const uint16_t bf[2] = {pl::fp32_to_bf16(3.0f), pl::fp32_to_bf16(-0.25f)};
    data.insert(data.end(), reinterpret_cast<const uint8_t*>(h), reinterpret_cast<const uint8_t*>(h) + 4);
    data.insert(data.end(), reinterpret_cast<const uint8_t*>(bf), reinterpret_cast<const uint8_t*>(bf) + 4);
    const std::string hdr =
        R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},)"
        R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"c":{"dtype":"BF16","shape":[1,2],"data_offsets":[28,32]}})";
    auto bytes = make_file(hdr, data);
    auto f = File::parse(bytes, "t.safetensors");
    ASSERT_TRUE(f) << f.error_message();
    ASSERT_EQ((*f)->tensors().size(), 3u);
    EXPECT_EQ((*f)->tensors()[0].name, "a");  // sorted by offset
    EXPECT_EQ((*f)->metadata().at("format"), "pt");
    const auto* a = (*f)->find("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a->dtype, Dtype::F32);
    float row[3];
    ASSERT_TRUE(pl::safetensors::read_f32(*a, 3, 3, row));
    EXPECT_EQ(row[0], 4);
    EXPECT_EQ(row[2], 6);
    float two[2];
    ASSERT_TRUE(pl::safetensors::read_f32(*(*f)->find("b"), 0, 2, two));
    EXPECT_EQ(two[0], 0.5f);
    EXPECT_EQ(two[1], -2.0f);
    ASSERT_TRUE(pl::safetensors::read_f32(*(*f)->find("c"), 0, 2, two));
    EXPECT_EQ(two[0], 3.0f);
    EXPECT_EQ(two[1], -0.25f);
    EXPECT_EQ((*f)->find("nope"), nullptr);
}

TEST(Safetensors, RejectsBadHeaderLength) {
    EXPECT_NE(parse_error({1, 2, 3}).find("too short"), std::string::npos);
    const std::string hdr = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    std::string e = parse_error(make_file(hdr, floats({1}), 1 << 20));
    EXPECT_NE(e.find("header length"), std::string::npos) << e;
    EXPECT_NE(e.find("t.safetensors"), std::string::npos) << e;
    e = parse_error(make_file(hdr, floats({1}), static_cast<int64_t>(~0ull >> 1)));
    EXPECT_NE(e.find("header length"), std::string::npos) << e;
}

TEST(Safetensors, RejectsMalformedJson) {
    std::string e = parse_error(make_file(R"({"a":{"dtype":"F32",)", floats({1})));
    EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
    e = parse_error(make_file(R"([1,2])", {}));
    EXPECT_NE(e.find("not a JSON object"), std::string::npos) << e;
    e = parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1]}})", floats({1})));
    EXPECT_NE(e.find("data_offsets"), std::string::npos) << e;
    e = parse_error(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", floats({1})));
    EXPECT_NE(e.find("non-negative"), std::string::npos) << e;
    e = parse_error(make_file(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", floats({1})));
    EXPECT_NE(e.find("dtype"), std::string::npos) << e;
}

TEST(Safetensors, RejectsUnknownDtype) {
    std::string e = parse_error(make_file(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", floats({1})));
    EXPECT_NE(e.find("unknown dtype \"F33\""), std::string::npos) << e;
    EXPECT_NE(e.find("'w'"), std::string::npos) << e;
}

TEST(Safetensors, RejectsOffsetsPastEndAndSizeMismatch) {
    std::string e = parse_error(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", floats({1})));
    EXPECT_NE(e.find("past the end"), std::string::npos) << e;
    e = parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", floats({1, 2, 3})));
    EXPECT_NE(e.find("reversed"), std::string::npos) << e;
    e = parse_error(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", floats({1, 2})));
    EXPECT_NE(e.find("needs 12 bytes"), std::string::npos) << e;
    e = parse_error(make_file(
        R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", floats({1, 2})));
    EXPECT_NE(e.find("overflow"), std::string::npos) << e;
}

TEST(Safetensors, RejectsOverlappingTensors) {
    std::string e = parse_error(make_file(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        floats({1, 2, 3})));
    EXPECT_NE(e.find("overlap"), std::string::npos) << e;
}

// Found by fuzz/safetensors_fuzz.cpp: an empty tensor sorted between two overlapping ones hid the
// overlap (only neighbours were compared).
TEST(Safetensors, RejectsOverlapAcrossAnEmptyTensor) {
    std::string e = parse_error(make_file(
        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        floats({1, 2, 3, 4})));
    EXPECT_NE(e.find("tensors 'a' [0, 16) and 'b' [8, 12) overlap"), std::string::npos) << e;
    // Empty tensors anywhere, even inside another's range, are fine.
    EXPECT_EQ(parse_error(make_file(
                  R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})",
                  floats({1, 2, 3, 4, 5}))),
              "<parsed>");
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

TEST(Safetensors, ShardedFolderResolvesThroughIndex) {
    const std::string dir = pl::test::make_temp_dir("st-shards");
    write_bytes(dir + "/m-1.safetensors", make_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({7})));
    write_bytes(dir + "/m-2.safetensors", make_file(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({8})));
    std::ofstream(dir + "/model.safetensors.index.json")
        << R"({"metadata":{},"weight_map":{"x":"m-1.safetensors","y":"m-2.safetensors"}})";
    auto m = pl::safetensors::Model::open_dir(dir);
    ASSERT_TRUE(m) << m.error_message();
    EXPECT_EQ(m->names(), (std::vector<std::string>{"x", "y"}));
    float v;
    ASSERT_TRUE(pl::safetensors::read_f32(*m->find("y"), 0, 1, &v));
    EXPECT_EQ(v, 8);

    // A tensor the index promises but the shard lacks is an error naming it.
    std::ofstream(dir + "/model.safetensors.index.json")
        << R"({"weight_map":{"x":"m-1.safetensors","y":"m-2.safetensors","z":"m-2.safetensors"}})";
    auto bad = pl::safetensors::Model::open_dir(dir);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error_message().find("z (in m-2.safetensors)"), std::string::npos) << bad.error_message();

    // A missing shard file is an error too.
    std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"x":"m-9.safetensors"}})";
    bad = pl::safetensors::Model::open_dir(dir);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error_message().find("m-9.safetensors"), std::string::npos) << bad.error_message();
}

TEST(Safetensors, FolderWithoutIndexUsesAllFilesAndRejectsDuplicates) {
    const std::string dir = pl::test::make_temp_dir("st-noindex");
    write_bytes(dir + "/a.safetensors", make_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({7})));
    auto m = pl::safetensors::Model::open_dir(dir);
    ASSERT_TRUE(m) << m.error_message();
    EXPECT_NE(m->find("x"), nullptr);
    write_bytes(dir + "/b.safetensors", make_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", floats({7})));
    auto bad = pl::safetensors::Model::open_dir(dir);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error_message().find("two shards"), std::string::npos) << bad.error_message();
    auto empty = pl::safetensors::Model::open_dir(pl::test::make_temp_dir("st-empty"));
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error_message().find("no *.safetensors"), std::string::npos) << empty.error_message();
}

}  // namespace
