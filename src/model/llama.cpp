// SPDX-License-Identifier: MIT
#include "model/llama.h"

#include "core/cpu_budget.h"
#include "core/fp16.h"
#include "core/log.h"
#include "core/mem_budget.h"
#include "kernels/cpu/kernels.h"
#include "quant/formats.h"
#include "quant/q3_5.h"
#include "quant/q3_5_fold.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

namespace pl {
namespace {

// Reads a required positive integer `key`; `what` names it in errors.
Result<int> require_int(const gguf::File& f, const std::string& key, int64_t min_value = 1) {
    auto v = f.get_i64(key);
    if (!v) return v.status();
    if (!v->has_value()) return err("missing metadata key '{}'", key);
    const int64_t x = **v;
    if (x < min_value || x > (int64_t{1} << 30)) return err("metadata '{}' = {} is out of range", key, x);
    return static_cast<int>(x);
}

Result<std::optional<int>> optional_int(const gguf::File& f, const std::string& key) {
    auto v = f.get_i64(key);
    if (!v) return v.status();
    if (!v->has_value()) return std::optional<int>{};
    const int64_t x = **v;
    if (x < 1 || x > (int64_t{1} << 30)) return err("metadata '{}' = {} is out of range", key, x);
    return std::optional<int>(static_cast<int>(x));
}

Result<std::optional<float>> optional_float(const gguf::File& f, const std::string& key) {
    auto v = f.get_f64(key);
    if (!v) return v.status();
    if (!v->has_value()) return std::optional<float>{};
    const double x = **v;
    if (!std::isfinite(x)) return err("metadata '{}' is not finite", key);
    return std::optional<float>(static_cast<float>(x));
}

std::string shape_str(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

// Collects problems with tensors so that one error lists all of them.
class Binder {
public:
    explicit Binder(const gguf::File& f) : f_(f) {}

    WeightView matrix(const std::string& name, int64_t rows, int64_t cols) {
        WeightView w;
        w.name = name;
        const gguf::TensorInfo* t = f_.find_tensor(name);
        if (!t) {
            missing_.push_back(name);
            return w;
        }
        if (t->ne.size() != 2 || t->ne[0] != cols || t->ne[1] != rows) {
            problems_.push_back(fmt::format("'{}' has shape {}, expected [{}, {}]", name, shape_str(t->ne), cols, rows));
            return w;
        }
        const TypeTraits* tt = type_traits(t->type);
        if (!tt || (!tt->dequantize_row && t->type != static_cast<uint32_t>(GgmlType::F32))) {
            problems_.push_back(fmt::format("'{}' has weight type {} which this build cannot read", name, type_name(t->type)));
            return w;
        }
        w.type = t->type;
        w.rows = rows;
        w.cols = cols;
        w.row_bytes = *row_bytes(t->type, cols);
        w.data = t->data;
        return w;
    }

    std::vector<float> vector(const std::string& name, int64_t n, bool required = true) {
        const gguf::TensorInfo* t = f_.find_tensor(name);
        if (!t) {
            if (required) missing_.push_back(name);
            return {};
        }
        if (t->n_elements() != n || t->ne[0] != n) {
            problems_.push_back(fmt::format("'{}' has shape {}, expected [{}]", name, shape_str(t->ne), n));
            return {};
        }
        const TypeTraits* tt = type_traits(t->type);
        std::vector<float> out(static_cast<size_t>(n));
        if (t->type == static_cast<uint32_t>(GgmlType::F32)) {
            std::memcpy(out.data(), t->data, static_cast<size_t>(n) * sizeof(float));
        } else if (tt && tt->dequantize_row) {
            tt->dequantize_row(t->data, out.data(), n);
        } else {
            problems_.push_back(fmt::format("'{}' has type {} which this build cannot read", name, type_name(t->type)));
            return {};
        }
        return out;
    }

    // Columns [c0, c1) of every row of a (rows, cols) matrix, read from the file with pread into a
    // buffer kept in `store`: the mapping's pages holding the other columns are never touched.
    // The slice must start on a block (a 256-group for rotated types such as q3.5) and end on one
    // or at the end of the row, so that it is itself a valid row of c1 - c0 weights.
    WeightView matrix_cols(const std::string& name, int64_t rows, int64_t cols, int64_t c0, int64_t c1, int tp,
                           std::vector<std::unique_ptr<uint8_t[]>>& store) {
        WeightView w = matrix(name, rows, cols);
        if (!w.data) return w;
        const TypeTraits* tt = type_traits(w.type);
        const int64_t unit = tt->rotated_input ? kQ3_5Group : tt->block_elems;
        if (c0 % unit != 0 || (c1 % unit != 0 && c1 != cols)) {
            problems_.push_back(fmt::format("'{}' ({}): tp={} splits its {} columns at {}, which is not a multiple of the "
                                            "type's {}-weight blocks (use another tp degree or weight type)",
                                            name, tt->name, tp, cols, c0 % unit != 0 ? c0 : c1, unit));
            w.data = nullptr;
            return w;
        }
        const size_t skip = *row_bytes(w.type, c0);
        const size_t slice = *row_bytes(w.type, c1 - c0);
        if (fd_ < 0) fd_ = ::open(f_.path().c_str(), O_RDONLY | O_CLOEXEC);
        const uint64_t file_at = f_.data_offset() + f_.find_tensor(name)->offset;
        auto buf = std::make_unique<uint8_t[]>(slice * static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows && fd_ >= 0; ++r) {
            const off_t at = static_cast<off_t>(file_at + static_cast<uint64_t>(r) * w.row_bytes + skip);
            if (::pread(fd_, buf.get() + static_cast<size_t>(r) * slice, slice, at) != static_cast<ssize_t>(slice)) {
                problems_.push_back(fmt::format("'{}': cannot read row {} of its column slice from {}", name, r, f_.path()));
                w.data = nullptr;
                return w;
            }
        }
        if (fd_ < 0) {
            problems_.push_back(fmt::format("cannot reopen {} to read the column slice of '{}'", f_.path(), name));
            w.data = nullptr;
            return w;
        }
        w.cols = c1 - c0;
        w.row_bytes = slice;
        w.data = buf.get();
        store.push_back(std::move(buf));
        return w;
    }
    ~Binder() {
        if (fd_ >= 0) ::close(fd_);
    }

    Status status() const {
        if (missing_.empty() && problems_.empty()) return Status::ok();
        std::string msg;
        if (!missing_.empty()) {
            msg += fmt::format("{} missing tensor(s): ", missing_.size());
            for (size_t i = 0; i < missing_.size(); ++i) msg += (i ? ", " : "") + missing_[i];
        }
        for (const auto& p : problems_) msg += (msg.empty() ? "" : "; ") + p;
        return Status::error(msg);
    }

private:
    const gguf::File& f_;
    int fd_ = -1;
    std::vector<std::string> missing_;
    std::vector<std::string> problems_;
};

// Rows [r0, r1) of a bound matrix: a contiguous range of its bytes.
WeightView row_slice(WeightView w, int64_t r0, int64_t r1) {
    if (w.data) w.data += static_cast<size_t>(r0) * w.row_bytes;
    w.rows = r1 - r0;
    return w;
}

}  // namespace

Result<HeadSplit> split_heads(int n_heads, int n_kv_heads, int head_dim, int attn_out_unit, int tp, int rank) {
    if (n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0 || head_dim < 1 || attn_out_unit < 1)
        return err("heads {}/{} of size {} (unit {}) cannot be split", n_heads, n_kv_heads, head_dim, attn_out_unit);
    if (tp < 1 || rank < 0 || rank >= tp) return err("tensor-parallel rank {} of {} is invalid", rank, tp);
    // Whole KV groups (kv_mul query heads share one KV head): a group spans kv_mul * head_dim
    // columns of attn_output, so a cut every kv_step groups is block-aligned.
    const int kv_mul = n_heads / n_kv_heads;
    const int group_cols = kv_mul * head_dim;
    const int kv_step = attn_out_unit / std::gcd(attn_out_unit, group_cols);
    HeadSplit h;
    if ((n_kv_heads + kv_step - 1) / kv_step >= tp) {
        split_steps(n_kv_heads, kv_step, tp, rank, h.kv_begin, h.kv_end);
        h.head_begin = h.kv_begin * kv_mul;
        h.head_end = h.kv_end * kv_mul;
        return h;
    }
    // Too few groups: query heads, in steps of head_step heads (head_step * head_dim columns is a
    // multiple of the unit), each rank with the KV heads its query heads read.
    const int head_step = attn_out_unit / std::gcd(attn_out_unit, head_dim);
    const int head_steps = (n_heads + head_step - 1) / head_step;
    if (head_step == 1 && n_heads < tp)
        return err("n_heads={} is smaller than tp={} (every rank needs a whole query head; the n_kv_heads={} KV heads are "
                   "replicated, query heads are not split)", n_heads, tp, n_kv_heads);
    if (head_steps < tp)
        return err("n_heads={} in units of {} query heads ({} attn_output columns, whole {}-weight blocks) makes {} unit(s), "
                   "fewer than tp={}", n_heads, head_step, head_step * head_dim, attn_out_unit, head_steps, tp);
    split_steps(n_heads, head_step, tp, rank, h.head_begin, h.head_end);
    h.kv_begin = h.head_begin / kv_mul;
    h.kv_end = (h.head_end - 1) / kv_mul + 1;
    h.kv_replicated = true;
    return h;
}

Result<ShardDims> shard_dims(const ModelConfig& c, const ShardSpec& s, const SplitUnits& u) {
    const int tp = s.tp_size;
    const int lb = s.layer_begin, le = s.layer_end < 0 ? c.n_layers : s.layer_end;
    if (tp < 1 || s.tp_rank < 0 || s.tp_rank >= tp) return err("tensor-parallel rank {} of {} is invalid", s.tp_rank, tp);
    if (u.attn_out < 1 || u.ffn_down < 1) return err("split units {}/{} are invalid", u.attn_out, u.ffn_down);
    PL_ASSIGN_OR_RETURN(const HeadSplit heads, split_heads(c.n_heads, c.n_kv_heads, c.head_dim, u.attn_out, tp, s.tp_rank));
    const int ffn_steps = (c.hidden_dim + u.ffn_down - 1) / u.ffn_down;
    if (ffn_steps < tp) {
        if (u.ffn_down == 1) return err("FFN size hidden_dim={} is smaller than tp={}", c.hidden_dim, tp);
        return err("FFN size hidden_dim={} is {} blocks of {} weights (ffn_down), fewer than tp={}", c.hidden_dim, ffn_steps,
                   u.ffn_down, tp);
    }
    if (tp > c.vocab_size) return err("vocab_size={} is smaller than tp={}", c.vocab_size, tp);
    if (lb < 0 || le > c.n_layers || lb >= le)
        return err("layer range [{}, {}) is empty or outside the model's {} layers", lb, le, c.n_layers);
    ShardDims d;
    d.n_heads = heads.head_end - heads.head_begin;
    d.head_begin = heads.head_begin;
    d.n_kv_heads = heads.kv_end - heads.kv_begin;
    d.kv_head_begin = heads.kv_begin;
    d.kv_replicated = heads.kv_replicated;
    d.q_dim = d.n_heads * c.head_dim;
    d.kv_dim = d.n_kv_heads * c.head_dim;
    int hb = 0, he = 0;
    split_steps(c.hidden_dim, u.ffn_down, tp, s.tp_rank, hb, he);
    d.hidden_begin = hb;
    d.hidden_dim = he - hb;
    split_range(c.vocab_size, tp, s.tp_rank, d.vocab_begin, d.vocab_end);
    d.layer_begin = lb;
    d.layer_end = le;
    return d;
}

int split_unit(uint32_t type) {
    const TypeTraits* tt = type_traits(type);
    if (!tt) return 1;
    return static_cast<int>(tt->rotated_input ? kQ3_5Group : tt->block_elems);
}

SplitUnits split_units(const gguf::File& f, const ModelConfig& c) {
    SplitUnits u;
    auto unit = [&](const std::string& name) -> int {
        const gguf::TensorInfo* t = f.find_tensor(name);
        return t ? split_unit(t->type) : 1;  // missing or unknown: the binder reports it
    };
    for (int l = 0; l < c.n_layers; ++l) {
        u.attn_out = std::lcm(u.attn_out, unit(fmt::format("blk.{}.attn_output.weight", l)));
        u.ffn_down = std::lcm(u.ffn_down, unit(fmt::format("blk.{}.ffn_down.weight", l)));
    }
    return u;
}

Result<ModelConfig> ModelConfig::from_gguf(const gguf::File& f) {
    ModelConfig c;
    PL_ASSIGN_OR_RETURN(auto arch, f.get_string("general.architecture"));
    if (!arch) return err("missing metadata key 'general.architecture'");
    c.arch = *arch;
    // Mistral-style GQA models are stored as "llama" by llama.cpp's converter; accept the alias.
    if (c.arch != "llama" && c.arch != "mistral")
        return err("unsupported architecture '{}' (supported: llama, mistral)", c.arch);
    const std::string p = c.arch + ".";
    PL_ASSIGN_OR_RETURN(auto name, f.get_string("general.name"));
    c.name = name.value_or("");
    PL_ASSIGN_OR_RETURN(c.dim, require_int(f, p + "embedding_length"));
    PL_ASSIGN_OR_RETURN(c.hidden_dim, require_int(f, p + "feed_forward_length"));
    PL_ASSIGN_OR_RETURN(c.n_layers, require_int(f, p + "block_count"));
    PL_ASSIGN_OR_RETURN(c.n_heads, require_int(f, p + "attention.head_count"));
    PL_ASSIGN_OR_RETURN(auto n_kv, optional_int(f, p + "attention.head_count_kv"));
    c.n_kv_heads = n_kv.value_or(c.n_heads);
    PL_ASSIGN_OR_RETURN(c.context_length, require_int(f, p + "context_length"));
    if (c.dim % c.n_heads != 0)
        return err("embedding_length {} is not divisible by head_count {}", c.dim, c.n_heads);
    if (c.n_heads % c.n_kv_heads != 0)
        return err("head_count {} is not divisible by head_count_kv {}", c.n_heads, c.n_kv_heads);
    c.head_dim = c.dim / c.n_heads;
    PL_ASSIGN_OR_RETURN(auto key_len, optional_int(f, p + "attention.key_length"));
    if (key_len && *key_len != c.head_dim)
        return err("attention.key_length {} differs from embedding_length/head_count {} (unsupported)", *key_len, c.head_dim);
    c.kv_dim = c.n_kv_heads * c.head_dim;
    PL_ASSIGN_OR_RETURN(auto n_rot, optional_int(f, p + "rope.dimension_count"));
    c.n_rot = n_rot.value_or(c.head_dim);
    if (c.n_rot > c.head_dim || c.n_rot % 2 != 0)
        return err("rope.dimension_count {} must be even and at most head_dim {}", c.n_rot, c.head_dim);
    PL_ASSIGN_OR_RETURN(auto theta, optional_float(f, p + "rope.freq_base"));
    c.rope_theta = theta.value_or(10000.0f);
    if (c.rope_theta <= 0) return err("rope.freq_base {} must be positive", c.rope_theta);
    PL_ASSIGN_OR_RETURN(auto eps, optional_float(f, p + "attention.layer_norm_rms_epsilon"));
    c.rms_eps = eps.value_or(1e-5f);
    if (!(c.rms_eps > 0)) return err("attention.layer_norm_rms_epsilon {} must be positive", c.rms_eps);
    PL_ASSIGN_OR_RETURN(auto scaling, f.get_string(p + "rope.scaling.type"));
    if (scaling && *scaling != "none" && *scaling != "llama3")
        return err("rope scaling type '{}' is not supported", *scaling);

    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    if (!embd) return err("missing tensor(s): token_embd.weight");
    if (embd->ne.size() != 2) return err("token_embd.weight has shape {}, expected 2 dims", shape_str(embd->ne));
    c.vocab_size = static_cast<int>(embd->ne[1]);
    PL_ASSIGN_OR_RETURN(auto vocab_meta, optional_int(f, p + "vocab_size"));
    if (vocab_meta && *vocab_meta != c.vocab_size)
        return err("{}vocab_size {} differs from token_embd.weight rows {}", p, *vocab_meta, c.vocab_size);
    c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return c;
}

std::string ModelConfig::summary() const {
    return fmt::format("{} '{}': dim {}, hidden {}, layers {}, heads {}/{} (head_dim {}), vocab {}, ctx {}, rope theta {}{}",
                       arch, name, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size,
                       context_length, rope_theta, tied_embeddings ? ", tied embeddings" : "");
}

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
    auto f = gguf::File::open(path);
    if (!f) return f.status();
    return from_file(std::move(f).value());
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<gguf::File> file) { return from_file(std::move(file), ShardSpec{}); }

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const ShardSpec& shard) {
    auto f = gguf::File::open(path);
    if (!f) return f.status();
    return from_file(std::move(f).value(), shard);
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<gguf::File> file, const ShardSpec& shard) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    const gguf::File& f = *m->file_;
    auto cfg = ModelConfig::from_gguf(f);
    if (!cfg) return cfg.status().with_context(f.path());
    m->cfg_ = *cfg;
    const ModelConfig& c = m->cfg_;
    const int q_dim = c.n_heads * c.head_dim;

    // Every layer of the file counts (not only this stage's), so all ranks cut alike.
    auto dims = shard_dims(c, shard, shard.tp_size > 1 ? split_units(f, c) : SplitUnits{});
    if (!dims) return dims.status().with_context(f.path());
    m->shard_ = shard;
    m->dims_ = *dims;
    const ShardDims& d = m->dims_;
    const int tp = shard.tp_size;
    const int hd = c.head_dim;

    Binder b(f);
    // Rows of this rank: heads [head_begin, +n_heads), KV heads, FFN rows, vocabulary rows.
    auto rows = [&](const std::string& name, int64_t n_rows, int64_t n_cols, int64_t r0, int64_t n) {
        return row_slice(b.matrix(name, n_rows, n_cols), r0, r0 + n);
    };
    // Columns of this rank (attention output over its heads, FFN down over its FFN rows).
    auto cols = [&](const std::string& name, int64_t n_rows, int64_t n_cols, int64_t c0, int64_t n) {
        if (tp == 1) return b.matrix(name, n_rows, n_cols);
        return b.matrix_cols(name, n_rows, n_cols, c0, c0 + n, tp, m->owned_);
    };
    m->token_embd_ = b.matrix("token_embd.weight", c.vocab_size, c.dim);
    if (d.layer_end == c.n_layers) {
        const WeightView head = c.tied_embeddings ? m->token_embd_ : b.matrix("output.weight", c.vocab_size, c.dim);
        m->output_ = row_slice(head, d.vocab_begin, d.vocab_end);
    }
    m->output_norm_ = b.vector("output_norm.weight", c.dim);
    m->rope_freqs_ = b.vector("rope_freqs.weight", c.n_rot / 2, /*required=*/false);
    m->layers_.resize(static_cast<size_t>(c.n_layers));
    for (int l = d.layer_begin; l < d.layer_end; ++l) {
        const std::string p = fmt::format("blk.{}.", l);
        LayerWeights& L = m->layers_[static_cast<size_t>(l)];
        L.attn_norm = b.vector(p + "attn_norm.weight", c.dim);
        L.ffn_norm = b.vector(p + "ffn_norm.weight", c.dim);
        L.wq = rows(p + "attn_q.weight", q_dim, c.dim, int64_t{d.head_begin} * hd, d.q_dim);
        L.wk = rows(p + "attn_k.weight", c.kv_dim, c.dim, int64_t{d.kv_head_begin} * hd, d.kv_dim);
        L.wv = rows(p + "attn_v.weight", c.kv_dim, c.dim, int64_t{d.kv_head_begin} * hd, d.kv_dim);
        L.wo = cols(p + "attn_output.weight", c.dim, q_dim, int64_t{d.head_begin} * hd, d.q_dim);
        L.w_gate = rows(p + "ffn_gate.weight", c.hidden_dim, c.dim, d.hidden_begin, d.hidden_dim);
        L.w_up = rows(p + "ffn_up.weight", c.hidden_dim, c.dim, d.hidden_begin, d.hidden_dim);
        L.w_down = cols(p + "ffn_down.weight", c.dim, c.hidden_dim, d.hidden_begin, d.hidden_dim);
    }
    if (Status s = b.status(); !s) return s.with_context(f.path());
    PL_LOG_INFO("model: {}", c.summary());
    const auto avail = available_memory_bytes();
    m->place_weights(default_mmap_mode(), avail);
    if (avail && m->weight_bytes() > *avail)
        PL_LOG_WARN("{}: the weights read per token take {:.1f} GiB but only {:.1f} GiB of memory is available: evicted pages "
                    "are read from disk again every token, so expect disk-bound speed (a smaller type, "
                    "or --tp/--pp over more machines, docs/parallelism.md)",
                    m->file_->path(), static_cast<double>(m->weight_bytes()) / (1ull << 30),
                    static_cast<double>(*avail) / (1ull << 30));
    if (d.kv_replicated)
        PL_LOG_INFO("tp rank {} of {}: query heads [{}, {}) read KV heads [{}, {}), held here as on every rank that reads them "
                    "(n_kv_heads={} cannot go to {} ranks in whole groups)",
                    shard.tp_rank, tp, d.head_begin, d.head_begin + d.n_heads, d.kv_head_begin, d.kv_head_begin + d.n_kv_heads,
                    c.n_kv_heads, tp);
    return m;
}

const char* mmap_mode_name(MmapMode m) {
    switch (m) {
        case MmapMode::On: return "on";
        case MmapMode::Off: return "off";
        case MmapMode::Auto: break;
    }
    return "auto";
}

std::optional<MmapMode> parse_mmap_mode(std::string_view name) {
    if (name == "auto") return MmapMode::Auto;
    if (name == "on") return MmapMode::On;
    if (name == "off") return MmapMode::Off;
    return std::nullopt;
}

namespace {
std::atomic<MmapMode> g_mmap_mode{MmapMode::Auto};
}  // namespace

MmapMode default_mmap_mode() { return g_mmap_mode.load(std::memory_order_relaxed); }
void set_default_mmap_mode(MmapMode m) { g_mmap_mode.store(m, std::memory_order_relaxed); }

bool should_copy_weights(MmapMode mode, uint64_t bytes, std::optional<uint64_t> avail, int local_procs, bool thp) {
    if (mode != MmapMode::Auto) return mode == MmapMode::Off;
    if (!thp || !avail || bytes == 0) return false;
    const double need = static_cast<double>(bytes) * std::max(1, local_procs);
    return 2.0 * need <= static_cast<double>(*avail);
}

void Model::place_weights(MmapMode mode, std::optional<uint64_t> avail) {
    std::vector<WeightView*> views;
    if (output_.data) views.push_back(&output_);
    for (LayerWeights& L : layers_)
        for (WeightView* w : L.matrices())
            if (w->data) views.push_back(w);
    const auto pad = [](size_t n) { return (n + 63) & ~size_t{63}; };
    // q3.5 matrices are folded on the way (quant/q3_5_fold.h) where the kernels run them on AMX:
    // their copy takes 113/112 of the file's bytes.
    const CpuKernels& k = cpu_kernels();
    std::vector<char> fold(views.size(), 0);
    std::vector<size_t> dst_row_bytes(views.size());  // a row of each view's copy
    const auto dst_bytes = [&](size_t i) { return dst_row_bytes[i] * static_cast<size_t>(views[i]->rows); };
    size_t total = 0;
    for (size_t i = 0; i < views.size(); ++i) {
        const WeightView* w = views[i];
        fold[i] = w->type == static_cast<uint32_t>(GgmlType::Q3_5) && folds_q3_5(k, w->cols);
        dst_row_bytes[i] = fold[i] ? *row_bytes(static_cast<uint32_t>(GgmlType::Q3_5F), w->cols) : w->row_bytes;
        total += pad(dst_bytes(i));
    }
    const bool thp = transparent_hugepages_usable();
    if (!should_copy_weights(mode, total, avail, local_process_count(), thp)) {
        if (mode == MmapMode::Auto && total > 0)
            PL_LOG_INFO("weights: {:.2f} GiB used in the file mapping ({}; --mmap off copies them into huge pages)",
                        static_cast<double>(total) / (1ull << 30),
                        thp ? "copies would take over half the available memory" : "transparent huge pages are off");
        return;
    }
    auto buf = HugeBuffer::allocate(total);
    if (!buf) {
        PL_LOG_WARN("weights: cannot allocate {:.2f} GiB to copy them into; using the file mapping",
                    static_cast<double>(total) / (1ull << 30));
        return;
    }
    if (!thp) PL_LOG_WARN("weights: transparent huge pages are off in this kernel; the copy uses 4 KiB pages");
    // Each view's destination, then the copy in pieces of about 1 MiB over the threads (page
    // faults of the file and the zeroing of fresh huge pages run in parallel); folded views go
    // in whole rows.
    struct Piece {
        size_t view;
        const uint8_t* src;
        uint8_t* dst;
        size_t n;      // bytes, or rows of a folded view
    };
    std::vector<Piece> pieces;
    std::vector<uint8_t*> dsts(views.size());
    size_t off = 0;
    for (size_t i = 0; i < views.size(); ++i) {
        WeightView* w = views[i];
        uint8_t* dst = buf->data() + off;
        dsts[i] = dst;
        if (fold[i]) {
            const size_t per = std::max<size_t>(1, (size_t{1} << 20) / w->row_bytes);
            for (size_t r = 0; r < static_cast<size_t>(w->rows); r += per)
                pieces.push_back({i, w->row(static_cast<int64_t>(r)), dst + r * dst_row_bytes[i],
                                  std::min(per, static_cast<size_t>(w->rows) - r)});
        } else {
            for (size_t j = 0; j < w->nbytes(); j += size_t{1} << 20)
                pieces.push_back({i, w->data + j, dst + j, std::min(size_t{1} << 20, w->nbytes() - j)});
        }
        off += pad(dst_bytes(i));
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto np = static_cast<int64_t>(pieces.size());
    std::vector<std::atomic<bool>> unfoldable(views.size());
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < np; ++i) {
        const Piece& pc = pieces[static_cast<size_t>(i)];
        if (!fold[pc.view]) {
            std::memcpy(pc.dst, pc.src, pc.n);
            continue;
        }
        const WeightView* w = views[pc.view];
        for (size_t r = 0; r < pc.n; ++r)
            if (!fold_row_q3_5(pc.src + r * w->row_bytes, pc.dst + r * dst_row_bytes[pc.view], w->cols)) {
                unfoldable[pc.view].store(true, std::memory_order_relaxed);
                break;
            }
    }
    int folded = 0;
    for (size_t i = 0; i < views.size(); ++i) {
        WeightView* w = views[i];
        if (fold[i] && unfoldable[i].load()) {  // keep the file's layout (it fits: folded is larger)
            PL_LOG_INFO("weights: '{}' has a q3.5 group whose scales cannot be folded; it stays in the file layout", w->name);
            std::memcpy(dsts[i], w->data, w->nbytes());
            fold[i] = 0;
        }
        if (fold[i]) {
            w->type = static_cast<uint32_t>(GgmlType::Q3_5F);
            w->row_bytes = dst_row_bytes[i];
            ++folded;
        }
        w->data = dsts[i];
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    arena_ = std::move(*buf);
    owned_.clear();  // tensor-parallel column slices now live in the arena
    PL_LOG_INFO("weights: {:.2f} GiB copied into huge-page memory in {:.2f} s (--mmap on uses the file mapping instead)",
                static_cast<double>(total) / (1ull << 30), s);
    if (folded > 0)
        PL_LOG_INFO("weights: {} q3.5 matrices folded for the AMX kernels (quant/q3_5_fold.h; PARALLAMA_AMX=0 keeps the file layout)",
                    folded);
}

uint64_t Model::weight_bytes() const {
    uint64_t n = output_.nbytes() + token_embd_.row_bytes;
    for (const auto& L : layers_)
        for (const WeightView* w : L.matrices()) n += w->nbytes();
    return n;
}

uint64_t Model::n_params() const {
    uint64_t n = static_cast<uint64_t>(token_embd_.rows * token_embd_.cols);
    if (!cfg_.tied_embeddings) n += static_cast<uint64_t>(output_.rows * output_.cols);
    for (const auto& L : layers_)
        for (const WeightView* w : L.matrices()) n += static_cast<uint64_t>(w->rows * w->cols);
    return n;
}

const char* kv_type_name(KvType t) { return t == KvType::F16 ? "f16" : "f32"; }

std::optional<KvType> parse_kv_type(std::string_view name) {
    if (name == "f32") return KvType::F32;
    if (name == "f16") return KvType::F16;
    return std::nullopt;
}

namespace {
std::atomic<KvType> g_kv_type{KvType::F32};

// Entries from which the per-entry steps of a forward pass (norms, RoPE, SwiGLU, residual adds,
// the rotation and quantization of matrix inputs) are spread over the threads; below it a
// parallel region costs more than it saves.
constexpr int kParallelRows = 4;

// x += y over n rows of dim (the residual connection).
void add_rows(float* x, const float* y, int n, int dim) {
#pragma omp parallel for schedule(static) if (n >= kParallelRows)
    for (int i = 0; i < n; ++i) {
        float* xr = x + static_cast<size_t>(i) * dim;
        const float* yr = y + static_cast<size_t>(i) * dim;
        for (int j = 0; j < dim; ++j) xr[j] += yr[j];
    }
}
}  // namespace

KvType default_kv_type() { return g_kv_type.load(std::memory_order_relaxed); }
void set_default_kv_type(KvType t) { g_kv_type.store(t, std::memory_order_relaxed); }

Result<std::unique_ptr<Session>> Session::create(const Model& model, int n_ctx, bool reference, int n_batch, int n_seq,
                                                 std::optional<KvType> kv_type, int64_t kv_budget_tokens) {
    const ModelConfig& c = model.config();
    if (n_ctx <= 0) n_ctx = std::min(c.context_length, 4096);
    if (n_ctx > (1 << 20)) return err("context size {} is too large", n_ctx);
    if (n_batch <= 0) n_batch = 64;
    if (n_batch > 4096) return err("batch size {} is too large (at most 4096)", n_batch);
    if (n_seq <= 0) n_seq = 1;
    if (n_seq > 4096) return err("{} sequences are too many (at most 4096)", n_seq);
    std::unique_ptr<Session> s(new Session(model));
    s->n_ctx_ = n_ctx;
    s->n_seq_ = n_seq;
    s->kv_type_ = kv_type.value_or(default_kv_type());
    static const CpuKernels scalar = kernels_for(Isa::Scalar);
    s->kv_kernels_ = reference ? &scalar : &cpu_kernels();
    s->n_batch_ = std::min(n_batch, n_ctx);
    s->n_threads_ = std::max(1, omp_get_max_threads());
    if (!reference) s->kernels_ = &cpu_kernels();
    // Without a budget every sequence can fill its context: whole blocks per sequence (a pool of
    // n_seq * n_ctx positions would be short by up to a block per sequence, since blocks are
    // not shared between sequences).
    const int64_t ctx_blocks = (static_cast<int64_t>(n_ctx) + kKvBlock - 1) / kKvBlock;
    const int64_t budget = kv_budget_tokens > 0 ? kv_budget_tokens : static_cast<int64_t>(n_seq) * ctx_blocks * kKvBlock;
    const int64_t n_blocks = std::max<int64_t>(1, (budget + kKvBlock - 1) / kKvBlock);
    if (n_blocks > (int64_t{1} << 30)) return err("KV budget of {} tokens is too large", budget);
    s->n_blocks_ = static_cast<int>(n_blocks);
    s->free_blocks_.resize(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) s->free_blocks_[static_cast<size_t>(b)] = static_cast<int32_t>(n_blocks - 1 - b);
    s->seq_blocks_.resize(static_cast<size_t>(n_seq));
    const ShardDims& d = model.dims();
    const size_t kv = static_cast<size_t>(d.n_layers()) * static_cast<size_t>(n_blocks) * kKvBlock * static_cast<size_t>(d.kv_dim);
    const size_t elem = s->kv_type_ == KvType::F16 ? sizeof(uint16_t) : sizeof(float);
    s->kv_cache_bytes_ = 2 * kv * elem;
    s->key_cache_ = std::calloc(kv, elem);
    s->value_cache_ = std::calloc(kv, elem);
    if (!s->key_cache_ || !s->value_cache_)
        return err("cannot allocate the KV cache: {} MiB ({}) for {} positions ({} sequence(s), context {})", 2 * kv * elem >> 20,
                   kv_type_name(s->kv_type_), n_blocks * kKvBlock, n_seq, n_ctx);
    const size_t nb = static_cast<size_t>(s->n_batch_);
    s->k_new_.resize(nb * d.kv_dim);
    s->v_new_.resize(nb * d.kv_dim);
    s->x_.resize(nb * c.dim);
    s->xb_.resize(nb * std::max(c.dim, d.q_dim));
    s->xb2_.resize(nb * c.dim);
    s->q_.resize(nb * d.q_dim);
    s->hb_.resize(nb * d.hidden_dim);
    s->hb2_.resize(nb * d.hidden_dim);
    if (model.shard().tp_size > 1) s->logits_local_.resize(nb * static_cast<size_t>(d.vocab_end - d.vocab_begin));
    s->att_.resize(static_cast<size_t>(s->n_threads_) * static_cast<size_t>(n_ctx));
    return s;
}

Session::~Session() {
    std::free(key_cache_);
    std::free(value_cache_);
}

Status Session::check_shard_ready(bool needs_full_depth) const {
    const ShardDims& d = model_.dims();
    if (needs_full_depth && (d.layer_begin != 0 || d.layer_end != model_.config().n_layers))
        return err("this model shard holds layers [{}, {}) of {}: run it with decode_stage()", d.layer_begin, d.layer_end,
                   model_.config().n_layers);
    if (model_.shard().tp_size > 1 && (!tp_ || tp_->size() != model_.shard().tp_size))
        return err("a tensor-parallel shard (tp={}) needs its collectives (Session::set_tensor_parallel)", model_.shard().tp_size);
    return Status::ok();
}

Status Session::eval(std::span<const int32_t> tokens, float* logits_out, bool all_logits) {
    const ModelConfig& c = model_.config();
    PL_TRY(check_shard_ready(true));
    if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_)
        return err("context overflow: {} tokens in the cache + {} new > context size {}", n_past_, tokens.size(), n_ctx_);
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
            return err("token id {} at index {} is out of range [0, {})", tokens[i], i, c.vocab_size);
    {
        const int first = n_past_, last = n_past_ + static_cast<int>(tokens.size()) - 1;
        if (last >= first) {
            const int seq0[2] = {0, 0}, ends[2] = {first, last};
            PL_TRY(reserve(seq0, ends, 2));
        }
    }
    const size_t vocab = static_cast<size_t>(c.vocab_size);
    for (size_t i0 = 0; i0 < tokens.size(); i0 += static_cast<size_t>(n_batch_)) {
        const int n = static_cast<int>(std::min(tokens.size() - i0, static_cast<size_t>(n_batch_)));
        const bool last_chunk = i0 + static_cast<size_t>(n) == tokens.size();
        float* out = nullptr;
        if (logits_out && all_logits) out = logits_out + i0 * vocab;
        if (logits_out && !all_logits && last_chunk) out = logits_out;
        forward_batch(tokens.data() + i0, n, n_past_, out, all_logits);
        n_past_ += n;
    }
    return Status::ok();
}

Status Session::reserve(const int* seqs, const int* pos, int n) {
    // Blocks each sequence needs beyond what it has, then all or nothing.
    std::vector<std::pair<int, int>> want;  // (sequence, blocks it must have)
    for (int i = 0; i < n; ++i) {
        const int need = pos[i] / kKvBlock + 1;
        bool found = false;
        for (auto& w : want)
            if (w.first == seqs[i]) {
                w.second = std::max(w.second, need);
                found = true;
            }
        if (!found) want.emplace_back(seqs[i], need);
    }
    size_t extra = 0;
    for (const auto& [sq, need] : want) {
        const size_t have = seq_blocks_[static_cast<size_t>(sq)].size();
        if (static_cast<size_t>(need) > have) extra += static_cast<size_t>(need) - have;
    }
    if (extra > free_blocks_.size())
        return err("KV cache full: {} more blocks of {} positions needed, {} free of {} (free finished sequences or raise the KV budget)",
                   extra, kKvBlock, free_blocks_.size(), n_blocks_);
    for (const auto& [sq, need] : want) {
        auto& table = seq_blocks_[static_cast<size_t>(sq)];
        while (table.size() < static_cast<size_t>(need)) {
            table.push_back(free_blocks_.back());
            free_blocks_.pop_back();
        }
    }
    return Status::ok();
}

void Session::seq_free(int seq) {
    if (seq < 0 || seq >= n_seq_) return;
    auto& table = seq_blocks_[static_cast<size_t>(seq)];
    for (auto it = table.rbegin(); it != table.rend(); ++it) free_blocks_.push_back(*it);
    table.clear();
}

int Session::seq_capacity(int seq) const {
    if (seq < 0 || seq >= n_seq_) return 0;
    return static_cast<int>(seq_blocks_[static_cast<size_t>(seq)].size()) * kKvBlock;
}

void Session::truncate(int n) {
    n_past_ = n < n_past_ ? (n < 0 ? 0 : n) : n_past_;
    auto& table = seq_blocks_[0];
    const size_t keep = static_cast<size_t>((n_past_ + kKvBlock - 1) / kKvBlock);
    while (table.size() > keep) {
        free_blocks_.push_back(table.back());
        table.pop_back();
    }
}

Status Session::decode(std::span<const BatchEntry> entries, float* logits_out) {
    PL_TRY(check_shard_ready(true));
    return decode_stage(entries, nullptr, logits_out);
}

Status Session::decode_stage(std::span<const BatchEntry> entries, const float* x_in, float* out) {
    const ModelConfig& c = model_.config();
    PL_TRY(check_shard_ready(false));
    const bool first = model_.dims().layer_begin == 0, last = model_.dims().layer_end == c.n_layers;
    if (!first && !x_in) return err("a pipeline stage starting at layer {} needs its input hidden states", model_.dims().layer_begin);
    if (!last && !out) return err("a pipeline stage ending before the last layer needs a buffer for its hidden states");
    float* logits_out = last ? out : nullptr;
    for (size_t i = 0; i < entries.size(); ++i) {
        const BatchEntry& e = entries[i];
        if (e.seq < 0 || e.seq >= n_seq_) return err("entry {}: sequence {} is out of range [0, {})", i, e.seq, n_seq_);
        if (e.pos < 0 || e.pos >= n_ctx_) return err("entry {}: position {} is outside the context [0, {})", i, e.pos, n_ctx_);
        if (e.token < 0 || e.token >= c.vocab_size)
            return err("entry {}: token id {} is out of range [0, {})", i, e.token, c.vocab_size);
    }
    {
        std::vector<int> es, ep;
        for (const BatchEntry& e : entries) {
            es.push_back(e.seq);
            ep.push_back(e.pos);
        }
        PL_TRY(reserve(es.data(), ep.data(), static_cast<int>(es.size())));
    }
    const size_t vocab = static_cast<size_t>(c.vocab_size);
    std::vector<int32_t> tokens;
    std::vector<int> seqs, pos, rows;
    for (size_t i0 = 0; i0 < entries.size(); i0 += static_cast<size_t>(n_batch_)) {
        const int n = static_cast<int>(std::min(entries.size() - i0, static_cast<size_t>(n_batch_)));
        tokens.clear();
        seqs.clear();
        pos.clear();
        rows.clear();
        for (int i = 0; i < n; ++i) {
            const BatchEntry& e = entries[i0 + static_cast<size_t>(i)];
            tokens.push_back(e.token);
            seqs.push_back(e.seq);
            pos.push_back(e.pos);
            if (e.logits) rows.push_back(i);
        }
        const size_t at = i0 * static_cast<size_t>(c.dim);
        forward_entries(tokens.data(), seqs.data(), pos.data(), n, rows.empty() ? nullptr : logits_out, rows.data(),
                        static_cast<int>(rows.size()), x_in ? x_in + at : nullptr, last ? nullptr : out + at);
        if (logits_out) logits_out += rows.size() * vocab;
    }
    return Status::ok();
}

// Products of the same input X (q/k/v, gate/up): in one parallel region when the int8 path takes
// all of them with the same type and width, otherwise one linear() each. Same numbers either way.
void Session::linear_many(std::span<const WeightView* const> Ws, std::span<float* const> Ys, const float* X, int n,
                          Q8Acts& xq, bool& xq_valid) {
    bool fused = kernels_ != nullptr && Ws.size() > 1;
    for (const WeightView* W : Ws)
        fused = fused && W->type == Ws[0]->type && W->cols == Ws[0]->cols && W->cols % kQ8ABlock == 0 &&
                kernels_->dot_for(W->type);
    if (!fused) {
        for (size_t i = 0; i < Ws.size(); ++i) linear(*Ws[i], X, n, Ys[i], xq, xq_valid);
        return;
    }
    quantize_input(*Ws[0], X, n, xq, xq_valid);  // calls the observer for Ws[0]; the others share xq
    for (size_t i = 1; i < Ws.size(); ++i) observe(*Ws[i], X, n);
    matmul_q8a_multi(Ws, xq, Ys, *kernels_);
}

void Session::linear(const WeightView& W, const float* X, int n, float* Y, Q8Acts& xq, bool& xq_valid) {
    if (kernels_ && W.cols % kQ8ABlock == 0 && kernels_->dot_for(W.type)) {
        quantize_input(W, X, n, xq, xq_valid);
        matmul_q8a(W, xq, Y, *kernels_);
    } else {
        observe(W, X, n);
        matmul(W, X, n, Y);
    }
}

// The imatrix observer (when set) sees every input row of W.
void Session::observe(const WeightView& W, const float* X, int n) {
    if (observer_)
        for (int i = 0; i < n; ++i) observer_(W, X + static_cast<size_t>(i) * W.cols);
}

// X quantized for W's int8 kernels into xq, unless xq already holds it in that layout; calls the
// observer (imatrix) for W.
void Session::quantize_input(const WeightView& W, const float* X, int n, Q8Acts& xq, bool& xq_valid) {
    observe(W, X, n);
    // q3.5 rows are stored rotated (quant/q3_5.h): their kernels take R x, not x.
    const TypeTraits* tt = type_traits(W.type);
    const bool rotated = tt && tt->rotated_input;
    if (xq_valid && xq.rotated == rotated) return;
    xq.resize(W.cols, n);
    const QuantizeActsFn quant = kernels_->quantize_acts_for(W.type);
    const int64_t nb = W.cols / kQ8ABlock;
    // Rows are independent: spread a batch's rows over the threads (one row stays serial).
    const int64_t cols = W.cols;
    if (rotated) rot_.resize(static_cast<size_t>(cols) * static_cast<size_t>(std::max(1, omp_get_max_threads())));
#pragma omp parallel for schedule(static) if (n >= kParallelRows)
    for (int i = 0; i < n; ++i) {
        const float* src = X + static_cast<size_t>(i) * cols;
        if (rotated) {  // per row: the rotation works on the row's own groups
            float* r = rot_.data() + static_cast<size_t>(omp_get_thread_num()) * static_cast<size_t>(cols);
            std::copy(src, src + cols, r);
            kernels_->rotate_q3_5(r, cols);
            src = r;
        }
        quant(src, cols, xq.qs.data() + i * cols, xq.d.data() + i * nb, xq.sum.data() + i * nb);
    }
    xq.rotated = rotated;
    xq_valid = true;
}

// n tokens of sequence 0 at positions pos0.. (the single-sequence path of eval()).
void Session::forward_batch(const int32_t* tokens, int n, int pos0, float* logits, bool all_logits) {
    seqs_.assign(static_cast<size_t>(n), 0);
    pos_.resize(static_cast<size_t>(n));
    rows_.clear();
    for (int i = 0; i < n; ++i) {
        pos_[static_cast<size_t>(i)] = pos0 + i;
        if (all_logits || i == n - 1) rows_.push_back(i);
    }
    forward_entries(tokens, seqs_.data(), pos_.data(), n, logits, rows_.data(), logits ? static_cast<int>(rows_.size()) : 0);
}

// n entries through the model (llama2.c's forward, generalised to a batch of tokens from any
// sequences at any positions, GQA, partial rotary dims, rope frequency factors and any weight
// type). The per-entry arithmetic is identical to running the tokens one at a time.
void Session::forward_entries(const int32_t* tokens, const int* seqs, const int* pos, int n, float* logits,
                              const int* logit_rows, int n_logit_rows, const float* x_in, float* x_out) {
    adapt_threads();  // -t 0: fewer threads while other processes keep cores busy (core/cpu_budget.h)
    const ModelConfig& c = model_.config();
    const ShardDims& d = model_.dims();  // the whole model, or this rank's heads, FFN rows and layers
    const int dim = c.dim;
    const int head_dim = c.head_dim;
    const int kv_dim = d.kv_dim;
    const int q_dim = d.q_dim;
    const int kv_mul = c.n_heads / c.n_kv_heads;
    const size_t nd = static_cast<size_t>(n) * dim;
    TensorParallelOps* tp = model_.shard().tp_size > 1 ? tp_ : nullptr;
    const float* freq_factors = model_.rope_freqs().empty() ? nullptr : model_.rope_freqs().data();
    float* x = x_.data();
    const bool f16 = kv_type_ == KvType::F16;
    // Where (layer, sequence, position, KV head) sits in the caches: through the sequence's block
    // table. A block is head-major, (n_kv_heads, kKvBlock, head_dim) elements; within one head's
    // part a value block is position-major (kKvBlock, head_dim) and a key block dim-major
    // (head_dim, kKvBlock), the layout of CpuKernels::attn_scores / attn_values (kernels.h): the
    // scores of 16 keys are then one vector per dimension, with no horizontal sums.
    static_assert(kKvBlock == kAttnBlock);
    const size_t block_elems = static_cast<size_t>(kKvBlock) * static_cast<size_t>(kv_dim);
    const size_t head_elems = static_cast<size_t>(kKvBlock) * static_cast<size_t>(head_dim);
    // Block 0 of (layer, KV head); block b is b * block_elems further.
    auto head_base = [&](int l, int kvh) {
        return static_cast<size_t>(l - d.layer_begin) * static_cast<size_t>(n_blocks_) * block_elems + static_cast<size_t>(kvh) * head_elems;
    };
    auto block_of = [&](int s, int t) { return static_cast<size_t>(seq_blocks_[static_cast<size_t>(s)][static_cast<size_t>(t / kKvBlock)]); };

    if (x_in)
        std::memcpy(x, x_in, nd * sizeof(float));
    else
        for (int i = 0; i < n; ++i) dequantize_row(model_.token_embd(), tokens[i], x + static_cast<size_t>(i) * dim);

    for (int l = d.layer_begin; l < d.layer_end; ++l) {
        const LayerWeights& L = model_.layer(l);
        // Per-entry and element-wise steps run on all threads from kParallelRows entries on
        // (each element sees the same operations, so the results do not depend on the split).
#pragma omp parallel for schedule(static) if (n >= kParallelRows)
        for (int i = 0; i < n; ++i)
            rmsnorm(xb_.data() + static_cast<size_t>(i) * dim, x + static_cast<size_t>(i) * dim, L.attn_norm.data(), dim, c.rms_eps);

        bool xq_valid = false;
        {
            const WeightView* ws[] = {&L.wq, &L.wk, &L.wv};
            float* ys[] = {q_.data(), k_new_.data(), v_new_.data()};
            linear_many(ws, ys, xb_.data(), n, xq_, xq_valid);
        }
#pragma omp parallel for schedule(static) if (n >= kParallelRows)
        for (int i = 0; i < n; ++i) {
            float* k = k_new_.data() + static_cast<size_t>(i) * kv_dim;
            rope(q_.data() + static_cast<size_t>(i) * q_dim, d.n_heads, head_dim, c.n_rot, pos[i], c.rope_theta, freq_factors);
            rope(k, d.n_kv_heads, head_dim, c.n_rot, pos[i], c.rope_theta, freq_factors);
            // This step's K and V rows go to their sequences' slots before any entry attends.
            const float* v = v_new_.data() + static_cast<size_t>(i) * kv_dim;
            const int slot = pos[i] % kKvBlock;
            const size_t block_off = block_of(seqs[i], pos[i]) * block_elems;
            for (int kvh = 0; kvh < d.n_kv_heads; ++kvh) {
                const size_t block = head_base(l, kvh) + block_off;
                const size_t kat = block + static_cast<size_t>(slot);                              // column `slot` of (head_dim, 16)
                const size_t vat = block + static_cast<size_t>(slot) * static_cast<size_t>(head_dim);  // row `slot` of (16, head_dim)
                const float* kh = k + static_cast<size_t>(kvh) * head_dim;
                const float* vh = v + static_cast<size_t>(kvh) * head_dim;
                if (f16) {
                    // (fp32_to_fp16 rounds as to_f16 does, bit for bit: Kernels.F16KvHelpersMatchScalar)
                    auto* kc = static_cast<uint16_t*>(key_cache_) + kat;
                    for (int e = 0; e < head_dim; ++e) kc[static_cast<size_t>(e) * kKvBlock] = fp32_to_fp16(kh[e]);
                    kv_kernels_->to_f16(vh, static_cast<uint16_t*>(value_cache_) + vat, head_dim);
                } else {
                    auto* kc = static_cast<float*>(key_cache_) + kat;
                    for (int e = 0; e < head_dim; ++e) kc[static_cast<size_t>(e) * kKvBlock] = kh[e];
                    std::memcpy(static_cast<float*>(value_cache_) + vat, vh, static_cast<size_t>(head_dim) * sizeof(float));
                }
            }
        }

        const float sqrt_head_dim = std::sqrt(static_cast<float>(head_dim));
        const int n_heads = d.n_heads;
        // Heads outside, entries inside: the entries of a prompt chunk that read the same head
        // follow each other, so that head's keys and values (1 MiB at 1000 positions, f32,
        // head_dim 128) are read from memory once and then from L2.
#pragma omp parallel for collapse(2) schedule(static)
        for (int h = 0; h < n_heads; ++h) {
            for (int i = 0; i < n; ++i) {
                const int p = pos[i];  // causal: the entry sees positions 0..p of its sequence
                const int sq = seqs[i];
                const float* q = q_.data() + static_cast<size_t>(i) * q_dim + static_cast<size_t>(h) * head_dim;
                float* att = att_.data() + static_cast<size_t>(omp_get_thread_num()) * n_ctx_;
                // The KV head query head head_begin + h reads, among this rank's KV heads (with
                // whole KV groups head_begin = kv_head_begin * kv_mul, so it is h / kv_mul).
                const int kvh = (d.head_begin + h) / kv_mul - d.kv_head_begin;
                float* out = xb_.data() + static_cast<size_t>(i) * q_dim + static_cast<size_t>(h) * head_dim;
                const int32_t* blocks = seq_blocks_[static_cast<size_t>(sq)].data();
                const size_t base = head_base(l, kvh);
                // One body for both cache types (T = float or uint16_t halves).
                auto attend = [&](const auto* kc, const auto* vc, auto scores, auto values) {
                    scores(q, kc + base, blocks, block_elems, p + 1, head_dim, sqrt_head_dim, att);
                    softmax(att, p + 1);
                    values(out, att, vc + base, blocks, block_elems, p + 1, head_dim);
                };
                if (f16)
                    attend(static_cast<const uint16_t*>(key_cache_), static_cast<const uint16_t*>(value_cache_),
                           kv_kernels_->attn_scores_f16, kv_kernels_->attn_values_f16);
                else
                    attend(static_cast<const float*>(key_cache_), static_cast<const float*>(value_cache_),
                           kv_kernels_->attn_scores_f32, kv_kernels_->attn_values_f32);
            }
        }
        xq_valid = false;
        linear(L.wo, xb_.data(), n, xb2_.data(), xq_, xq_valid);
        if (tp) tp->allreduce_sum(xb2_.data(), nd);  // partial sums over this rank's heads
        add_rows(x, xb2_.data(), n, dim);

#pragma omp parallel for schedule(static) if (n >= kParallelRows)
        for (int i = 0; i < n; ++i)
            rmsnorm(xb_.data() + static_cast<size_t>(i) * dim, x + static_cast<size_t>(i) * dim, L.ffn_norm.data(), dim, c.rms_eps);
        xq_valid = false;
        {
            const WeightView* ws[] = {&L.w_gate, &L.w_up};
            float* ys[] = {hb_.data(), hb2_.data()};
            linear_many(ws, ys, xb_.data(), n, xq_, xq_valid);
        }
#pragma omp parallel for schedule(static) if (n >= kParallelRows)
        for (int i = 0; i < n; ++i)
            swiglu(hb_.data() + static_cast<size_t>(i) * d.hidden_dim, hb2_.data() + static_cast<size_t>(i) * d.hidden_dim, d.hidden_dim);
        bool hq_valid = false;
        linear(L.w_down, hb_.data(), n, xb2_.data(), hq_, hq_valid);
        if (tp) tp->allreduce_sum(xb2_.data(), nd);  // partial sums over this rank's FFN rows
        add_rows(x, xb2_.data(), n, dim);
    }
    if (x_out) {  // a pipeline stage before the last: hand the hidden states on
        std::memcpy(x_out, x, nd * sizeof(float));
        return;
    }

    if (!logits || n_logit_rows <= 0) return;
    // Only the rows whose logits are wanted go through the output head (gathered in order).
    for (int j = 0; j < n_logit_rows; ++j) {
        float* dst = x + static_cast<size_t>(j) * dim;
        const float* src = x + static_cast<size_t>(logit_rows[j]) * dim;
        if (dst != src) std::memmove(dst, src, static_cast<size_t>(dim) * sizeof(float));
        rmsnorm(dst, dst, model_.output_norm().data(), dim, c.rms_eps);
    }
    bool xq_valid = false;
    if (!tp) {
        linear(model_.output(), x, n_logit_rows, logits, xq_, xq_valid);
        return;
    }
    // This rank's vocabulary rows, then rank 0 gathers the full rows.
    linear(model_.output(), x, n_logit_rows, logits_local_.data(), xq_, xq_valid);
    tp->gather_columns(logits_local_.data(), n_logit_rows, c.vocab_size, logits);
}

}  // namespace pl
