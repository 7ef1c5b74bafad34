// SPDX-License-Identifier: MIT
#include "bench/model_suite.h"

#include "bench/report.h"
#include "kernels/cpu/kernels.h"
#include "model/llama.h"
#include "model/synth.h"
#include "quant/formats.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

namespace pl::bench {
namespace {

namespace fs = std::filesystem;

// Weight bytes of all matrices of one layer.
uint64_t layer_bytes(const Model& model) {
    uint64_t bytes = 0;
    for (const WeightView* w : model.layer(0).matrices()) bytes += w->nbytes();
    return bytes;
}

double macs_of(const WeightView& w) { return static_cast<double>(w.rows) * static_cast<double>(w.cols); }

// Multiply-adds of one layer's weight products per token.
double layer_macs(const Model& model) {
    double macs = 0;
    for (const WeightView* w : model.layer(0).matrices()) macs += macs_of(*w);
    return macs;
}

Result<ModelTarget> synth_target(const ModelOptions& o, const std::string& name, const MachineInfo& m, const LogFn& log) {
    const ModelShape* shape = find_shape(name);
    if (!shape) {
        std::string names;
        for (const auto& s : model_shapes()) names += std::string(names.empty() ? "" : ", ") + s.name;
        return err("unknown model shape '{}' (known: {})", name, names);
    }
    const TypeTraits* tt = type_traits_by_name(o.type);
    if (!tt || !tt->quantize_row) return err("cannot make a synthetic model of type '{}'", o.type);
    // Weight bytes of the whole model at this type, to decide whether it fits.
    const double bpw = static_cast<double>(tt->block_bytes) / static_cast<double>(tt->block_elems);
    const double hd = static_cast<double>(shape->dim) / shape->n_heads;
    const double per_layer = static_cast<double>(shape->dim) * (2.0 * shape->dim + 2.0 * hd * shape->n_kv_heads) +
                             3.0 * shape->dim * static_cast<double>(shape->hidden_dim);
    const double fixed = static_cast<double>(shape->vocab_size) * shape->dim * (shape->tied_embeddings ? 1 : 2);
    const double full_bytes = (per_layer * shape->n_layers + fixed) * bpw;
    int layers = o.layers;
    if (layers <= 0) layers = full_bytes > 0.5 * static_cast<double>(m.mem_bytes) ? o.layers_big : shape->n_layers;
    layers = std::min(layers, shape->n_layers);
    ModelTarget t;
    t.shape = name;
    t.full_layers = shape->n_layers;
    t.label = fmt::format("{} {} (synth{})", name, tt->name, layers < shape->n_layers ? fmt::format(", {} layers", layers) : "");
    const std::string dir = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return err("cannot create the model cache directory {}: {}", dir, ec.message());
    t.path = (fs::path(dir) / fmt::format("{}-{}-L{}.gguf", name, tt->name, layers)).string();
    if (!fs::exists(t.path)) {
        if (log) log(fmt::format("model: making {} ({} layers) in {} (once; cached)", t.label, layers, t.path));
        SynthOptions so;
        so.shape = name;
        so.out_path = t.path + ".tmp";
        so.type = tt->name;
        so.n_layers = layers;
        int last_pct = -10;
        const double t0 = now_s();
        Status s = synth_model(so, [&](uint64_t done, uint64_t total) {
            const int pct = total ? static_cast<int>(100 * done / total) : 100;
            if (log && pct >= last_pct + 10) {
                last_pct = pct;
                log(fmt::format("model: synth {} {}% ({:.0f} s)", name, pct, now_s() - t0));
            }
        });
        if (!s) {
            fs::remove(so.out_path, ec);
            return s.with_context(fmt::format("making {}", t.label));
        }
        fs::rename(so.out_path, t.path, ec);
        if (ec) return err("cannot rename {}: {}", so.out_path, ec.message());
    }
    return t;
}

}  // namespace

std::string default_cache_dir() {
    if (const char* env = std::getenv("PARALLAMA_BENCH_CACHE"); env && *env) return env;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec && exe.has_parent_path()) return (exe.parent_path().parent_path() / "bench-models").string();
    return "bench-models";
}

Result<std::vector<ModelTarget>> model_targets(const ModelOptions& o, const MachineInfo& m, const LogFn& log) {
    std::vector<ModelTarget> targets;
    if (!o.model_path.empty()) {
        targets.push_back({o.model_path, fs::path(o.model_path).filename().string(), "", 0});
    } else {
        for (const auto& name : o.shapes) {
            auto t = synth_target(o, name, m, log);
            if (!t) return t.status();
            targets.push_back(*t);
        }
    }
    return targets;
}

nlohmann::json model_row(const ModelRowFacts& f, const Stats& st, const MachineInfo& m) {
    const bool pp = f.test == "pp";
    nlohmann::json r;
    r["suite"] = "model";
    r["test"] = f.test;
    r["id"] = fmt::format("model/{}{}/{}/b{}/t{}{}", f.test, f.tokens, f.label, f.batch, f.threads, f.id_suffix);
    r["model"] = f.label;
    r["model_path"] = f.path;
    r["type"] = f.type;
    r["tokens"] = f.tokens;
    r["batch"] = f.batch;
    r["threads"] = f.threads;
    r["n_layers"] = f.full_layers;
    r["n_layers_measured"] = f.measured_layers;
    r["extrapolated"] = f.full_layers != f.measured_layers;
    if (f.full_layers != f.measured_layers)
        r["note"] = fmt::format("extrapolated from {} to {} layers by weight bytes (x{:.2f})", f.measured_layers, f.full_layers, f.scale);
    r["weight_bytes"] = static_cast<uint64_t>(f.full_wbytes);
    if (!f.weights.empty()) r["weights"] = f.weights;
    if (!f.kv_type.empty()) r["kv_type"] = f.kv_type;
    r["time_s"] = stats_json(st);  // seconds per token
    r["tokens_per_s"] = {{"min", 1.0 / st.max}, {"median", 1.0 / st.median}, {"max", 1.0 / st.min}};
    // tg: the weights are streamed once per step of B tokens; pp (as at batch 1): once per
    // token's worth, so its "bandwidth" exceeds 100 % when weights are reused.
    const double gbps = f.full_wbytes / (st.median * (pp ? 1 : f.batch)) * 1e-9;
    const double roof = m.bw_gbps(f.roofline_threads > 0 ? f.roofline_threads : f.threads);
    r["gbps"] = gbps;
    r["roofline_gbps"] = roof;
    r["pct_roofline"] = roof > 0 ? 100.0 * gbps / roof : 0.0;
    // The arithmetic side: every token (pp or tg, any batch) does all the weight products, so
    // 2 x MACs per token x tokens/s against the probe's peak for the kernels' arithmetic. This is
    // the limit of pp and of big batches, as the bandwidth is of batch-1 decode.
    if (f.full_macs > 0)
        put_peak(r, 2 * f.full_macs / st.median * 1e-9, m, f.roofline_threads > 0 ? f.roofline_threads : f.threads, f.int8);
    return r;
}

WeightBytes weight_bytes_of(const gguf::File& f, int n_layers) {
    WeightBytes w;
    auto bytes = [&](const std::string& name) -> double {
        const gguf::TensorInfo* t = f.find_tensor(name);
        return t ? static_cast<double>(t->nbytes) : 0.0;
    };
    auto macs = [&](const std::string& name) -> double {
        const gguf::TensorInfo* t = f.find_tensor(name);
        return t && !t->ne.empty() ? static_cast<double>(t->ne[0]) * static_cast<double>(t->n_rows()) : 0.0;
    };
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
        w.layer += bytes(fmt::format("blk.0.{}.weight", m));
        w.layer_macs += macs(fmt::format("blk.0.{}.weight", m));
    }
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    const double embd_row = embd && embd->n_rows() > 0 ? static_cast<double>(embd->nbytes) / static_cast<double>(embd->n_rows()) : 0;
    const std::string head = f.find_tensor("output.weight") ? "output.weight" : "token_embd.weight";  // tied: the embedding
    w.fixed = bytes(head) + embd_row;
    w.fixed_macs = macs(head);
    w.measured_layers = n_layers;
    return w;
}

Result<std::vector<nlohmann::json>> run_model_suite(const ModelOptions& o, const MachineInfo& m, const LogFn& log) {
    PL_ASSIGN_OR_RETURN(const std::vector<ModelTarget> targets, model_targets(o, m, log));
    const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());

    std::vector<nlohmann::json> rows;
    const size_t total = targets.size() * o.threads.size() * o.batches.size() * 2;
    size_t done = 0;
    const double t_start = now_s();
    for (const ModelTarget& tg : targets) {
        auto model = Model::load(tg.path);
        if (!model) return model.status().with_context(tg.path);
        const ModelConfig& cfg = (*model)->config();
        const int full_layers = tg.full_layers > 0 ? tg.full_layers : cfg.n_layers;
        const uint64_t wbytes = (*model)->weight_bytes();
        const uint64_t lbytes = layer_bytes(**model);
        const double fixed = static_cast<double>(wbytes) - static_cast<double>(lbytes) * cfg.n_layers;
        const double scale = (fixed + static_cast<double>(lbytes) * full_layers) / (fixed + static_cast<double>(lbytes) * cfg.n_layers);
        const bool extrapolated = full_layers != cfg.n_layers;
        const double full_wbytes = fixed + static_cast<double>(lbytes) * full_layers;
        const double full_macs = macs_of((*model)->output()) + layer_macs(**model) * full_layers;
        const bool int8 = cpu_kernels().dot_for((*model)->layer(0).wq.type) != nullptr;
        const int n_ctx = std::min(cfg.context_length > 0 ? cfg.context_length : 4096, std::max(64, o.n_prompt + o.n_gen + 8));
        if (o.n_prompt + 8 > n_ctx || o.n_gen + 8 > n_ctx)
            return err("{}: pp {} / tg {} do not fit the context {}", tg.label, o.n_prompt, o.n_gen, n_ctx);
        auto session = Session::create(**model, n_ctx, false, 0, max_batch);
        if (!session) return session.status();
        std::mt19937 rng(static_cast<uint32_t>(o.seed));
        std::uniform_int_distribution<int32_t> pick(0, cfg.vocab_size - 1);
        std::vector<int32_t> prompt(static_cast<size_t>(std::max(o.n_prompt, o.n_gen)));
        for (auto& id : prompt) id = pick(rng);
        std::vector<float> logits(static_cast<size_t>(cfg.vocab_size));
        if (log) log(fmt::format("model: {} loaded: {} layers{}, {:.2f} GiB of weights", tg.label, cfg.n_layers,
                                 extrapolated ? fmt::format(" (of {}, extrapolated)", full_layers) : "",
                                 static_cast<double>(wbytes) / (1 << 30)));

        std::vector<float> blogits(static_cast<size_t>(max_batch) * static_cast<size_t>(cfg.vocab_size));
        for (int t : o.threads) for (int B : o.batches) {
            omp_set_num_threads(t);
            for (const char* test : {"pp", "tg"}) {
                ++done;
                const bool pp = test[0] == 'p';
                const int n = pp ? o.n_prompt : o.n_gen;
                // Batch B > 1: B sequences together through Session::decode (continuous batching):
                // pp = all B prompts in one call, tg = one step of B tokens (one per sequence) per
                // generated position, every sequence's logits computed. Per-token time is the
                // step time divided by B (aggregate throughput).
                auto run_batch = [&]() -> Result<double> {
                    std::vector<BatchEntry> e;
                    const double t0 = now_s();
                    if (pp) {
                        for (int s = 0; s < B; ++s)
                            for (int j = 0; j < n; ++j)
                                e.push_back({s, j, prompt[static_cast<size_t>((j + s) % static_cast<int>(prompt.size()))], j + 1 == n});
                        PL_TRY((*session)->decode(e, blogits.data()));
                    } else {
                        for (int i = 0; i < n; ++i) {
                            e.clear();
                            for (int s = 0; s < B; ++s)
                                e.push_back({s, i, prompt[static_cast<size_t>((i + s) % static_cast<int>(prompt.size()))], true});
                            PL_TRY((*session)->decode(e, blogits.data()));
                        }
                    }
                    const double dt = now_s() - t0;
                    for (size_t v = 0; v < static_cast<size_t>(B) * static_cast<size_t>(cfg.vocab_size); ++v)
                        if (!std::isfinite(blogits[v])) return err("non-finite logit");
                    return dt / (static_cast<double>(n) * B);
                };
                // One run: from an empty context, P tokens in one eval call (pp) or G calls of one token (tg).
                auto run = [&](bool warm) -> Result<double> {
                    (*session)->reset();
                    const double t0 = now_s();
                    if (B > 1 && !warm) return run_batch();
                    if (warm) {  // warm-up: two tokens touch every weight (page cache, TLB)
                        for (int i = 0; i < std::min(n, 2); ++i)
                            PL_TRY((*session)->eval(std::span<const int32_t>(prompt.data() + i, 1), logits.data()));
                        return now_s() - t0;
                    }
                    if (pp) {
                        PL_TRY((*session)->eval(std::span<const int32_t>(prompt.data(), static_cast<size_t>(n)), logits.data()));
                    } else {
                        for (int i = 0; i < n; ++i)
                            PL_TRY((*session)->eval(std::span<const int32_t>(prompt.data() + i, 1), logits.data()));
                    }
                    const double dt = now_s() - t0;
                    for (float v : logits)
                        if (!std::isfinite(v)) return err("non-finite logit");
                    return dt / n;
                };
                const std::string what = fmt::format("{}{} {} b{} t{}", test, n, tg.label, B, t);
                for (int w = 0; w < o.warmup; ++w) {
                    auto r = run(true);
                    if (!r) return r.status().with_context(what);
                }
                std::vector<double> samples;
                for (int r = 0; r < std::max(1, o.repeat); ++r) {
                    auto s = run(false);
                    if (!s) return s.status().with_context(what);
                    samples.push_back(*s * scale);
                }
                auto st = summarize(samples, what.c_str());
                if (!st) return st.status();
                ModelRowFacts facts;
                facts.test = test;
                facts.tokens = n;
                facts.label = tg.label;
                facts.path = tg.path;
                facts.type = std::string(type_name(cfg.n_layers > 0 ? (*model)->layer(0).wq.type : 0));
                facts.batch = B;
                facts.threads = t;
                facts.full_layers = full_layers;
                facts.measured_layers = cfg.n_layers;
                facts.weights = (*model)->weights_copied() ? "huge-pages" : "mmap";
                facts.kv_type = kv_type_name((*session)->kv_type());
                facts.scale = scale;
                facts.full_wbytes = full_wbytes;
                facts.full_macs = full_macs;
                facts.int8 = int8;
                const nlohmann::json r = model_row(facts, *st, m);
                const double gbps = r["gbps"].get<double>(), roof = r["roofline_gbps"].get<double>();
                rows.push_back(r);
                const double el = now_s() - t_start;
                if (log)
                    log(fmt::format("model [{}/{}] {}: {:.2f} tokens/s{} ({:.0f}% of bandwidth); {:.0f} s elapsed, ~{:.0f} s left", done, total,
                                    what, 1.0 / st->median, extrapolated ? " extrapolated" : "", roof > 0 ? 100.0 * gbps / roof : 0.0,
                                    el, el / static_cast<double>(done) * static_cast<double>(total - done)));
            }
        }
    }
    return rows;
}

}  // namespace pl::bench
