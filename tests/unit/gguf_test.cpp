// SPDX-License-Identifier: MIT
// GGUF reader/writer: round trips of every value type and several tensor types (v2 and v3), every
// truncation of a valid file, hand-built hostile files (each error message checked), interop with
// the official `gguf` Python package, and facts about the shared test models.
#include "format/gguf.h"
#include "quant/formats.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace pl::gguf;
using pl::GgmlType;

namespace {

uint32_t id(GgmlType t) { return static_cast<uint32_t>(t); }

// ---- raw byte builder for hand-made (often hostile) files -------------------------------------
struct Raw {
    std::vector<uint8_t> b;
    template <typename T>
    Raw& pod(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b.insert(b.end(), p, p + sizeof(T));
        return *this;
    }
    Raw& u8(uint8_t v) { return pod(v); }
    Raw& u32(uint32_t v) { return pod(v); }
    Raw& u64(uint64_t v) { return pod(v); }
    Raw& str(std::string_view s) {
        u64(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return u32(kMagic).u32(version).u64(n_tensors).u64(n_kv);
    }
    Raw& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
    Raw& kv_str(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
    Raw& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) u64(d);
        return u32(type).u64(offset);
    }
    // Pads to `align` and appends `n` data bytes.
    Raw& data(size_t n, size_t align = 32) {
        while (b.size() % align) b.push_back(0);
        for (size_t k = 0; k < n; ++k) b.push_back(static_cast<uint8_t>(k));
        return *this;
    }
};

pl::Result<std::unique_ptr<File>> parse(const std::vector<uint8_t>& b) { return File::parse(b, "test.gguf"); }

// Parsing must fail, with a message starting with the file name and containing every `parts`.
void expect_error(const std::vector<uint8_t>& b, std::initializer_list<std::string_view> parts) {
    auto r = parse(b);
    ASSERT_FALSE(r.has_value()) << "expected an error containing '" << *parts.begin() << "'";
    const std::string& m = r.error_message();
    EXPECT_EQ(m.rfind("test.gguf: ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (auto p : parts) EXPECT_NE(m.find(p), std::string::npos) << "missing '" << p << "' in: " << m;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t k = 0; k < n; ++k) v[k] = static_cast<uint8_t>(seed + k * 13);
    return v;
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void all_values(Writer& w) {
    w.set("general.architecture", Value::make_string("llama"));
    w.set("t.u8", Value::make_u8(200));
    w.set("t.i8", Value::make_i8(-100));
    w.set("t.u16", Value::make_u16(60000));
    w.set("t.i16", Value::make_i16(-30000));
    w.set("t.u32", Value::make_u32(4000000000u));
    w.set("t.i32", Value::make_i32(-2000000000));
    w.set("t.f32", Value::make_f32(1e-5f));
    w.set("t.bool", Value::make_bool(true));
    w.set("t.string", Value::make_string("h\xc3\xa9llo"));
    w.set("t.u64", Value::make_u64(~0ull));
    w.set("t.i64", Value::make_i64(std::numeric_limits<int64_t>::min()));
    w.set("t.f64", Value::make_f64(3.141592653589793));
    w.set("t.strings", Value::make_string_array({"<unk>", "", "\xe2\x96\x81the"}));
    w.set("t.f32s", Value::make_f32_array({0.f, -1.5f, 2.25f}));
    w.set("t.i32s", Value::make_i32_array({1, -2, 3}));
    w.set("t.bools", Value::make_array(ValueType::Bool, {Value::make_bool(false), Value::make_bool(true)}));
    w.set("t.nested", Value::make_array(ValueType::Array, {Value::make_i32_array({1, 2}), Value::make_i32_array({}),
                                                            Value::make_array(ValueType::Array, {Value::make_string_array({"x"})})}));
    w.set("t.empty", Value::make_array(ValueType::U8, {}));
}

class GgufFiles : public ::testing::Test {
protected:
    void SetUp() override { dir_ = pl::test::make_temp_dir("gguf"); }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }
    std::string dir_;
};

}  // namespace

// ---- round trips -------------------------------------------------------------------------------

TEST_F(GgufFiles, RoundTripEveryValueTypeV2AndV3) {
    for (uint32_t version : {2u, 3u}) {
        SCOPED_TRACE(version);
        Writer w(version);
        all_values(w);
        const std::string p = path("values_v" + std::to_string(version) + ".gguf");
        ASSERT_TRUE(w.write(p).is_ok());
        auto r = File::open(p);
        ASSERT_TRUE(r.has_value()) << r.error_message();
        const File& f = **r;
        EXPECT_EQ(f.version(), version);
        EXPECT_EQ(f.alignment(), kDefaultAlignment);
        EXPECT_TRUE(f.tensors().empty());
        ASSERT_EQ(f.metadata().size(), 19u);
        EXPECT_EQ(f.metadata()[0].first, "general.architecture");  // file order kept
        EXPECT_EQ(f.find("t.u8")->type, ValueType::U8);
        EXPECT_EQ(f.find("t.u8")->u, 200u);
        EXPECT_EQ(f.find("t.i8")->i, -100);
        EXPECT_EQ(f.find("t.u16")->u, 60000u);
        EXPECT_EQ(f.find("t.i16")->i, -30000);
        EXPECT_EQ(f.find("t.u32")->u, 4000000000u);
        EXPECT_EQ(f.find("t.i32")->type, ValueType::I32);
        EXPECT_EQ(f.find("t.i32")->i, -2000000000);
        EXPECT_EQ(f.find("t.f32")->type, ValueType::F32);
        EXPECT_EQ(static_cast<float>(f.find("t.f32")->f), 1e-5f);
        EXPECT_TRUE(f.find("t.bool")->b);
        EXPECT_EQ(f.find("t.string")->s, "h\xc3\xa9llo");
        EXPECT_EQ(f.find("t.u64")->u, ~0ull);
        EXPECT_EQ(f.find("t.i64")->i, std::numeric_limits<int64_t>::min());
        EXPECT_EQ(f.find("t.f64")->f, 3.141592653589793);
        const Value* s = f.find("t.strings");
        ASSERT_EQ(s->type, ValueType::Array);
        EXPECT_EQ(s->elem_type, ValueType::String);
        ASSERT_EQ(s->arr.size(), 3u);
        EXPECT_EQ(s->arr[2].s, "\xe2\x96\x81the");
        EXPECT_EQ(s->arr[1].s, "");
        EXPECT_EQ(f.find("t.f32s")->arr[1].f, -1.5);
        EXPECT_EQ(f.find("t.i32s")->arr[1].i, -2);
        EXPECT_TRUE(f.find("t.bools")->arr[1].b);
        const Value* n = f.find("t.nested");
        ASSERT_EQ(n->elem_type, ValueType::Array);
        ASSERT_EQ(n->arr.size(), 3u);
        EXPECT_EQ(n->arr[0].arr[1].i, 2);
        EXPECT_TRUE(n->arr[1].arr.empty());
        EXPECT_EQ(n->arr[2].arr[0].arr[0].s, "x");
        EXPECT_EQ(n->type_string(), "array[array[i32]]");
        EXPECT_TRUE(f.find("t.empty")->arr.empty());
        EXPECT_EQ(f.find("t.empty")->elem_type, ValueType::U8);
        EXPECT_EQ(f.find("missing"), nullptr);
    }
}

TEST_F(GgufFiles, RoundTripTensorsOfSeveralTypesWithAlignment64) {
    struct T {
        std::string name;
        GgmlType type;
        std::vector<int64_t> ne;
        size_t nbytes;
    };
    const std::vector<T> ts = {
        {"a.f32", GgmlType::F32, {8, 3}, 8 * 3 * 4},
        {"b.f16", GgmlType::F16, {4, 2, 2}, 16 * 2},
        {"c.q4_0", GgmlType::Q4_0, {64, 2}, 4 * 18},
        {"d.q8_0", GgmlType::Q8_0, {32, 1, 1, 3}, 3 * 34},
        {"e.q4_k", GgmlType::Q4_K, {256}, 144},
        {"f.q6_k", GgmlType::Q6_K, {512, 2}, 4 * 210},
        {"g.i32", GgmlType::I32, {5}, 20},
        {"h.bf16", GgmlType::BF16, {7}, 14},
    };
    std::vector<std::vector<uint8_t>> datas;
    for (size_t k = 0; k < ts.size(); ++k) datas.push_back(pattern(ts[k].nbytes, static_cast<uint8_t>(k)));
    Writer w(3);
    w.set("general.alignment", Value::make_u32(64));
    for (size_t k = 0; k < ts.size(); ++k) w.add_tensor_data(ts[k].name, id(ts[k].type), ts[k].ne, datas[k]);
    std::vector<std::pair<uint64_t, uint64_t>> progress;
    ASSERT_TRUE(w.write(path("t.gguf"), [&](uint64_t d, uint64_t t) { progress.emplace_back(d, t); }).is_ok());
    ASSERT_EQ(progress.size(), ts.size());
    EXPECT_EQ(progress.back().first, progress.back().second);

    auto r = File::open(path("t.gguf"));
    ASSERT_TRUE(r.has_value()) << r.error_message();
    const File& f = **r;
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(f.data_offset() % 64, 0u);
    EXPECT_EQ(f.file_size() % 64, 0u);  // last tensor padded too
    ASSERT_EQ(f.tensors().size(), ts.size());
    for (size_t k = 0; k < ts.size(); ++k) {
        SCOPED_TRACE(ts[k].name);
        const TensorInfo* t = f.find_tensor(ts[k].name);
        ASSERT_NE(t, nullptr);
        EXPECT_EQ(t, &f.tensors()[k]);
        EXPECT_EQ(t->type, id(ts[k].type));
        EXPECT_EQ(t->ne, ts[k].ne);
        EXPECT_EQ(t->nbytes, ts[k].nbytes);
        EXPECT_EQ(t->offset % 64, 0u);
        EXPECT_EQ(std::memcmp(t->data, datas[k].data(), ts[k].nbytes), 0);
        int64_t n = 1;
        for (int64_t d : ts[k].ne) n *= d;
        EXPECT_EQ(t->n_elements(), n);
        EXPECT_EQ(t->n_rows(), n / ts[k].ne[0]);
    }
    // Padding bytes are zero.
    const auto bytes = slurp(path("t.gguf"));
    const TensorInfo& a = f.tensors()[0];
    for (uint64_t k = f.data_offset() + a.nbytes; k < f.data_offset() + f.tensors()[1].offset; ++k)
        ASSERT_EQ(bytes[k], 0) << "byte " << k;
}

TEST_F(GgufFiles, WriterReplacesKeysAndLeavesNoFileOnFailure) {
    Writer w;
    w.set("k", Value::make_u32(1));
    w.set("k", Value::make_string("two"));
    w.add_tensor("x", id(GgmlType::F32), {4}, [](std::span<uint8_t> out) {
        EXPECT_EQ(out.size(), 16u);
        std::memset(out.data(), 0x3f, out.size());
        return pl::Status::ok();
    });
    ASSERT_TRUE(w.write(path("ok.gguf")).is_ok());
    auto r = File::open(path("ok.gguf"));
    ASSERT_TRUE(r.has_value()) << r.error_message();
    ASSERT_EQ((*r)->metadata().size(), 1u);
    EXPECT_EQ((*r)->find("k")->s, "two");
    EXPECT_EQ((*r)->tensors()[0].data[15], 0x3f);

    // add_tensor_data keeps a span: the bytes must live until write() returns.
    const auto eight = pattern(8, 0), seven = pattern(7, 0);
    Writer bad;
    bad.add_tensor_data("a", id(GgmlType::F32), {2}, eight);
    bad.add_tensor("b", id(GgmlType::F32), {2}, [](std::span<uint8_t>) { return pl::err("source went away"); });
    pl::Status s = bad.write(path("bad.gguf"));
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("source went away"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("'b'"), std::string::npos) << s.message();
    // Neither the destination nor a temp file is left behind.
    for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename(), "ok.gguf");

    // Overwriting keeps the old file intact when the new write fails.
    Writer wrong_size;
    wrong_size.add_tensor_data("a", id(GgmlType::F32), {2}, seven);
    s = wrong_size.write(path("ok.gguf"));
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("7 bytes"), std::string::npos) << s.message();
    EXPECT_TRUE(File::open(path("ok.gguf")).has_value());
}

TEST_F(GgufFiles, WriterRejectsInvalidInput) {
    auto fails_with = [&](const Writer& w, std::string_view part) {
        pl::Status s = w.write(path("x.gguf"));
        ASSERT_FALSE(s.is_ok()) << part;
        EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
        EXPECT_FALSE(fs::exists(path("x.gguf")));
    };
    { Writer w; w.add_tensor_data("q", id(GgmlType::Q4_0), {48}, {}); fails_with(w, "block size 32"); }
    { Writer w; w.add_tensor_data("q", 99, {4}, {}); fails_with(w, "unknown tensor type 99"); }
    { Writer w; w.add_tensor_data("q", 0, {4, 0}, {}); fails_with(w, "ne[1] = 0"); }
    { Writer w; w.add_tensor_data("q", 0, {1, 1, 1, 1, 1}, {}); fails_with(w, "5 dims"); }
    const auto four = pattern(4, 0);
    {
        Writer w;
        w.add_tensor_data("q", 0, {1}, four);
        w.add_tensor_data("q", 0, {1}, four);
        fails_with(w, "duplicate tensor name");
    }
    { Writer w; w.set("general.alignment", Value::make_u32(48)); fails_with(w, "power of two"); }
    { Writer w; w.set("general.alignment", Value::make_i32(32)); fails_with(w, "power of two"); }
    { Writer w; w.set("", Value::make_u32(1)); fails_with(w, "empty"); }
    { Writer w; w.set("bad\xff", Value::make_u32(1)); fails_with(w, "UTF-8"); }
    {
        Writer w;
        Value v = Value::make_u8(0);
        v.u = 300;
        w.set("k", v);
        fails_with(w, "out of range");
    }
    {
        Writer w;
        w.set("k", Value::make_array(ValueType::I32, {Value::make_i32(1), Value::make_string("x")}));
        fails_with(w, "element #1 is string");
    }
    {
        Value v = Value::make_i32_array({1});
        for (int k = 0; k < kMaxArrayDepth; ++k) v = Value::make_array(ValueType::Array, {v});
        Writer w;
        w.set("deep", v);
        fails_with(w, "nested deeper");
    }
    { Writer w(1); fails_with(w, "version 1"); }
}

// ---- truncation ---------------------------------------------------------------------------------

// Every prefix that cuts into the header, metadata, tensor infos or tensor data must fail cleanly
// (each prefix is parsed from an exactly-sized copy so ASan sees any over-read); prefixes that only
// drop the trailing padding after the last tensor are still valid files.
TEST_F(GgufFiles, EveryTruncationFails) {
    Writer w(3);
    all_values(w);
    w.set("general.alignment", Value::make_u32(64));
    const auto a = pattern(24, 1), q = pattern(34, 2);
    w.add_tensor_data("a", id(GgmlType::F32), {3, 2}, a);
    w.add_tensor_data("blk.0.q", id(GgmlType::Q8_0), {32}, q);
    ASSERT_TRUE(w.write(path("full.gguf")).is_ok());
    const auto full = slurp(path("full.gguf"));
    auto r = File::parse(full, "full");
    ASSERT_TRUE(r.has_value()) << r.error_message();
    uint64_t min_valid = 0;
    for (const auto& t : (*r)->tensors()) min_valid = std::max(min_valid, (*r)->data_offset() + t.offset + t.nbytes);
    ASSERT_LT(min_valid, full.size());
    for (size_t n = 0; n <= full.size(); ++n) {
        std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        auto p = File::parse(prefix, "cut");
        if (n < min_valid) {
            ASSERT_FALSE(p.has_value()) << "prefix of " << n << " bytes parsed";
            ASSERT_EQ(p.error_message().rfind("cut: ", 0), 0u) << p.error_message();
        } else {
            ASSERT_TRUE(p.has_value()) << n << ": " << p.error_message();
        }
    }
    // One representative message.
    std::vector<uint8_t> cut(full.begin(), full.begin() + 500);
    auto p = File::parse(cut, "cut");
    ASSERT_FALSE(p.has_value());
    EXPECT_NE(p.error_message().find("metadata key #"), std::string::npos) << p.error_message();
    EXPECT_NE(p.error_message().find("(file size 500)"), std::string::npos) << p.error_message();
}

TEST(GgufReal, EveryHeaderTruncationOfStories260KFails) {
    const std::string p = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(p, "stories260K/stories260K-f32.gguf");
    const auto full = slurp(p);
    ASSERT_EQ(full.size(), 1185504u);
    // Every byte of the header and the first metadata, every 31st through the vocabulary, every byte
    // of the tensor infos and the start of the data, then a stride through the data.
    constexpr size_t kDataOffset = 14304;
    for (size_t n = 0; n < full.size();
         n += (n < 1024 || (n > kDataOffset - 1500 && n < kDataOffset + 256)) ? 1 : (n < kDataOffset ? 31 : 4099)) {
        // Exact-size copies (so ASan sees over-reads) while the parser still reads; past the
        // tensor infos it only does arithmetic, so a sub-span is enough there.
        std::vector<uint8_t> prefix;
        if (n <= kDataOffset) prefix.assign(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        auto r = n <= kDataOffset ? File::parse(prefix, "stories") : File::parse({full.data(), n}, "stories");
        ASSERT_FALSE(r.has_value()) << n;
    }
    EXPECT_TRUE(File::parse(full, "stories").has_value());
}

// ---- hostile files ------------------------------------------------------------------------------

TEST(GgufHostile, HeaderProblems) {
    expect_error({}, {"too short (0 bytes)"});
    expect_error({'G', 'G'}, {"too short (2 bytes)"});
    expect_error(Raw().u32(0x12345678).u32(3).u64(0).u64(0).b, {"not a GGUF file: magic is \"xV4\\x12\""});
    expect_error(Raw().u32(0x67676a74).u32(3).b, {"legacy"});
    expect_error(Raw().header(0, 0, 1).b, {"version 1 is not supported"});
    expect_error(Raw().header(0, 0, 4).b, {"unsupported GGUF version 4"});
    expect_error(Raw().header(0, 0, 0x03000000).b, {"big-endian"});
    expect_error(Raw().u32(kMagic).u32(3).u64(0).b, {"metadata key count at offset 16", "needs 8 bytes"});
    EXPECT_TRUE(parse(Raw().header(0, 0, 2).b).has_value());
    EXPECT_TRUE(parse(Raw().header(0, 0, 3).b).has_value());
}

TEST(GgufHostile, HugeCountsFailFastWithoutAllocating) {
    expect_error(Raw().header(0, uint64_t{1} << 60).b, {"metadata key count 1152921504606846976 is impossible"});
    expect_error(Raw().header(~0ull, 0).b, {"tensor count 18446744073709551615 is impossible"});
    expect_error(Raw().header(1ull << 40, 1).kv_u32("a", 1).b, {"tensor count 1099511627776"});
    // key length 2^60
    expect_error(Raw().header(0, 1).u64(uint64_t{1} << 60).u32(0).u32(0).u32(0).b,
                 {"metadata key #0", "length 1152921504606846976 exceeds"});
    // string value length near 2^64
    expect_error(Raw().header(0, 1).str("k").u32(8).u64(~0ull - 3).b, {"'k'", "string value", "exceeds"});
    // array count 2^60 of u32 / of strings / of arrays
    expect_error(Raw().header(0, 1).str("arr").u32(9).u32(4).u64(uint64_t{1} << 60).u32(0).b,
                 {"'arr'", "1152921504606846976 elements of type u32"});
    expect_error(Raw().header(0, 1).str("arr").u32(9).u32(8).u64(uint64_t{1} << 62).u64(0).b,
                 {"elements of type string"});
    expect_error(Raw().header(0, 1).str("arr").u32(9).u32(9).u64(~0ull).u64(0).b, {"elements of type array"});
    // More metadata values than the reader's resource bound, though the bytes are there.
    {
        Raw r;
        r.header(0, 1).str("big").u32(9).u32(0).u64(kMaxMetadataValues + 1);
        r.b.resize(r.b.size() + kMaxMetadataValues + 1, 0);
        expect_error(r.b, {"'big'", "more than 16777216 values"});
    }
    // tensor name length
    expect_error(Raw().header(1, 0).u64(~0ull).u32(1).u64(1).u32(0).u64(0).u64(0).b, {"tensor #0", "exceeds"});
}

TEST(GgufHostile, ValueProblems) {
    expect_error(Raw().header(0, 1).str("k").u32(13).u32(0).u32(0).b, {"'k'", "unknown value type 13"});
    expect_error(Raw().header(0, 1).str("k").u32(0xffffffff).u32(0).u32(0).b, {"unknown value type 4294967295"});
    expect_error(Raw().header(0, 1).str("k").u32(9).u32(77).u64(1).u32(0).b, {"unknown element type 77"});
    expect_error(Raw().header(0, 1).str("b").u32(7).u8(2).u32(0).u32(0).u32(0).b, {"'b'", "bool value", "is 2"});
    expect_error(Raw().header(0, 1).str("").u32(4).u32(0).b, {"metadata key #0: key is empty"});
    expect_error(Raw().header(0, 1).str("bad\xc3(").u32(4).u32(0).b, {"key #0", "not valid UTF-8", "\\xc3"});
    expect_error(Raw().header(0, 1).str("\xed\xa0\x80").u32(4).u32(0).b, {"not valid UTF-8"});  // surrogate
    expect_error(Raw().header(0, 3).kv_u32("a", 1).kv_u32("b\nc", 2).kv_u32("b\nc", 3).b,
                 {"metadata key #2 ('b\\nc')", "duplicate key (first defined as key #1)"});
    // Nesting: depth kMaxArrayDepth is fine, one more is refused.
    auto nested = [](int depth) {
        Raw r;
        r.header(0, 1).str("deep").u32(9);
        for (int k = 1; k < depth; ++k) r.u32(9).u64(1);
        r.u32(4).u64(1).u32(7);
        return r.b;
    };
    auto ok = parse(nested(kMaxArrayDepth));
    ASSERT_TRUE(ok.has_value()) << ok.error_message();
    EXPECT_EQ((*ok)->find("deep")->type_string(), "array[array[array[array[array[array[array[array[u32]]]]]]]]");
    expect_error(nested(kMaxArrayDepth + 1), {"'deep'", "nested 9 levels deep (limit 8)"});
    expect_error(nested(100000), {"nested 9 levels deep"});
    // Error inside an array names the element.
    expect_error(Raw().header(0, 1).str("arr").u32(9).u32(7).u64(3).u8(1).u8(0).u8(5).b,
                 {"'arr'", "array element #2 of 3", "is 5"});
}

TEST(GgufHostile, AlignmentProblems) {
    expect_error(Raw().header(0, 1).kv_u32("general.alignment", 48).b, {"general.alignment = 48 is not a power of two"});
    expect_error(Raw().header(0, 1).kv_u32("general.alignment", 0).b, {"general.alignment = 0"});
    expect_error(Raw().header(0, 1).str("general.alignment").u32(5).u32(32).b,
                 {"general.alignment must be of type u32, but it is i32"});
    expect_error(Raw().header(0, 1).str("general.alignment").u32(10).u64(32).b, {"but it is u64"});
    auto r = parse(Raw().header(0, 1).kv_u32("general.alignment", 1).b);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ((*r)->alignment(), 1u);
}

TEST(GgufHostile, TensorInfoProblems) {
    const uint32_t f32 = id(GgmlType::F32);
    expect_error(Raw().header(1, 0).tensor("t", {4, 4, 4, 4, 4}, f32, 0).data(400).b, {"tensor 't' (#0)", "n_dims = 5 (must be 1..4)"});
    expect_error(Raw().header(1, 0).str("t").u32(0xffffffff).data(64).b, {"n_dims = 4294967295"});
    expect_error(Raw().header(1, 0).tensor("t", {}, f32, 0).data(64).b, {"n_dims = 0"});
    expect_error(Raw().header(1, 0).tensor("t", {4, 0}, f32, 0).data(64).b, {"ne[1] = 0"});
    expect_error(Raw().header(1, 0).tensor("t", {~0ull}, f32, 0).data(64).b, {"ne[0] = 18446744073709551615"});
    expect_error(Raw().header(1, 0).tensor("t", {1ull << 32, 1ull << 31, 4}, f32, 0).data(64).b,
                 {"element count overflows: 4294967296 * 2147483648 exceeds 2^63-1"});
    // Element count fits int64 but the byte size does not.
    expect_error(Raw().header(1, 0).tensor("t", {1ull << 31, 1ull << 31}, f32, 0).data(64).b, {"data size overflows"});
    expect_error(Raw().header(1, 0).tensor("t", {4}, 99, 0).data(64).b, {"unknown tensor type 99"});
    expect_error(Raw().header(1, 0).tensor("t", {48}, id(GgmlType::Q4_0), 0).data(64).b,
                 {"ne[0] = 48 is not a multiple of the q4_0 block size 32"});
    expect_error(Raw().header(1, 0).tensor("", {4}, f32, 0).data(64).b, {"tensor #0: name is empty"});
    expect_error(Raw().header(1, 0).tensor("\xff", {4}, f32, 0).data(64).b, {"tensor '\\xff' (#0)", "not valid UTF-8"});
    expect_error(Raw().header(2, 0).tensor("t", {4}, f32, 0).tensor("t", {4}, f32, 32).data(64).b,
                 {"tensor 't' (#1)", "duplicate tensor name (first used by tensor #0)"});
}

TEST(GgufHostile, TensorDataProblems) {
    const uint32_t f32 = id(GgmlType::F32);
    // 16 bytes of data at offset 0 in a data section holding only 8.
    expect_error(Raw().header(1, 0).tensor("blk.0.attn_q.weight", {4}, f32, 0).data(8).b,
                 {"tensor 'blk.0.attn_q.weight' (#0): data [offset 0, 16 bytes) ends past the end of the file"});
    expect_error(Raw().header(1, 0).tensor("t", {4}, f32, 4096).data(64).b, {"[offset 4096, 16 bytes)", "past the end"});
    expect_error(Raw().header(1, 0).tensor("t", {4}, f32, ~0ull & ~31ull).data(64).b, {"past the end"});
    expect_error(Raw().header(1, 0).tensor("t", {4}, f32, 16).data(64).b,
                 {"data offset 16 is not a multiple of the alignment 32"});
    expect_error(Raw().header(2, 0).tensor("a", {16}, f32, 0).tensor("b", {4}, f32, 32).data(128).b,
                 {"tensor 'b' (#1): data [offset 32, 16 bytes) overlaps tensor 'a' (#0) [offset 0, 64 bytes)"});
    expect_error(Raw().header(2, 0).tensor("a", {4}, f32, 0).tensor("b", {4}, f32, 0).data(64).b, {"overlaps"});
    // Touching but not overlapping, listed out of order: fine. (The bytes must outlive the File.)
    const auto touching = Raw().header(2, 0).tensor("b", {8}, f32, 32).tensor("a", {8}, f32, 0).data(64).b;
    auto r = parse(touching);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    EXPECT_EQ((*r)->find_tensor("b")->data[0], 32);
    // Custom alignment is used for the data section and offsets.
    const auto aligned = Raw().header(1, 1).kv_u32("general.alignment", 256).tensor("t", {4}, f32, 0).data(16, 256).b;
    r = parse(aligned);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    EXPECT_EQ((*r)->data_offset(), 256u);
    expect_error(Raw().header(1, 1).kv_u32("general.alignment", 256).tensor("t", {4}, f32, 32).data(512, 256).b,
                 {"not a multiple of the alignment 256"});
}

// ---- getters and rendering ----------------------------------------------------------------------

TEST(GgufValues, TypedGetters) {
    auto r = parse(Raw()
                       .header(0, 7)
                       .kv_str("s", "text")
                       .kv_u32("u", 7)
                       .str("neg").u32(5).u32(static_cast<uint32_t>(-3))
                       .str("big").u32(10).u64(~0ull)
                       .str("f").u32(6).pod(0.5f)
                       .str("b").u32(7).u8(1)
                       .str("arr").u32(9).u32(4).u64(2).u32(1).u32(2)
                       .b);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    const File& f = **r;
    EXPECT_EQ(*f.get_string("s").value(), "text");
    EXPECT_EQ(*f.get_u64("u").value(), 7u);
    EXPECT_EQ(*f.get_i64("u").value(), 7);
    EXPECT_EQ(*f.get_i64("neg").value(), -3);
    EXPECT_EQ(*f.get_u64("big").value(), ~0ull);
    EXPECT_EQ(*f.get_f64("f").value(), 0.5);
    EXPECT_EQ(*f.get_f64("u").value(), 7.0);
    EXPECT_TRUE(*f.get_bool("b").value());
    EXPECT_FALSE(f.get_u64("absent").value().has_value());
    EXPECT_FALSE(f.get_string("absent").value().has_value());

    auto e = f.get_u64("neg");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error_message().find("key 'neg' is i32 with value -3, which does not fit u64"), std::string::npos)
        << e.error_message();
    EXPECT_NE(f.get_i64("big").error_message().find("does not fit i64"), std::string::npos);
    EXPECT_NE(f.get_string("u").error_message().find("key 'u' is u32, expected string"), std::string::npos);
    EXPECT_NE(f.get_bool("s").error_message().find("is string, expected bool"), std::string::npos);
    EXPECT_NE(f.get_u64("arr").error_message().find("is array[u32], expected an integer"), std::string::npos);
    EXPECT_NE(f.get_f64("s").error_message().find("expected a number"), std::string::npos);
    EXPECT_EQ(f.get_u64("f").error_message().rfind("test.gguf: ", 0), 0u);
}

TEST(GgufValues, Rendering) {
    EXPECT_EQ(Value::make_u32(7).to_string(), "7");
    EXPECT_EQ(Value::make_i32(-7).to_string(), "-7");
    EXPECT_EQ(Value::make_f32(1e-5f).to_string(), "1e-05");
    EXPECT_EQ(Value::make_bool(false).to_string(), "false");
    EXPECT_EQ(Value::make_string("a\"b\n").to_string(), "\"a\\\"b\\n\"");
    EXPECT_EQ(Value::make_i32_array({1, 2, 3, 4}).to_string(2), "[1, 2, ... (2 more, 4 total)]");
    EXPECT_EQ(Value::make_string_array({"x"}).to_string(), "[\"x\"]");
    EXPECT_EQ(Value::make_string_array({"x"}).type_string(), "array[string]");
    const std::string long_s = Value::make_string(std::string(1000, 'a')).to_string();
    EXPECT_LT(long_s.size(), 200u);
    EXPECT_NE(long_s.find("(1000 bytes)"), std::string::npos);
    EXPECT_STREQ(value_type_name(ValueType::F64), "f64");
    EXPECT_STREQ(value_type_name(static_cast<ValueType>(99)), "unknown");
}

// ---- real files ---------------------------------------------------------------------------------

TEST(GgufReal, Stories260K) {
    const std::string p = pl::test::model_file("stories260K/stories260K-f32.gguf");
    PL_REQUIRE_DATA(p, "stories260K/stories260K-f32.gguf");
    auto r = File::open(p);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    const File& f = **r;
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.data_offset(), 14304u);
    EXPECT_EQ(f.metadata().size(), 19u);
    EXPECT_EQ(*f.get_string("general.architecture").value(), "llama");
    EXPECT_EQ(*f.get_u64("llama.block_count").value(), 5u);
    EXPECT_EQ(*f.get_u64("llama.embedding_length").value(), 64u);
    EXPECT_EQ(*f.get_u64("llama.attention.head_count").value(), 8u);
    EXPECT_EQ(*f.get_u64("llama.attention.head_count_kv").value(), 4u);
    EXPECT_EQ(*f.get_u64("llama.feed_forward_length").value(), 172u);
    EXPECT_FLOAT_EQ(static_cast<float>(*f.get_f64("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);
    const Value* toks = f.find("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    EXPECT_EQ(toks->arr.size(), 512u);
    EXPECT_EQ(toks->arr[1].s, "<s>");
    ASSERT_EQ(f.tensors().size(), 48u);  // 3 + 9 per layer
    const TensorInfo* emb = f.find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->type, id(GgmlType::F32));
    EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 512}));
    EXPECT_EQ(emb->nbytes, 131072u);
    EXPECT_EQ(emb->data, f.tensors()[0].data);
    const TensorInfo* q = f.find_tensor("blk.0.attn_k.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->ne, (std::vector<int64_t>{64, 32}));
    uint64_t total = 0;
    for (const auto& t : f.tensors()) total += t.nbytes;
    EXPECT_LE(f.data_offset() + total, f.file_size());
}

TEST(GgufReal, VocabLlamaSpm) {
    const std::string p = pl::test::model_file("vocab/ggml-vocab-llama-spm.gguf");
    PL_REQUIRE_DATA(p, "vocab/ggml-vocab-llama-spm.gguf");
    auto r = File::open(p);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    const File& f = **r;
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_EQ(*f.get_string("general.architecture").value(), "llama");
    EXPECT_EQ(*f.get_string("tokenizer.ggml.model").value(), "llama");
    EXPECT_EQ(*f.get_u64("llama.block_count").value(), 32u);
    EXPECT_EQ(*f.get_u64("llama.vocab_size").value(), 32000u);
    const Value* toks = f.find("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr);
    ASSERT_EQ(toks->arr.size(), 32000u);
    EXPECT_EQ(toks->arr[0].s, "<unk>");
    EXPECT_EQ(toks->arr[1].s, "<s>");
    EXPECT_EQ(toks->arr[2].s, "</s>");
    EXPECT_EQ(f.find("tokenizer.ggml.scores")->arr.size(), 32000u);
    EXPECT_EQ(f.find("tokenizer.ggml.token_type")->elem_type, ValueType::I32);
    EXPECT_TRUE(*f.get_bool("tokenizer.ggml.add_bos_token").value());
    EXPECT_FALSE(*f.get_bool("tokenizer.ggml.add_eos_token").value());
    // The file ends before its (padded) data section; with no tensors that is valid.
    EXPECT_GT(f.data_offset(), f.file_size());
}

TEST(GgufReal, OpenReportsMissingFile) {
    auto r = File::open("/nonexistent/x.gguf");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error_message().find("/nonexistent/x.gguf"), std::string::npos);
}

// ---- interop with the official gguf Python package ---------------------------------------------

namespace {
bool python_gguf_available() {
    static const bool ok = std::system("python3 -c 'import gguf, numpy' >/dev/null 2>&1") == 0;
    return ok;
}
}  // namespace

TEST_F(GgufFiles, PythonGgufReaderReadsOurOutput) {
    if (!python_gguf_available()) GTEST_SKIP() << "python3 with the gguf package not available (pip install gguf)";
    std::vector<float> a(6);
    for (size_t k = 0; k < a.size(); ++k) a[k] = 0.5f * static_cast<float>(k) - 1.0f;
    std::vector<uint8_t> a_bytes(24);
    std::memcpy(a_bytes.data(), a.data(), 24);
    std::vector<uint8_t> h_bytes = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x00, 0x00};  // f16 1, -2, 0.5, 0
    std::vector<uint8_t> q_bytes = pattern(34 * 2, 9);
    std::vector<int32_t> ints = {7, -8, 9};
    std::vector<uint8_t> i_bytes(12);
    std::memcpy(i_bytes.data(), ints.data(), 12);
    for (uint32_t version : {2u, 3u}) {
        SCOPED_TRACE(version);
        Writer w(version);
        all_values(w);
        w.set("general.alignment", Value::make_u32(64));
        w.add_tensor_data("a.f32", id(GgmlType::F32), {3, 2}, a_bytes);
        w.add_tensor_data("h.f16", id(GgmlType::F16), {4}, h_bytes);
        w.add_tensor_data("q.q8_0", id(GgmlType::Q8_0), {32, 2}, q_bytes);
        w.add_tensor_data("i.i32", id(GgmlType::I32), {3, 1}, i_bytes);
        const std::string p = path("py" + std::to_string(version) + ".gguf");
        ASSERT_TRUE(w.write(p).is_ok());
        const std::string script =
            "import sys, gguf\n"
            "r = gguf.GGUFReader(sys.argv[1])\n"
            "f = r.fields\n"
            "print('version', int(f['GGUF.version'].parts[-1][0]))\n"
            "print('alignment', r.alignment)\n"
            "print('arch', bytes(f['general.architecture'].parts[-1]).decode())\n"
            "print('i32', int(f['t.i32'].parts[-1][0]))\n"
            "print('u64', int(f['t.u64'].parts[-1][0]))\n"
            "print('f64', float(f['t.f64'].parts[-1][0]))\n"
            "print('strings', [bytes(f['t.strings'].parts[i]).decode() for i in f['t.strings'].data])\n"
            "print('nested', len(f['t.nested'].types), f['t.nested'].types[0].name)\n"
            "for t in r.tensors:\n"
            "    print('T', t.name, t.tensor_type.name, list(int(x) for x in t.shape), int(t.n_bytes),\n"
            "          int(t.data_offset) % 64, [round(float(x), 4) for x in t.data.flatten()[:6]] if t.tensor_type.name != 'Q8_0' else '')\n";
        std::ofstream(path("check.py")) << script;
        auto res = pl::test::run_cmd("python3 " + path("check.py") + " " + p);
        ASSERT_EQ(res.rc, 0) << res.err;
        const std::string& o = res.out;
        auto has = [&](const std::string& s) { EXPECT_NE(o.find(s), std::string::npos) << "missing '" << s << "' in:\n" << o; };
        has("version " + std::to_string(version) + "\n");
        has("alignment 64\n");
        has("arch llama\n");
        has("i32 -2000000000\n");
        has("u64 18446744073709551615\n");
        has("f64 3.141592653589793\n");
        has("strings ['<unk>', '', '\xe2\x96\x81the']\n");
        has("nested 3 ARRAY\n");  // python lists the nested types: ARRAY, ARRAY, INT32
        has("T a.f32 F32 [3, 2] 24 0 [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]\n");
        has("T h.f16 F16 [4] 8 0 [1.0, -2.0, 0.5, 0.0]\n");
        has("T q.q8_0 Q8_0 [32, 2] 68 0 \n");
        has("T i.i32 I32 [3, 1] 12 0 [7.0, -8.0, 9.0]\n");
    }
}

TEST_F(GgufFiles, WeReadPythonGgufWriterOutput) {
    if (!python_gguf_available()) GTEST_SKIP() << "python3 with the gguf package not available (pip install gguf)";
    const std::string p = path("from_py.gguf");
    const std::string script =
        "import sys, numpy as np, gguf\n"
        "w = gguf.GGUFWriter(sys.argv[1], 'llama')\n"
        "w.add_block_count(5)\n"
        "w.add_uint32('x.u32', 77)\n"
        "w.add_float32('x.f32', 0.25)\n"
        "w.add_string('x.s', 'hello')\n"
        "w.add_bool('x.b', True)\n"
        "w.add_array('x.arr', [1, 2, 3])\n"
        "w.add_array('x.strs', ['a', 'bc'])\n"
        "w.add_tensor('w', np.arange(12, dtype=np.float32).reshape(3, 4))\n"
        "w.add_tensor('h', np.array([1, 2], dtype=np.float16))\n"
        "w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()\n";
    std::ofstream(path("make.py")) << script;
    auto res = pl::test::run_cmd("python3 " + path("make.py") + " " + p);
    ASSERT_EQ(res.rc, 0) << res.err;
    auto r = File::open(p);
    ASSERT_TRUE(r.has_value()) << r.error_message();
    const File& f = **r;
    EXPECT_EQ(*f.get_string("general.architecture").value(), "llama");
    EXPECT_EQ(*f.get_u64("llama.block_count").value(), 5u);
    EXPECT_EQ(*f.get_u64("x.u32").value(), 77u);
    EXPECT_EQ(*f.get_f64("x.f32").value(), 0.25);
    EXPECT_EQ(*f.get_string("x.s").value(), "hello");
    EXPECT_TRUE(*f.get_bool("x.b").value());
    EXPECT_EQ(f.find("x.arr")->arr.size(), 3u);
    EXPECT_EQ(f.find("x.strs")->arr[1].s, "bc");
    const TensorInfo* w = f.find_tensor("w");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->ne, (std::vector<int64_t>{4, 3}));  // GGML order: innermost first
    float v[12];
    std::memcpy(v, w->data, sizeof v);
    EXPECT_EQ(v[11], 11.0f);
    const TensorInfo* h = f.find_tensor("h");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->type, id(GgmlType::F16));
    EXPECT_EQ(h->nbytes, 4u);
}

// The committed fuzz seeds (fuzz/make_corpus.cpp): valid ones parse, bad_* ones fail cleanly. Any
// crashing input the fuzzer finds goes into fuzz/corpus/gguf as bad_<what>.gguf and is checked here.
TEST(GgufCorpus, SeedFilesBehave) {
    const fs::path dir = fs::path(PL_SOURCE_DIR) / "fuzz" / "corpus" / "gguf";
    if (!fs::exists(dir)) GTEST_SKIP() << "no seed corpus at " << dir;
    int n_good = 0, n_bad = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        auto r = File::open(e.path().string());
        if (name.rfind("bad_", 0) == 0) {
            ++n_bad;
            EXPECT_FALSE(r.has_value()) << name;
            EXPECT_EQ(r.error_message().rfind(e.path().string(), 0), 0u) << r.error_message();
        } else {
            ++n_good;
            EXPECT_TRUE(r.has_value()) << name << ": " << r.error_message();
        }
    }
    EXPECT_GE(n_good, 4);
    EXPECT_GE(n_bad, 3);
}
