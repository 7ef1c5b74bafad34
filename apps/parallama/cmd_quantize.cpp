// SPDX-License-Identifier: MIT
// `parallama quantize IN.gguf OUT.gguf --type TYPE`: re-quantize a model's weight matrices
// (library: convert/quantize_model.h; docs/quantize.md).
//
// stdout: one line per tensor, then a summary:
//   [ 12/272] blk.1.attn_q.weight  q4_1 -> q4_0  [576, 576]  186624 bytes  fallback imatrix  nrmse=0.0712
//   quantized: 211 tensors, 134515584 weights, 75665664 bytes, 4.5000 bits per weight
//   file: 77451776 bytes (73.86 MiB), 4.5512 bits per weight overall
#include "command.h"
#include "common.h"
#include "progress.h"

#include "convert/quantize_model.h"
#include "quant/formats.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

namespace pl::cli {
namespace {

struct QuantizeArgs {
    convert::QuantizeOptions opts;
    bool quiet = false;
    int threads = 0;
};

std::string shape_str(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

int run_quantize(QuantizeArgs& a) {
    apply_threads(a.threads);
    std::unique_ptr<ProgressBar> bar;
    if (!a.quiet && !a.opts.dry_run) {
        bar = std::make_unique<ProgressBar>("quantize");
        a.opts.progress = [&bar](uint64_t done, uint64_t total) { bar->update(done, total); };
    } else if (!a.quiet && a.opts.stats) {
        bar = std::make_unique<ProgressBar>("measure");
        a.opts.progress = [&bar](uint64_t done, uint64_t total) { bar->update(done, total); };
    }
    auto rep = convert::quantize_model(a.opts);
    if (bar) bar->finish();
    if (!rep) return fail("quantize", rep.status());

    const size_t n = rep->tensors.size();
    size_t width = 0;
    for (const auto& t : rep->tensors) width = std::max(width, t.name.size());
    size_t n_quantized = 0;
    double nrmse_sum = 0, nrmse_max = -1;
    size_t n_measured = 0;
    std::string worst;
    for (size_t i = 0; i < n; ++i) {
        const auto& t = rep->tensors[i];
        std::string flags;
        if (t.fallback) flags += " fallback";
        if (t.importance) flags += " imatrix";
        if (t.copied) flags += " copied";
        if (!t.quantized) flags += " kept";
        std::string stat;
        if (t.nmse >= 0) stat = fmt::format("  nrmse={:.4f}", std::sqrt(t.nmse));
        std::printf("[%3zu/%zu] %-*s  %-5s -> %-5s  %-14s %11llu bytes %s%s\n", i + 1, n, static_cast<int>(width),
                    t.name.c_str(), std::string(type_name(t.src_type)).c_str(), std::string(type_name(t.dst_type)).c_str(),
                    shape_str(t.ne).c_str(), static_cast<unsigned long long>(t.bytes), flags.c_str(), stat.c_str());
        if (t.quantized) ++n_quantized;
        if (t.quantized && t.nmse >= 0) {
            const double e = std::sqrt(t.nmse);
            nrmse_sum += e;
            ++n_measured;
            if (e > nrmse_max) {
                nrmse_max = e;
                worst = t.name;
            }
        }
    }
    std::printf("quantized: %zu tensors, %llu weights, %llu bytes, %.4f bits per weight\n", n_quantized,
                static_cast<unsigned long long>(rep->quantized_elements), static_cast<unsigned long long>(rep->quantized_bytes),
                rep->bits_per_weight());
    const double file_bpw = rep->total_elements
                                ? 8.0 * static_cast<double>(rep->file_bytes) / static_cast<double>(rep->total_elements)
                                : 0.0;
    std::printf("file: %llu bytes (%.2f MiB), %.4f bits per weight overall%s\n",
                static_cast<unsigned long long>(rep->file_bytes), static_cast<double>(rep->file_bytes) / 1048576.0,
                file_bpw, a.opts.dry_run ? " (dry run: nothing written)" : "");
    if (n_measured)
        std::printf("nrmse: mean %.4f over %zu tensors, max %.4f (%s)\n", nrmse_sum / static_cast<double>(n_measured),
                    n_measured, nrmse_max, worst.c_str());
    if (!a.quiet && !a.opts.dry_run) std::fprintf(stderr, "wrote %s\n", a.opts.output.c_str());
    return 0;
}

const CommandRegistrar reg{{
    "quantize",
    "Re-quantize a GGUF model's weight matrices (q8_0, q4_0, q3_k, ...), optionally with an imatrix",
    65,
    [](CLI::App& app) -> RunFn {
        auto a = std::make_shared<QuantizeArgs>();
        app.add_option("input", a->opts.input, "Input .gguf (any readable weight types)")->required();
        app.add_option("output", a->opts.output, "Output .gguf (not needed with --dry-run)");
        app.add_option("--type", a->opts.type, "Type of the weight matrices: q8_0, q4_0, q5_0, q4_1, q5_1, q3_k, q4_k, q6_k, f16, bf16, f32")
            ->required();
        app.add_option("--tensor-type", a->opts.tensor_types,
                       "PATTERN=TYPE: type for matrices whose name matches PATTERN (regex searched in the name, or a "
                       "glob like '*.ffn_down.*'); repeatable, first match wins")
            ->take_all();
        app.add_option("--fallback-type", a->opts.fallback,
                       "Type for matrices whose row length the chosen type's block does not divide: auto (q3_k->q4_0, "
                       "q4_k->q5_0, q6_k->q8_0, ...; f16 if that does not divide either), none (error), or a type")
            ->capture_default_str();
        app.add_option("--imatrix", a->opts.imatrix, "Importance matrix GGUF from `parallama imatrix`")->check(CLI::ExistingFile);
        app.add_option("--self-calibrate", a->opts.self_calibrate_tokens,
                       "Without --imatrix: weight q3.5 tensors by activations of the model run on this many random tokens (0 = off)")
            ->check(CLI::Range(0, 1 << 16))
            ->capture_default_str();
        app.add_flag("--dry-run", a->opts.dry_run, "Print the per-tensor plan, the file size and bits per weight; write nothing");
        app.add_flag("--stats", a->opts.stats, "Measure each quantized tensor's normalised RMSE, sqrt(sum (w-q)^2 / sum w^2)");
        app.add_flag("-q,--quiet", a->quiet, "No progress bar");
        add_threads_option(app, a->threads);
        return [a] {
            if (!a->opts.dry_run && a->opts.output.empty())
                return fail("quantize", err("give an output file (or --dry-run)"));
            return run_quantize(*a);
        };
    },
}};

}  // namespace
}  // namespace pl::cli
