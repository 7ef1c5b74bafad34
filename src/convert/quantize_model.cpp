// SPDX-License-Identifier: MIT
// Model re-quantization (see quantize_model.h and docs/quantize.md).
#include "convert/quantize_model.h"

#include "format/gguf.h"
#include "quant/formats.h"
#include "quant/imatrix.h"
#include "quant/q3_5.h"
#include "core/cpu_budget.h"
#include "core/log.h"
#include "eval/imatrix_collect.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"
#include "quant/quantize.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <regex>

namespace pl::convert {
namespace {

constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::F32);
constexpr uint32_t kF16 = static_cast<uint32_t>(GgmlType::F16);

std::string writable_types() {
    std::string s;
    for (uint32_t id = 0; id < 64; ++id) {
        if (!quantize_fn(id)) continue;
        if (!s.empty()) s += ", ";
        s += type_name(id);
    }
    return s;
}

Result<uint32_t> parse_type(const std::string& name, const std::string& what) {
    const TypeTraits* tt = type_traits_by_name(name);
    if (!tt) return err("{}: unknown type '{}' (writable types: {})", what, name, writable_types());
    const auto id = static_cast<uint32_t>(tt->type);
    if (!quantize_fn(id)) return err("{}: cannot write type '{}' (no quantizer; writable types: {})", what, name, writable_types());
    return id;
}

// llama.cpp's rule for k-quants whose 256-block does not divide a row, with the formats we can write
// (llama.cpp picks IQ4_NL for q2_k/q3_k; Q4_0 has the same 4.5 bits per weight).
uint32_t auto_fallback(uint32_t type) {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::Q2_K:
        case GgmlType::Q3_K: return static_cast<uint32_t>(GgmlType::Q4_0);
        case GgmlType::Q4_K: return static_cast<uint32_t>(GgmlType::Q5_0);
        case GgmlType::Q5_K: return static_cast<uint32_t>(GgmlType::Q5_1);
        default: return static_cast<uint32_t>(GgmlType::Q8_0);
    }
}

struct Override {
    std::string text;  // "PATTERN=TYPE" as given
    std::regex re;
    uint32_t type = 0;
    bool matched = false;
};

std::string glob_to_regex(const std::string& g) {
    std::string r = "^";
    for (char c : g) {
        if (c == '*') r += ".*";
        else if (c == '?') r += '.';
        else if (std::strchr("\\^$.|+()[]{}", c)) r += std::string("\\") + c;
        else r += c;
    }
    return r + "$";
}

Result<Override> parse_override(const std::string& text) {
    const size_t eq = text.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        return err("bad --tensor-type '{}': expected PATTERN=TYPE, e.g. 'ffn_down=q4_k'", text);
    Override o;
    o.text = text;
    const std::string pattern = text.substr(0, eq);
    PL_ASSIGN_OR_RETURN(o.type, parse_type(text.substr(eq + 1), fmt::format("--tensor-type '{}'", text)));
    try {
        o.re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        if (pattern.find_first_of("*?") == std::string::npos)
            return err("bad --tensor-type pattern '{}': not a valid regular expression ({})", pattern, e.what());
        try {
            o.re = std::regex(glob_to_regex(pattern), std::regex::ECMAScript);
        } catch (const std::regex_error& e2) {
            return err("bad --tensor-type pattern '{}': {}", pattern, e2.what());
        }
    }
    return o;
}

// Dims without trailing 1s (ggml_n_dims).
size_t n_dims(const std::vector<int64_t>& ne) {
    size_t n = ne.size();
    while (n > 1 && ne[n - 1] == 1) --n;
    return n;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---- exact output size (the Writer's layout: format/gguf.cpp) -------------------------------------

uint64_t value_bytes(const gguf::Value& v) {
    using gguf::ValueType;
    switch (v.type) {
        case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        case ValueType::String: return 8 + v.s.size();
        case ValueType::Array: {
            uint64_t n = 4 + 8;
            for (const auto& e : v.arr) n += value_bytes(e);
            return n;
        }
        default: return 0;
    }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// ---- per-tensor conversion -------------------------------------------------------------------------

struct Plan {
    const gguf::TensorInfo* src = nullptr;
    const float* importance = nullptr;  // ne[0] weights or nullptr
    const std::vector<float>* covariance = nullptr;  // q3.5: per 256-group activation covariance (GPTQ)
    TensorReport* report = nullptr;
};

// Writes tensor `p` in its destination type into `out` (already sized), measuring the normalised
// squared error when `stats`. Multi-threaded over rows.
Status convert_tensor(const Plan& p, std::span<uint8_t> out, bool stats) {
    const gguf::TensorInfo& t = *p.src;
    TensorReport& r = *p.report;
    if (r.copied) {
        if (out.size() != t.nbytes) return err("tensor '{}': {} bytes, expected {}", t.name, t.nbytes, out.size());
        std::memcpy(out.data(), t.data, out.size());
        if (stats && r.quantized) r.nmse = 0.0;
        return Status::ok();
    }
    const TypeTraits* src_tt = type_traits(t.type);
    const TypeTraits* dst_tt = type_traits(r.dst_type);
    const QuantizeFn quantize = quantize_fn(r.dst_type);
    if (!src_tt || !src_tt->dequantize_row) return err("tensor '{}': cannot read type {}", t.name, type_name(t.type));
    if (!quantize || !dst_tt) return err("tensor '{}': cannot write type {}", t.name, type_name(r.dst_type));
    const int64_t cols = t.ne[0];
    const int64_t rows = t.n_rows();
    const auto src_rb = row_bytes(t.type, cols);
    const auto dst_rb = row_bytes(r.dst_type, cols);
    if (!src_rb || !dst_rb || *dst_rb * static_cast<uint64_t>(rows) != out.size())
        return err("tensor '{}': row length {} does not fit {} -> {}", t.name, cols, src_tt->name, dst_tt->name);

    adapt_threads();  // -t 0: fewer threads while other processes keep cores busy (core/cpu_budget.h)
    const int n_threads = std::max(1, omp_get_max_threads());
    const size_t per_thread = static_cast<size_t>(cols) * (stats ? 2 : 1);
    std::vector<float> scratch(per_thread * static_cast<size_t>(n_threads));  // allocated outside the region
    const float* imp = p.importance;
    double num = 0.0, den = 0.0;
    int64_t saturated = 0;  // q3.5 sub-blocks whose rotated values exceed the largest scale
    const bool is_q3_5 = r.dst_type == kQ3_5TypeId;
    std::vector<std::vector<float>> gptq;  // q3.5 with covariances: one factor per full group
    if (is_q3_5 && p.covariance) gptq = q3_5_gptq_factors(p.covariance->data(), cols / kImatrixCovGroup);
#pragma omp parallel num_threads(n_threads) reduction(+ : num, den, saturated)
    {
        float* row = scratch.data() + per_thread * static_cast<size_t>(omp_get_thread_num());
        float* back = row + cols;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; ++i) {
            uint8_t* dst = out.data() + *dst_rb * static_cast<size_t>(i);
            src_tt->dequantize_row(t.data + *src_rb * static_cast<size_t>(i), row, cols);
            if (!gptq.empty()) quantize_row_q3_5_gptq(row, dst, cols, gptq);
            else quantize(row, dst, cols, imp);
            if (is_q3_5) saturated += q3_5_saturated_subblocks(row, cols);
            if (stats) {
                dst_tt->dequantize_row(dst, back, cols);
                for (int64_t j = 0; j < cols; ++j) {
                    const double d = static_cast<double>(row[j]) - back[j];
                    num += d * d;
                    den += static_cast<double>(row[j]) * row[j];
                }
            }
        }
    }
    if (stats) r.nmse = den > 0 ? num / den : 0.0;
    if (saturated > 0)
        PL_LOG_WARN("tensor '{}': {} of {} q3.5 sub-blocks saturate (rotated |w| above {:.1f}, clipped); "
                    "consider --tensor-type '{}=q8_0'",
                    t.name, saturated, rows * (cols / 16), 127.0f * q3_5_scale(255), t.name);
    return Status::ok();
}

// Importance for q3.5 without an imatrix: the source model runs on `n` random tokens (BOS, then
// ids drawn uniformly from the vocabulary's normal tokens, seeded) and the activations' mean
// squares per input column are collected as `parallama imatrix` does. Random tokens carry no
// language, but they light up the same outlier channels as text: that is what the q3.5 error
// feedback needs (docs/quantize.md has the measurements). nullopt when the file is not a model
// we can run (then q3.5 is quantized plainly, with a warning).
std::optional<Imatrix> self_calibrate(const std::string& path, int n) {
    auto model = Model::load(path);
    if (!model) {
        PL_LOG_WARN("quantize: no self-calibration for q3.5 ({}); quantizing without importance", model.error_message());
        return std::nullopt;
    }
    const int32_t vocab = (*model)->config().vocab_size;
    std::vector<int32_t> pool;
    int32_t bos = -1;
    if (auto tok = Tokenizer::from_gguf((*model)->file())) {
        bos = (*tok)->bos_id();
        for (int32_t id = 0; id < std::min(vocab, (*tok)->n_vocab()); ++id)
            if ((*tok)->token_type(id) == TokenType::Normal) pool.push_back(id);
    }
    if (pool.size() < 16) {  // no usable vocabulary metadata: any id but 0..2 (unk/bos/eos by convention)
        pool.clear();
        for (int32_t id = 3; id < vocab; ++id) pool.push_back(id);
    }
    std::mt19937_64 rng(0x5e1fca1ull);
    eval::Chunks chunks;
    chunks.n_ctx = std::max(8, std::min(n, (*model)->config().context_length > 0 ? (*model)->config().context_length : n));
    chunks.first = chunks.n_ctx / 2;
    std::vector<int32_t> ids(static_cast<size_t>(chunks.n_ctx));
    for (auto& id : ids) id = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    if (bos >= 0) ids[0] = bos;
    chunks.text_tokens = chunks.n_ctx;
    chunks.data.push_back(std::move(ids));
    PL_LOG_INFO("quantize: self-calibration for q3.5: running the model on {} random tokens (--self-calibrate 0 skips)", chunks.n_ctx);
    auto m = eval::collect_imatrix(**model, chunks, false, fmt::format("self-calibration: {} random tokens", chunks.n_ctx));
    if (!m) {
        PL_LOG_WARN("quantize: self-calibration failed ({}); quantizing q3.5 without importance", m.error_message());
        return std::nullopt;
    }
    return std::move(*m);
}

}  // namespace

uint32_t llama_file_type(uint32_t type) {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::F32: return 0;
        case GgmlType::F16: return 1;
        case GgmlType::Q4_0: return 2;
        case GgmlType::Q4_1: return 3;
        case GgmlType::Q8_0: return 7;
        case GgmlType::Q5_0: return 8;
        case GgmlType::Q5_1: return 9;
        case GgmlType::Q2_K: return 10;
        case GgmlType::Q3_K: return 11;
        case GgmlType::Q4_K: return 14;
        case GgmlType::Q5_K: return 16;
        case GgmlType::Q6_K: return 18;
        case GgmlType::BF16: return 32;
        default: return 0;
    }
}

Result<QuantizeReport> quantize_model(const QuantizeOptions& o) {
    // ---- options ----
    PL_ASSIGN_OR_RETURN(const uint32_t target, parse_type(o.type, "--type"));
    std::optional<uint32_t> fallback;  // nullopt: none; 0xffffffff: auto
    constexpr uint32_t kAuto = 0xffffffffu;
    if (o.fallback == "auto" || o.fallback.empty()) {
        fallback = kAuto;
    } else if (o.fallback != "none") {
        PL_ASSIGN_OR_RETURN(const uint32_t fb, parse_type(o.fallback, "--fallback-type"));
        fallback = fb;
    }
    std::vector<Override> overrides;
    for (const std::string& text : o.tensor_types) {
        PL_ASSIGN_OR_RETURN(Override ov, parse_override(text));
        overrides.push_back(std::move(ov));
    }
    if (!o.dry_run && o.output.empty()) return err("no output file given");
    if (!o.dry_run && o.output == o.input) return err("the output file must differ from the input '{}'", o.input);

    // ---- inputs ----
    auto file = gguf::File::open(o.input);
    if (!file) return file.status();
    const gguf::File& in = **file;
    std::optional<Imatrix> imatrix;
    if (!o.imatrix.empty()) {
        auto m = load_imatrix(o.imatrix);
        if (!m) return m.status();
        imatrix = std::move(*m);
    }

    // ---- plan ----
    QuantizeReport rep;
    rep.file_type = llama_file_type(target);
    std::vector<Plan> plans;
    rep.tensors.reserve(in.tensors().size());
    plans.reserve(in.tensors().size());
    for (const gguf::TensorInfo& t : in.tensors()) {
        TensorReport r;
        r.name = t.name;
        r.ne = t.ne;
        r.src_type = t.type;
        Plan p;
        p.src = &t;
        r.quantized = ends_with(t.name, "weight") && n_dims(t.ne) >= 2;
        const TypeTraits* src_tt = type_traits(t.type);
        if (!r.quantized) {
            // Norms and other small tensors: F32 (dequantized when readable), else copied as stored.
            r.dst_type = (src_tt && src_tt->dequantize_row) ? kF32 : t.type;
            r.rule = n_dims(t.ne) < 2 ? "1-D" : "not a weight";
        } else {
            if (!src_tt || !src_tt->dequantize_row)
                return err("{}: tensor '{}' has type {}, which cannot be read", o.input, t.name, type_name(t.type));
            r.dst_type = target;
            r.rule = "--type";
            for (Override& ov : overrides) {
                if (std::regex_search(t.name, ov.re)) {
                    ov.matched = true;
                    r.dst_type = ov.type;
                    r.rule = "--tensor-type " + ov.text;
                    break;
                }
            }
            if (!row_bytes(r.dst_type, t.ne[0])) {
                const TypeTraits* want = type_traits(r.dst_type);
                if (!fallback)
                    return err("tensor '{}': row length {} is not a multiple of the {} block size {} (and --fallback-type is none)",
                               t.name, t.ne[0], want->name, want->block_elems);
                uint32_t fb = *fallback == kAuto ? auto_fallback(r.dst_type) : *fallback;
                if (!row_bytes(fb, t.ne[0])) fb = kF16;
                r.dst_type = fb;
                r.fallback = true;
                r.rule += fmt::format(" (fallback: {} % {} != 0)", t.ne[0], want->block_elems);
            }
            if (imatrix) {
                auto v = imatrix->find_checked(t.name, t.ne[0]);
                if (!v) return v.status().with_context(o.imatrix);
                if (*v && uses_importance(r.dst_type)) {
                    p.importance = (*v)->data();
                    r.importance = true;
                }
                if (auto c = imatrix->cov.find(t.name); c != imatrix->cov.end() && r.dst_type == kQ3_5TypeId) {
                    const size_t want = static_cast<size_t>(t.ne[0] / kImatrixCovGroup) * kImatrixCovGroup * kImatrixCovGroup;
                    if (c->second.size() != want)
                        return err("imatrix covariance for '{}' has {} values, the tensor's rows need {}", t.name, c->second.size(), want)
                            .with_context(o.imatrix);
                    p.covariance = &c->second;
                }
            }
        }
        r.copied = r.dst_type == t.type;
        r.bytes = *row_bytes(r.dst_type, t.ne[0]) * static_cast<uint64_t>(t.n_rows());
        rep.total_elements += static_cast<uint64_t>(t.n_elements());
        if (r.quantized) {
            rep.quantized_bytes += r.bytes;
            rep.quantized_elements += static_cast<uint64_t>(t.n_elements());
        }
        rep.tensors.push_back(std::move(r));
        plans.push_back(p);
    }
    for (size_t i = 0; i < plans.size(); ++i) plans[i].report = &rep.tensors[i];
    std::optional<Imatrix> self_imatrix;  // outlives `plans`, which point into it
    const bool any_q3_5 = std::any_of(rep.tensors.begin(), rep.tensors.end(),
                                      [](const TensorReport& r) { return r.quantized && !r.copied && r.dst_type == kQ3_5TypeId; });
    if (!imatrix && o.self_calibrate_tokens > 0 && any_q3_5 && (!o.dry_run || o.stats)) {
        self_imatrix = self_calibrate(o.input, o.self_calibrate_tokens);
        if (self_imatrix)
            for (Plan& p : plans) {
                if (p.report->copied || p.report->dst_type != kQ3_5TypeId) continue;  // only q3.5 tensors
                const std::vector<float>* v = self_imatrix->find(p.src->name);
                if (v && static_cast<int64_t>(v->size()) == p.src->ne[0]) {
                    p.importance = v->data();
                    p.report->importance = true;
                }
            }
    }
    for (const Override& ov : overrides)
        if (!ov.matched) return err("--tensor-type '{}' matches no weight matrix of {}", ov.text, o.input);

    // ---- metadata: everything from the input, plus the file type ----
    gguf::Writer w(in.version() == 2 ? 2 : 3);
    for (const auto& [key, v] : in.metadata()) w.set(key, v);
    w.set("general.file_type", gguf::Value::make_u32(rep.file_type));
    w.set("general.quantization_version", gguf::Value::make_u32(2));
    if (self_imatrix) w.set("quantize.self_calibration.tokens", gguf::Value::make_u32(static_cast<uint32_t>(self_imatrix->token_count)));
    if (imatrix) {
        w.set("quantize.imatrix.file", gguf::Value::make_string(o.imatrix));
        w.set("quantize.imatrix.dataset", gguf::Value::make_string(imatrix->dataset));
        w.set("quantize.imatrix.entries_count", gguf::Value::make_u32(static_cast<uint32_t>(imatrix->data.size())));
        w.set("quantize.imatrix.chunks_count", gguf::Value::make_u32(imatrix->chunk_count));
    }

    // Exact size: header, metadata, tensor infos, padding, aligned tensor data (format/gguf.cpp).
    std::vector<std::pair<std::string, gguf::Value>> kv;  // what the writer holds, in order
    for (const auto& [key, v] : in.metadata()) kv.emplace_back(key, v);
    auto set_kv = [&kv](const std::string& key, gguf::Value v) {
        for (auto& [k, val] : kv)
            if (k == key) {
                val = std::move(v);
                return;
            }
        kv.emplace_back(key, std::move(v));
    };
    set_kv("general.file_type", gguf::Value::make_u32(rep.file_type));
    set_kv("general.quantization_version", gguf::Value::make_u32(2));
    if (self_imatrix) set_kv("quantize.self_calibration.tokens", gguf::Value::make_u32(0));
    if (imatrix) {
        set_kv("quantize.imatrix.file", gguf::Value::make_string(o.imatrix));
        set_kv("quantize.imatrix.dataset", gguf::Value::make_string(imatrix->dataset));
        set_kv("quantize.imatrix.entries_count", gguf::Value::make_u32(0));
        set_kv("quantize.imatrix.chunks_count", gguf::Value::make_u32(0));
    }
    const uint64_t align = in.alignment();
    uint64_t header = 4 + 4 + 8 + 8;
    for (const auto& [key, v] : kv) header += 8 + key.size() + 4 + value_bytes(v);
    for (const auto& r : rep.tensors) header += 8 + r.name.size() + 4 + 8 * r.ne.size() + 4 + 8;
    uint64_t data = 0;
    for (const auto& r : rep.tensors) data = align_up(data, align) + r.bytes;
    rep.file_bytes = align_up(header, align) + align_up(data, align);

    if (o.dry_run) {
        if (o.stats) {
            std::vector<uint8_t> buf;
            uint64_t done = 0;
            for (const Plan& p : plans) {
                if (p.report->quantized) {
                    buf.assign(p.report->bytes, 0);
                    PL_TRY(convert_tensor(p, buf, true));
                }
                done += p.report->bytes;
                if (o.progress) o.progress(done, data);
            }
        }
        return rep;
    }

    for (const Plan& p : plans) {  // name our own types in the file (docs/formats.md)
        const TypeTraits* dt = type_traits(p.report->dst_type);
        if (dt && dt->custom) w.set(custom_type_key(p.report->dst_type), gguf::Value::make_string(dt->name));
    }
    for (const Plan& p : plans) {
        const bool stats = o.stats && p.report->quantized;
        w.add_tensor(p.src->name, p.report->dst_type, p.src->ne,
                     [p, stats](std::span<uint8_t> out) { return convert_tensor(p, out, stats); });
    }
    PL_TRY(w.write(o.output, o.progress));
    return rep;
}

}  // namespace pl::convert
