// SPDX-License-Identifier: MIT
#include "convert/llama_gguf.h"

#include "quant/formats.h"

#include <cctype>
#include <cstdio>

namespace pl::convert {

Result<OutType> parse_outtype(std::string_view s) {
    if (s == "f32") return OutType::F32;
    if (s == "f16") return OutType::F16;
    if (s == "bf16") return OutType::BF16;
    if (s == "q8_0") return OutType::Q8_0;
    return err("unknown --outtype '{}' (expected f32, f16, bf16 or q8_0)", s);
}

const char* outtype_name(OutType t) {
    switch (t) {
        case OutType::F32: return "f32";
        case OutType::F16: return "f16";
        case OutType::BF16: return "bf16";
        case OutType::Q8_0: return "q8_0";
    }
    return "?";
}

uint32_t file_type(OutType t) {
    switch (t) {
        case OutType::F32: return 0;
        case OutType::F16: return 1;
        case OutType::Q8_0: return 7;
        case OutType::BF16: return 32;
    }
    return 0;
}

static GgmlType ggml_type(OutType t) {
    switch (t) {
        case OutType::F32: return GgmlType::F32;
        case OutType::F16: return GgmlType::F16;
        case OutType::BF16: return GgmlType::BF16;
        case OutType::Q8_0: return GgmlType::Q8_0;
    }
    return GgmlType::F32;
}

bool is_byte_piece(std::string_view p) {
    return p.size() == 6 && p.substr(0, 3) == "<0x" && p[5] == '>' && std::isxdigit(static_cast<unsigned char>(p[3])) &&
           std::isxdigit(static_cast<unsigned char>(p[4]));
}

void set_llama_metadata(gguf::Writer& w, const LlamaHParams& hp, const std::string& name, OutType outtype) {
    using gguf::Value;
    auto u32 = [](int64_t v) { return Value::make_u32(static_cast<uint32_t>(v)); };
    w.set("general.architecture", Value::make_string("llama"));
    w.set("general.name", Value::make_string(name));
    w.set("llama.context_length", u32(hp.context_length));
    w.set("llama.embedding_length", u32(hp.dim));
    w.set("llama.block_count", u32(hp.n_layers));
    w.set("llama.feed_forward_length", u32(hp.hidden_dim));
    w.set("llama.rope.dimension_count", u32(hp.head_dim));
    w.set("llama.attention.head_count", u32(hp.n_heads));
    w.set("llama.attention.head_count_kv", u32(hp.n_kv_heads));
    w.set("llama.attention.layer_norm_rms_epsilon", Value::make_f32(hp.rms_eps));
    w.set("llama.rope.freq_base", Value::make_f32(hp.rope_theta));
    w.set("llama.vocab_size", u32(hp.vocab_size));
    w.set("general.file_type", Value::make_u32(file_type(outtype)));
}

uint32_t choose_type(const std::string& name, const std::vector<int64_t>& ne, OutType outtype) {
    const bool is_norm = name.size() >= 12 && name.compare(name.size() - 12, 12, "_norm.weight") == 0;
    if (ne.size() <= 1 || is_norm) return static_cast<uint32_t>(GgmlType::F32);
    const auto t = static_cast<uint32_t>(ggml_type(outtype));
    if (!row_bytes(t, ne[0])) return static_cast<uint32_t>(GgmlType::F16);  // e.g. Q8_0 with ne[0] % 32 != 0
    return t;
}

void add_converted_tensor(gguf::Writer& w, const std::string& name, uint32_t type, std::vector<int64_t> ne,
                          RowReader read_row) {
    const int64_t cols = ne.empty() ? 1 : ne[0];
    int64_t rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
    w.add_tensor(name, type, std::move(ne), [name, type, cols, rows, read_row](std::span<uint8_t> out) -> Status {
        const TypeTraits* tt = type_traits(type);
        const auto rb = row_bytes(type, cols);
        if (!tt || !rb) return err("tensor '{}': cannot store rows of {} as {}", name, cols, type_name(type));
        if (!tt->quantize_row) return err("tensor '{}': no quantizer for {}", name, tt->name);
        if (out.size() != *rb * static_cast<size_t>(rows))
            return err("tensor '{}': writer gave {} bytes, expected {}", name, out.size(), *rb * rows);
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
            PL_TRY(read_row(r, row.data()));
            tt->quantize_row(row.data(), out.data() + static_cast<size_t>(r) * *rb, cols);
        }
        return Status::ok();
    });
}

void Progress::add(const std::string& name, uint32_t type, const std::vector<int64_t>& ne) {
    names.push_back(name);
    details.push_back(fmt::format("{} [{}]", type_name(type), fmt::join(ne, ", ")));
}

std::function<void(uint64_t, uint64_t)> Progress::callback() {
    if (!enabled) return {};
    return [this](uint64_t done, uint64_t total) {
        const size_t i = next++;
        const std::string name = i < names.size() ? names[i] : std::string("?");
        const std::string det = i < details.size() ? details[i] : std::string();
        std::fprintf(stderr, "[%*zu/%zu] %-32s %-20s %9.1f/%.1f MiB\n", static_cast<int>(std::to_string(names.size()).size()),
                     i + 1, names.size(), name.c_str(), det.c_str(), static_cast<double>(done) / (1 << 20),
                     static_cast<double>(total) / (1 << 20));
    };
}

}  // namespace pl::convert
