// SPDX-License-Identifier: MIT
// Writes the GGUF fuzz seed corpus (each file well under 8 KB) into the directory given as argv[1]:
// valid v2/v3 files covering every value type, nested arrays and several tensor types, plus a few
// malformed variants so the fuzzer starts next to the interesting error paths.
#include "format/gguf.h"
#include "quant/formats.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace pl::gguf;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t k = 0; k < n; ++k) v[k] = static_cast<uint8_t>(seed + k * 7);
    return v;
}

uint32_t id(pl::GgmlType t) { return static_cast<uint32_t>(t); }

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool spit(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return static_cast<bool>(out);
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
    w.set("t.u64", Value::make_u64(1ull << 40));
    w.set("t.i64", Value::make_i64(-(1ll << 40)));
    w.set("t.f64", Value::make_f64(3.25));
    w.set("t.strings", Value::make_string_array({"<unk>", "<s>", "</s>", "\xe2\x96\x81the"}));
    w.set("t.f32s", Value::make_f32_array({0.f, -1.5f, 2.25f}));
    w.set("t.i32s", Value::make_i32_array({1, 2, 3}));
    w.set("t.nested", Value::make_array(ValueType::Array, {Value::make_i32_array({1, 2}), Value::make_i32_array({})}));
    w.set("t.empty", Value::make_array(ValueType::U8, {}));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    int failures = 0;
    auto write = [&](const Writer& w, const std::string& name) {
        pl::Status s = w.write(dir + "/" + name);
        if (!s) {
            std::fprintf(stderr, "%s\n", s.message().c_str());
            ++failures;
        }
    };

    const auto f32_data = pattern(4 * 8 * 2, 1);
    const auto f16_data = pattern(2 * 16, 2);
    const auto q4_0_data = pattern(18 * 2, 3);
    const auto q8_0_data = pattern(34, 4);
    const auto q4_k_data = pattern(144, 5);
    const auto i32_data = pattern(4 * 3, 6);

    {
        Writer w(3);
        write(w, "empty_v3.gguf");
    }
    for (uint32_t version : {2u, 3u}) {
        Writer w(version);
        all_values(w);
        w.add_tensor_data("tok_embd.weight", id(pl::GgmlType::F32), {8, 2}, f32_data);
        write(w, "values_v" + std::to_string(version) + ".gguf");
    }
    {
        Writer w(3);
        w.set("general.architecture", Value::make_string("llama"));
        w.set("general.alignment", Value::make_u32(64));
        w.add_tensor_data("a.f32", id(pl::GgmlType::F32), {8, 2, 1, 1}, f32_data);
        w.add_tensor_data("b.f16", id(pl::GgmlType::F16), {4, 2, 2}, f16_data);
        w.add_tensor_data("c.q4_0", id(pl::GgmlType::Q4_0), {32, 2}, q4_0_data);
        w.add_tensor_data("d.q8_0", id(pl::GgmlType::Q8_0), {32}, q8_0_data);
        w.add_tensor_data("e.q4_k", id(pl::GgmlType::Q4_K), {256}, q4_k_data);
        w.add_tensor_data("f.i32", id(pl::GgmlType::I32), {3}, i32_data);
        write(w, "tensors_align64.gguf");
    }
    {
        Writer w(3);
        w.set("tokenizer.ggml.model", Value::make_string("llama"));
        std::vector<std::string> toks;
        std::vector<float> scores;
        std::vector<int32_t> types;
        for (int k = 0; k < 40; ++k) {
            toks.push_back("tok" + std::to_string(k));
            scores.push_back(-static_cast<float>(k));
            types.push_back(k < 3 ? 3 : 1);
        }
        w.set("tokenizer.ggml.tokens", Value::make_string_array(toks));
        w.set("tokenizer.ggml.scores", Value::make_f32_array(scores));
        w.set("tokenizer.ggml.token_type", Value::make_i32_array(types));
        w.set("tokenizer.ggml.add_bos_token", Value::make_bool(true));
        write(w, "vocab_only.gguf");
    }
    if (failures) return 1;

    // Malformed variants of a valid file.
    auto base = slurp(dir + "/tensors_align64.gguf");
    if (base.size() < 64) return 1;
    auto trunc = base;
    trunc.resize(base.size() / 2);
    spit(dir + "/bad_truncated.gguf", trunc);
    auto huge_kv = base;
    for (int k = 0; k < 8; ++k) huge_kv[16 + k] = 0xff;  // kv count
    spit(dir + "/bad_huge_kv_count.gguf", huge_kv);
    auto v1 = base;
    v1[4] = 1;
    spit(dir + "/bad_version1.gguf", v1);
    return 0;
}
