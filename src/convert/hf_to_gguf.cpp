// SPDX-License-Identifier: MIT
// Hugging Face LLaMA/Mistral folder (config.json, *.safetensors, tokenizer.json) -> GGUF.
//
// Q/K rotary layout: HF's convert_llama_weights_to_hf permutes the rows of wq/wk from Meta's
// interleaved RoPE pairs (x[2i], x[2i+1]) to "rotate half" pairs (x[i], x[i + head_dim/2]):
//   hf_row(h, j, i) = meta_row(h, i, j)   with row = h*head_dim + j*(head_dim/2) + i for HF and
//                                               row = h*head_dim + i*2 + j for Meta (j in {0,1}).
// GGUF (llama.cpp) uses Meta's layout, so GGUF row h*head_dim + 2*i + j reads HF row
// h*head_dim + j*(head_dim/2) + i (llama.cpp convert's permute(): reshape(n_head, 2, hd/2, cols)
// .swapaxes(1, 2)). K uses n_kv_heads.
#include "convert/convert.h"
#include "convert/hf_tokenizer.h"
#include "core/log.h"
#include "core/mmap_file.h"
#include "format/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <set>

namespace pl::convert {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct HfConfig {
    LlamaHParams hp;
    bool tie_embeddings = false;
    bool llama3_rope = false;
    float rope_factor = 1, low_freq_factor = 1, high_freq_factor = 4;
    float original_ctx = 8192;
    bool linear_rope = false;
};

Result<int64_t> get_int(const json& j, const char* key, const std::string& path, std::optional<int64_t> def = {}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (def) return *def;
        return err("{}: missing \"{}\"", path, key);
    }
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
        return err("{}: \"{}\" must be a positive integer, got {}", path, key, it->dump());
    return it->get<int64_t>();
}

Result<double> get_num(const json& j, const char* key, const std::string& path, double def) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_number()) return err("{}: \"{}\" must be a number, got {}", path, key, it->dump());
    return it->get<double>();
}

Result<HfConfig> read_config(const std::string& dir, json& cfg) {
    const std::string path = (fs::path(dir) / "config.json").string();
    std::error_code ec;
    if (!fs::exists(path, ec)) return err("{}: missing (not a Hugging Face model folder?)", path);
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    const char* p = reinterpret_cast<const char*>(map->data());
    cfg = json::parse(p, p + map->size(), nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) return err("{}: not a valid JSON object", path);

    std::vector<std::string> archs;
    if (cfg.contains("architectures") && cfg["architectures"].is_array())
        for (const auto& a : cfg["architectures"])
            if (a.is_string()) archs.push_back(a.get<std::string>());
    bool supported = false;
    for (const auto& a : archs) supported |= a == "LlamaForCausalLM" || a == "MistralForCausalLM";
    if (!supported)
        return err("{}: architectures [{}] not supported (expected LlamaForCausalLM or MistralForCausalLM)", path,
                   fmt::join(archs, ", "));

    HfConfig c;
    LlamaHParams& hp = c.hp;
    PL_ASSIGN_OR_RETURN(hp.dim, get_int(cfg, "hidden_size", path));
    PL_ASSIGN_OR_RETURN(hp.hidden_dim, get_int(cfg, "intermediate_size", path));
    PL_ASSIGN_OR_RETURN(hp.n_layers, get_int(cfg, "num_hidden_layers", path));
    PL_ASSIGN_OR_RETURN(hp.n_heads, get_int(cfg, "num_attention_heads", path));
    PL_ASSIGN_OR_RETURN(hp.n_kv_heads, get_int(cfg, "num_key_value_heads", path, hp.n_heads));
    PL_ASSIGN_OR_RETURN(hp.context_length, get_int(cfg, "max_position_embeddings", path, 2048));
    if (hp.dim % hp.n_heads != 0 && !cfg.contains("head_dim"))
        return err("{}: hidden_size={} is not a multiple of num_attention_heads={}", path, hp.dim, hp.n_heads);
    PL_ASSIGN_OR_RETURN(hp.head_dim, get_int(cfg, "head_dim", path, hp.dim / hp.n_heads));
    if (hp.head_dim % 2 != 0) return err("{}: head_dim={} must be even for RoPE", path, hp.head_dim);
    if (hp.n_heads % hp.n_kv_heads != 0)
        return err("{}: num_attention_heads={} is not a multiple of num_key_value_heads={}", path, hp.n_heads,
                   hp.n_kv_heads);
    PL_ASSIGN_OR_RETURN(double eps, get_num(cfg, "rms_norm_eps", path, 1e-6));
    PL_ASSIGN_OR_RETURN(double theta, get_num(cfg, "rope_theta", path, 10000.0));
    if (!(eps > 0.0 && eps < 1.0)) return err("{}: rms_norm_eps={} is out of range (0 < eps < 1)", path, eps);
    if (!(theta > 1.0 && theta < 1e12)) return err("{}: rope_theta={} is out of range (1 < theta < 1e12)", path, theta);
    hp.rms_eps = static_cast<float>(eps);
    hp.rope_theta = static_cast<float>(theta);
    if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean())
        c.tie_embeddings = cfg["tie_word_embeddings"].get<bool>();

    if (cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object()) {
        const json& rs = cfg["rope_scaling"];
        const std::string ctx = path + " rope_scaling";
        // "rope_type" (newer configs) wins over "type"; either must be a string when present.
        std::string type;
        for (const char* key : {"rope_type", "type"}) {
            auto t = rs.find(key);
            if (t == rs.end() || t->is_null()) continue;
            if (!t->is_string()) return err("{}: \"rope_type\"/\"type\" must be a string, got {}", ctx, t->dump());
            type = t->get<std::string>();
            break;
        }
        if (type == "llama3") {
            c.llama3_rope = true;
            PL_ASSIGN_OR_RETURN(double f, get_num(rs, "factor", ctx, 8.0));
            PL_ASSIGN_OR_RETURN(double lo, get_num(rs, "low_freq_factor", ctx, 1.0));
            PL_ASSIGN_OR_RETURN(double hi, get_num(rs, "high_freq_factor", ctx, 4.0));
            PL_ASSIGN_OR_RETURN(double orig, get_num(rs, "original_max_position_embeddings", ctx, 8192.0));
            if (lo == hi) return err("{}: low_freq_factor and high_freq_factor are both {}", ctx, lo);
            c.rope_factor = static_cast<float>(f);
            c.low_freq_factor = static_cast<float>(lo);
            c.high_freq_factor = static_cast<float>(hi);
            c.original_ctx = static_cast<float>(orig);
        } else if (type == "linear") {
            c.linear_rope = true;
            PL_ASSIGN_OR_RETURN(double f, get_num(rs, "factor", ctx, 1.0));
            c.rope_factor = static_cast<float>(f);
        } else if (!type.empty() && type != "default") {
            return err("{}: type \"{}\" is not supported (llama3 and linear are)", ctx, type);
        }
    }
    return c;
}

// RoPE frequency factors for llama3-style scaling, one per rotary pair (head_dim / 2), in float32
// like llama.cpp's convert (which llama.cpp divides the base frequencies by).
std::vector<float> llama3_rope_factors(const HfConfig& c) {
    const int64_t hd = c.hp.head_dim;
    const float low_wavelen = c.original_ctx / c.low_freq_factor;
    const float high_wavelen = c.original_ctx / c.high_freq_factor;
    std::vector<float> out;
    for (int64_t i = 0; i < hd; i += 2) {
        const float freq = 1.0f / std::pow(c.hp.rope_theta, static_cast<float>(i) / static_cast<float>(hd));
        const float wavelen = 2.0f * std::numbers::pi_v<float> / freq;
        if (wavelen < high_wavelen) {
            out.push_back(1.0f);
        } else if (wavelen > low_wavelen) {
            out.push_back(c.rope_factor);
        } else {
            const float smooth = (c.original_ctx / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
            out.push_back(1.0f / ((1.0f - smooth) / c.rope_factor + smooth));
        }
    }
    return out;
}

struct Mapped {
    std::string gguf_name;
    std::vector<int64_t> hf_shape;  // expected, row-major
    int permute_heads = 0;          // > 0: undo HF's rotary permutation with this many heads
};

}  // namespace

Status hf_to_gguf(const HfOptions& opt) {
    json cfg;
    PL_ASSIGN_OR_RETURN(HfConfig c, read_config(opt.dir, cfg));
    LlamaHParams& hp = c.hp;
    PL_ASSIGN_OR_RETURN(safetensors::Model st, safetensors::Model::open_dir(opt.dir));

    const safetensors::TensorInfo* embd = st.find("model.embed_tokens.weight");
    if (!embd || embd->shape.size() != 2 || embd->shape[1] != hp.dim)
        return err("{}: model.embed_tokens.weight is {} (expected [vocab_size, {}])", opt.dir,
                   embd ? fmt::format("[{}]", fmt::join(embd->shape, ", ")) : "missing", hp.dim);
    hp.vocab_size = embd->shape[0];
    if (cfg.contains("vocab_size") && cfg["vocab_size"].is_number_integer() && cfg["vocab_size"].get<int64_t>() != hp.vocab_size)
        PL_LOG_WARN("config.json vocab_size={} but model.embed_tokens.weight has {} rows; using {}",
                    cfg["vocab_size"].get<int64_t>(), hp.vocab_size, hp.vocab_size);

    // Expected tensors: HF name -> (GGUF name, HF shape, permutation).
    const int64_t q_rows = hp.n_heads * hp.head_dim, kv_rows = hp.n_kv_heads * hp.head_dim;
    std::map<std::string, Mapped> expected;
    expected["model.embed_tokens.weight"] = {"token_embd.weight", {hp.vocab_size, hp.dim}, 0};
    expected["model.norm.weight"] = {"output_norm.weight", {hp.dim}, 0};
    const bool has_lm_head = st.find("lm_head.weight") != nullptr;
    if (has_lm_head) {
        expected["lm_head.weight"] = {"output.weight", {hp.vocab_size, hp.dim}, 0};
    } else if (!c.tie_embeddings) {
        return err("{}: lm_head.weight is missing and config.json does not set tie_word_embeddings", opt.dir);
    }
    for (int64_t i = 0; i < hp.n_layers; ++i) {
        const std::string h = fmt::format("model.layers.{}.", i), g = fmt::format("blk.{}.", i);
        expected[h + "input_layernorm.weight"] = {g + "attn_norm.weight", {hp.dim}, 0};
        expected[h + "self_attn.q_proj.weight"] = {g + "attn_q.weight", {q_rows, hp.dim}, static_cast<int>(hp.n_heads)};
        expected[h + "self_attn.k_proj.weight"] = {g + "attn_k.weight", {kv_rows, hp.dim}, static_cast<int>(hp.n_kv_heads)};
        expected[h + "self_attn.v_proj.weight"] = {g + "attn_v.weight", {kv_rows, hp.dim}, 0};
        expected[h + "self_attn.o_proj.weight"] = {g + "attn_output.weight", {hp.dim, q_rows}, 0};
        expected[h + "post_attention_layernorm.weight"] = {g + "ffn_norm.weight", {hp.dim}, 0};
        expected[h + "mlp.gate_proj.weight"] = {g + "ffn_gate.weight", {hp.hidden_dim, hp.dim}, 0};
        expected[h + "mlp.down_proj.weight"] = {g + "ffn_down.weight", {hp.dim, hp.hidden_dim}, 0};
        expected[h + "mlp.up_proj.weight"] = {g + "ffn_up.weight", {hp.hidden_dim, hp.dim}, 0};
    }

    // Check everything up front and report all problems at once.
    std::vector<std::string> problems;
    for (const auto& [hf, m] : expected) {
        const safetensors::TensorInfo* t = st.find(hf);
        if (!t) {
            problems.push_back(fmt::format("missing {}", hf));
        } else if (t->shape != m.hf_shape) {
            problems.push_back(fmt::format("{} has shape [{}], expected [{}]", hf, fmt::join(t->shape, ", "),
                                           fmt::join(m.hf_shape, ", ")));
        } else if (!safetensors::is_float_dtype(t->dtype)) {
            problems.push_back(fmt::format("{} has dtype {} (expected F32, F16 or BF16)", hf, safetensors::dtype_name(t->dtype)));
        }
    }
    for (const auto& name : st.names()) {
        if (expected.count(name)) continue;
        if (name.ends_with(".rotary_emb.inv_freq")) continue;  // recomputed from rope_theta
        problems.push_back(fmt::format("unexpected tensor {}", name));
    }
    if (!problems.empty()) {
        const size_t shown = std::min<size_t>(problems.size(), 20);
        return err("{}: {} problem(s) with the checkpoint tensors for {} layers, dim={}, heads={}/{}:\n  {}{}", opt.dir,
                   problems.size(), hp.n_layers, hp.dim, hp.n_heads, hp.n_kv_heads,
                   fmt::join(problems.begin(), problems.begin() + static_cast<ptrdiff_t>(shown), "\n  "),
                   problems.size() > shown ? fmt::format("\n  ... and {} more", problems.size() - shown) : "");
    }

    gguf::Writer w;
    const std::string name = opt.name.empty() ? fs::path(opt.dir).lexically_normal().filename().string() : opt.name;
    set_llama_metadata(w, hp, name.empty() ? "model" : name, opt.outtype);
    if (hp.head_dim != hp.dim / hp.n_heads || hp.dim % hp.n_heads != 0) {
        w.set("llama.attention.key_length", gguf::Value::make_u32(static_cast<uint32_t>(hp.head_dim)));
        w.set("llama.attention.value_length", gguf::Value::make_u32(static_cast<uint32_t>(hp.head_dim)));
    }
    if (c.linear_rope) {
        w.set("llama.rope.scaling.type", gguf::Value::make_string("linear"));
        w.set("llama.rope.scaling.factor", gguf::Value::make_f32(c.rope_factor));
    }
    PL_TRY(set_hf_tokenizer(w, opt.dir, hp.vocab_size, cfg));

    Progress progress;
    progress.enabled = opt.progress;
    auto add = [&](const std::string& hf) {
        const Mapped& m = expected.at(hf);
        const safetensors::TensorInfo* t = st.find(hf);
        std::vector<int64_t> ne(m.hf_shape.rbegin(), m.hf_shape.rend());
        const uint32_t type = choose_type(m.gguf_name, ne, opt.outtype);
        progress.add(m.gguf_name, type, ne);
        const int64_t cols = ne[0];
        const int64_t rows = ne.size() > 1 ? ne[1] : 1;
        const int64_t heads = m.permute_heads;
        add_converted_tensor(w, m.gguf_name, type, ne, [t, cols, rows, heads](int64_t r, float* out) {
            int64_t src = r;
            if (heads > 0) {
                const int64_t hd = rows / heads, half = hd / 2;
                const int64_t h = r / hd, within = r % hd, i = within / 2, j = within % 2;
                src = h * hd + j * half + i;
            }
            return safetensors::read_f32(*t, src * cols, cols, out);
        });
    };
    add("model.embed_tokens.weight");
    add("model.norm.weight");
    if (has_lm_head) add("lm_head.weight");
    if (c.llama3_rope) {
        auto factors = std::make_shared<std::vector<float>>(llama3_rope_factors(c));
        std::vector<int64_t> ne{static_cast<int64_t>(factors->size())};
        progress.add("rope_freqs.weight", 0, ne);
        add_converted_tensor(w, "rope_freqs.weight", 0, ne, [factors](int64_t, float* out) {
            std::copy(factors->begin(), factors->end(), out);
            return Status::ok();
        });
    }
    for (int64_t i = 0; i < hp.n_layers; ++i) {
        const std::string h = fmt::format("model.layers.{}.", i);
        for (const char* s : {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                              "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.down_proj",
                              "mlp.up_proj"})
            add(h + s + ".weight");
    }
    return w.write(opt.output, progress.callback());
}

}  // namespace pl::convert
