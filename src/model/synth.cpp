// SPDX-License-Identifier: MIT
#include "model/synth.h"

#include "format/gguf.h"
#include "quant/formats.h"

#include <cmath>
#include <cstring>
#include <memory>

namespace pl {
namespace {

// splitmix64: a small, fast, well-mixed generator; seeded per (tensor, row) so output does not
// depend on the thread count.
struct SplitMix64 {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in [-1, 1).
    float uniform() { return static_cast<float>(static_cast<int64_t>(next() >> 11) - (int64_t{1} << 52)) * 0x1p-52f; }
};

uint64_t hash_name(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    return h;
}

uint32_t file_type_of(GgmlType t) {  // llama.cpp's LLAMA_FTYPE values
    switch (t) {
        case GgmlType::F32: return 0;
        case GgmlType::F16: return 1;
        case GgmlType::Q4_0: return 2;
        case GgmlType::Q4_1: return 3;
        case GgmlType::Q8_0: return 7;
        case GgmlType::BF16: return 32;
        default: return 1024;  // "guessed"
    }
}

// SentencePiece-style byte vocabulary: <unk> <s> </s>, 256 byte tokens, then filler pieces.
void builtin_vocab(gguf::Writer& w, int vocab_size) {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    tokens = {"<unk>", "<s>", "</s>"};
    scores = {0, 0, 0};
    types = {2, 3, 3};
    for (int b = 0; b < 256 && static_cast<int>(tokens.size()) < vocab_size; ++b) {
        tokens.push_back(fmt::format("<0x{:02X}>", b));
        scores.push_back(0);
        types.push_back(6);
    }
    for (int i = static_cast<int>(tokens.size()); i < vocab_size; ++i) {
        tokens.push_back(fmt::format("\xe2\x96\x81tok{}", i));
        scores.push_back(-static_cast<float>(i));
        types.push_back(1);
    }
    w.set("tokenizer.ggml.model", gguf::Value::make_string("llama"));
    w.set("tokenizer.ggml.tokens", gguf::Value::make_string_array(std::move(tokens)));
    w.set("tokenizer.ggml.scores", gguf::Value::make_f32_array(scores));
    w.set("tokenizer.ggml.token_type", gguf::Value::make_i32_array(types));
    w.set("tokenizer.ggml.bos_token_id", gguf::Value::make_u32(1));
    w.set("tokenizer.ggml.eos_token_id", gguf::Value::make_u32(2));
    w.set("tokenizer.ggml.unknown_token_id", gguf::Value::make_u32(0));
}

}  // namespace

const std::vector<ModelShape>& model_shapes() {
    static const std::vector<ModelShape> shapes = {
        {"llama-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, false},
        {"llama-13b", 5120, 13824, 40, 40, 40, 32000, 4096, 10000.0f, false},
        {"llama-70b", 8192, 28672, 80, 64, 8, 32000, 4096, 10000.0f, false},
        {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false},
        {"smollm2-135m", 576, 1536, 30, 9, 3, 49152, 8192, 100000.0f, true},
        // Not a real model: LLaMA's structure (GQA, untied head) at a size for fast tests of the
        // parallel layouts (heads, KV heads and FFN rows divide by 2 and 4, in whole 32-blocks).
        {"tiny-gqa", 256, 768, 4, 8, 4, 512, 512, 10000.0f, false},
        // Also not a real model: LLaMA-7B's head size (128) with an FFN of 3 q3.5 groups, so that
        // tp2 must split ffn_down unevenly (512 + 256 columns) as it does at LLaMA-7B's 43 groups.
        {"tiny-uneven", 512, 768, 4, 4, 4, 512, 512, 10000.0f, false},
        // Test sizes with fewer KV heads than the tp degrees the tests run, so that KV heads are
        // replicated: 8 query heads on 2 KV heads (LLaMA-70B's 8:1 ratio at 4:1; tp 3 and 4), and
        // SmolLM2's 9 query heads on 3 KV heads (tp 4 cuts a KV group between two ranks).
        {"tiny-gqa-8x2", 256, 768, 4, 8, 2, 512, 512, 10000.0f, false},
        {"tiny-gqa-9x3", 288, 768, 4, 9, 3, 512, 512, 10000.0f, false},
    };
    return shapes;
}

const ModelShape* find_shape(std::string_view name) {
    for (const auto& s : model_shapes())
        if (name == s.name) return &s;
    return nullptr;
}

Status synth_model(const SynthOptions& o, const std::function<void(uint64_t, uint64_t)>& progress) {
    const ModelShape* shape = find_shape(o.shape);
    if (!shape) {
        std::string names;
        for (const auto& s : model_shapes()) names += (names.empty() ? "" : ", ") + std::string(s.name);
        return err("unknown shape '{}' (known: {})", o.shape, names);
    }
    const TypeTraits* tt = type_traits_by_name(o.type);
    if (!tt || !tt->quantize_row) return err("cannot write weight type '{}'", o.type);
    if (o.n_layers < 0 || o.n_layers > shape->n_layers)
        return err("--layers {} is out of range [1, {}] for {}", o.n_layers, shape->n_layers, shape->name);
    if (!(o.std > 0) || !std::isfinite(o.std)) return err("weight std {} must be positive", o.std);
    const int n_layers = o.n_layers > 0 ? o.n_layers : shape->n_layers;
    const int head_dim = shape->dim / shape->n_heads;
    const int kv_dim = head_dim * shape->n_kv_heads;
    for (int n : {shape->dim, shape->hidden_dim})
        if (n % tt->block_elems != 0)
            return err("row length {} of {} is not a multiple of {}'s block size {}", n, shape->name, tt->name, tt->block_elems);

    gguf::Writer w;
    int vocab_size = shape->vocab_size;
    std::unique_ptr<gguf::File> vocab;
    if (!o.vocab_path.empty()) {
        auto v = gguf::File::open(o.vocab_path);
        if (!v) return v.status().with_context("--vocab");
        vocab = std::move(v).value();
        const gguf::Value* toks = vocab->find("tokenizer.ggml.tokens");
        if (!toks || toks->type != gguf::ValueType::Array || toks->arr.empty())
            return err("--vocab '{}' has no tokenizer.ggml.tokens array", o.vocab_path);
        vocab_size = static_cast<int>(toks->arr.size());
        for (const auto& [key, value] : vocab->metadata())
            if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
    } else {
        builtin_vocab(w, vocab_size);
    }

    const GgmlType type = tt->type;
    w.set("general.architecture", gguf::Value::make_string("llama"));
    w.set("general.name", gguf::Value::make_string(fmt::format("synthetic {}{}", shape->name,
                                                                  n_layers != shape->n_layers ? fmt::format(" ({} layers)", n_layers) : "")));
    w.set("general.file_type", gguf::Value::make_u32(file_type_of(type)));
    if (tt->custom) w.set(custom_type_key(static_cast<uint32_t>(type)), gguf::Value::make_string(tt->name));
    w.set("llama.context_length", gguf::Value::make_u32(static_cast<uint32_t>(shape->context_length)));
    w.set("llama.embedding_length", gguf::Value::make_u32(static_cast<uint32_t>(shape->dim)));
    w.set("llama.feed_forward_length", gguf::Value::make_u32(static_cast<uint32_t>(shape->hidden_dim)));
    w.set("llama.block_count", gguf::Value::make_u32(static_cast<uint32_t>(n_layers)));
    w.set("llama.attention.head_count", gguf::Value::make_u32(static_cast<uint32_t>(shape->n_heads)));
    w.set("llama.attention.head_count_kv", gguf::Value::make_u32(static_cast<uint32_t>(shape->n_kv_heads)));
    w.set("llama.rope.dimension_count", gguf::Value::make_u32(static_cast<uint32_t>(head_dim)));
    w.set("llama.rope.freq_base", gguf::Value::make_f32(shape->rope_theta));
    w.set("llama.attention.layer_norm_rms_epsilon", gguf::Value::make_f32(1e-5f));
    w.set("parallama.synth.seed", gguf::Value::make_u64(o.seed));

    const float amp = o.std * std::sqrt(3.0f);  // uniform [-a, a] has std a/sqrt(3)
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
        const size_t rb = *row_bytes(static_cast<uint32_t>(type), cols);
        const uint64_t seed = o.seed ^ hash_name(name);
        w.add_tensor(name, static_cast<uint32_t>(type), {cols, rows}, [=](std::span<uint8_t> out) -> Status {
#pragma omp parallel
            {
                std::unique_ptr<float[]> row(new float[static_cast<size_t>(cols)]);
#pragma omp for schedule(static)
                for (int64_t r = 0; r < rows; ++r) {
                    SplitMix64 rng{seed + static_cast<uint64_t>(r) * 0x632be59bd9b4e019ull};
                    for (int64_t c = 0; c < cols; ++c) row[static_cast<size_t>(c)] = amp * rng.uniform();
                    tt->quantize_row(row.get(), out.data() + static_cast<size_t>(r) * rb, cols);
                }
            }
            return Status::ok();
        });
    };
    auto ones = [&](const std::string& name, int64_t n) {
        w.add_tensor(name, static_cast<uint32_t>(GgmlType::F32), {n}, [n](std::span<uint8_t> out) -> Status {
            const float one = 1.0f;
            for (int64_t i = 0; i < n; ++i) std::memcpy(out.data() + i * 4, &one, 4);
            return Status::ok();
        });
    };

    matrix("token_embd.weight", vocab_size, shape->dim);
    ones("output_norm.weight", shape->dim);
    if (!shape->tied_embeddings) matrix("output.weight", vocab_size, shape->dim);
    for (int l = 0; l < n_layers; ++l) {
        const std::string p = fmt::format("blk.{}.", l);
        ones(p + "attn_norm.weight", shape->dim);
        matrix(p + "attn_q.weight", shape->dim, shape->dim);
        matrix(p + "attn_k.weight", kv_dim, shape->dim);
        matrix(p + "attn_v.weight", kv_dim, shape->dim);
        matrix(p + "attn_output.weight", shape->dim, shape->dim);
        ones(p + "ffn_norm.weight", shape->dim);
        matrix(p + "ffn_gate.weight", shape->hidden_dim, shape->dim);
        matrix(p + "ffn_up.weight", shape->hidden_dim, shape->dim);
        matrix(p + "ffn_down.weight", shape->dim, shape->hidden_dim);
    }
    return w.write(o.out_path, progress);
}

}  // namespace pl
