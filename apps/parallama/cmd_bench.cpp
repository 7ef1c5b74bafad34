// SPDX-License-Identifier: MIT
// parallama bench: machine probe + kernel suite + model suite -> report.json, report.md (also on
// stdout) and PNG charts; `parallama bench compare old.json new.json` flags regressions beyond the
// measured noise. See docs/benchmarks.md.
#include "command.h"
#include "parallel_options.h"

#include "bench/bench.h"
#include "bench/compare.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "dist/comm.h"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

#include "kernels/cpu/ops.h"
#include "model/llama.h"

namespace pl::cli {
namespace {

struct BenchCliOptions {
    std::string suite = "all";
    std::string formats;
    std::string threads;
    std::string batches = "1";
    std::string threadings = "tasks";
    int repeat = 0;
    int warmup = 1;
    double min_time = 0.05;
    std::string shapes;
    std::string model;
    std::string model_shapes;
    std::string type = "q3.5";
    int layers = 0;
    int pp = 16;
    int tg = 16;
    bool square = false;
    bool no_charts = false;
    int bw_mib = 1024;
    std::string mmap = "auto";
    std::string kv_type = "f16";  // like generate, chat and serve
    std::string out_dir;
    // compare
    std::string old_path, new_path;
    double threshold = 0.05;
    ParallelOptions parallel;
};

void log_line(const std::string& msg) {
    static const double t0 = bench::now_s();
    std::fprintf(stderr, "[bench %6.1fs] %s\n", bench::now_s() - t0, msg.c_str());
    std::fflush(stderr);
}

Result<nlohmann::json> read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) return err("cannot open {}", path);
    nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    if (j.is_discarded()) return err("{}: not valid JSON", path);
    return j;
}

// The command line as typed (from /proc/self/cmdline), recorded in the report.
std::string command_line() {
    std::ifstream f("/proc/self/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), out;
    for (char ch : all) out += ch == '\0' ? ' ' : ch;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

int run_compare(const BenchCliOptions& o) {
    auto a = read_json(o.old_path);
    if (!a) return fail("bench compare", a.status());
    auto b = read_json(o.new_path);
    if (!b) return fail("bench compare", b.status());
    auto c = bench::compare_reports(*a, *b, o.threshold);
    if (!c) return fail("bench compare", c.status());
    std::fputs(bench::compare_markdown(*c).c_str(), stdout);
    return c->regressed() ? 2 : 0;
}

int run_bench_cmd(const BenchCliOptions& o) {
    bench::BenchOptions b;
    b.suite = o.suite;
    b.command = command_line();
    if (!o.threads.empty()) {
        auto t = bench::parse_int_list(o.threads, 1, 1024, "--threads");
        if (!t) return fail("bench", t.status());
        b.threads = *t;
    }
    auto batches = bench::parse_int_list(o.batches, 1, 65536, "--batch");
    if (!batches) return fail("bench", batches.status());
    b.kernels.batches = *batches;
    b.kernels.threadings.clear();
    for (const std::string& f : bench::split_list(o.threadings)) {
        auto t = parse_threading(f);
        if (!t) return fail("bench", err("--threading: unknown strategy '{}' (rows, nested, tiled, tasks)", f));
        b.kernels.threadings.push_back(*t);
    }
    if (b.kernels.threadings.empty()) return fail("bench", err("--threading: no strategy given"));
    b.model.batches = *batches;
    if (!o.formats.empty()) b.kernels.formats = bench::split_list(o.formats);
    if (!o.shapes.empty()) {
        auto s = bench::parse_shapes(o.shapes);
        if (!s) return fail("bench", s.status().with_context("--shapes"));
        b.kernels.shapes = *s;
    }
    b.kernels.square = o.square;
    b.kernels.timing.repeat = o.repeat > 0 ? o.repeat : 5;
    b.kernels.timing.warmup = o.warmup;
    b.kernels.timing.min_time_s = o.min_time;
    b.model.repeat = o.repeat > 0 ? o.repeat : 3;
    b.model.warmup = o.warmup;
    b.model.model_path = o.model;
    if (!o.model_shapes.empty()) b.model.shapes = bench::split_list(o.model_shapes);
    b.model.type = o.type;
    b.model.layers = o.layers;
    b.model.n_prompt = o.pp;
    b.model.n_gen = o.tg;
    b.probe.buffer_bytes = static_cast<uint64_t>(o.bw_mib) << 20;
    if (auto mm = parse_mmap_mode(o.mmap)) set_default_mmap_mode(*mm);
    if (auto kv = parse_kv_type(o.kv_type)) set_default_kv_type(*kv);

    std::string dir = o.out_dir;
    if (dir.empty()) {
        char buf[32];
        const std::time_t now = std::time(nullptr);
        std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", std::localtime(&now));
        dir = std::string("bench-results/") + buf;
    }
    if (wants_distributed(o.parallel)) {
        if (Status s = dist::init_world(); !s) return fail("bench", s);
        b.distributed = true;
        b.layout = o.parallel.layout;
    }
    dist::Comm& w = dist::world();
    auto rep = bench::run_bench(b, w.rank() == 0 ? bench::LogFn(log_line) : bench::LogFn{});
    if (!rep) {
        // Under mpirun each failing rank says why; the others only exit.
        if (rep.status().message().empty()) return 1;
        return fail("bench", b.distributed ? rep.status().with_context(fmt::format("rank {}", w.rank())) : rep.status());
    }
    if (w.rank() != 0) return 0;
    if (Status s = bench::write_report(dir, *rep); !s) return fail("bench", s);
    std::fputs(bench::report_markdown(*rep).c_str(), stdout);
    std::fflush(stdout);
    log_line(fmt::format("wrote {}/report.json and {}/report.md ({:.0f} s in all)", dir, dir, (*rep)["wall_s"].get<double>()));
    if (!o.no_charts) {
        auto pngs = bench::draw_charts(dir, *rep);
        if (!pngs) return fail("bench", pngs.status());
        if (pngs->empty())
            log_line("charts: none drawn (gnuplot not installed, or no kernel rows); data and scripts are in " + dir + "/charts/");
        for (const auto& p : *pngs) log_line("chart: " + p);
    }
    return 0;
}

const CommandRegistrar kBench({"bench", "Benchmark kernels and models; JSON/markdown reports, charts, compare", 80, [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<BenchCliOptions>();
    app.add_option("--suite", o->suite, "kernels | model | all")->check(CLI::IsMember({"kernels", "model", "all"}))->capture_default_str();
    app.add_option("--formats", o->formats, "Kernel weight formats (default q3.5,q8_0,q4_0,q4_1,f16,f32)");
    app.add_option("-t,--threads", o->threads, "Thread counts, e.g. 1,2 (default 1..all cores)");
    app.add_option("--batch", o->batches, "Batch sizes; kernels: one product with B activation rows; model: B sequences decoded together (aggregate tokens/s)")
        ->capture_default_str();
    app.add_option("--threading", o->threadings, "Kernels: matmul strategies to compare, e.g. rows,nested,tiled,tasks")
        ->capture_default_str();
    app.add_option("--repeat", o->repeat, "Timed runs per row (default 5 for kernels, 3 for models)")->check(CLI::Range(1, 1000));
    app.add_option("--warmup", o->warmup, "Untimed warm-up runs per row")->check(CLI::Range(0, 100))->capture_default_str();
    app.add_option("--min-time", o->min_time, "Kernels: seconds per timed run (the op repeats until then)")
        ->check(CLI::Range(0.0, 60.0))->capture_default_str();
    app.add_option("--shapes", o->shapes, "Kernel shapes ROWSxCOLS,... (default: the LLaMA-7B/70B set)");
    app.add_flag("--square", o->square, "Also the square 8192x8192x8192 product (one GEMM of 8192 rows)");
    app.add_option("-m,--model", o->model, "Model suite: a GGUF file (instead of synthetic shapes)")->check(CLI::ExistingFile);
    app.add_option("--shape", o->model_shapes, "Model suite: synth shapes, e.g. llama-7b,llama-70b (default)");
    app.add_option("--type", o->type, "Model suite: weight type of synthetic models")->capture_default_str();
    app.add_option("--layers", o->layers, "Model suite: layers of synthetic models (0 = all, or 2 when too big for memory)")
        ->check(CLI::Range(0, 1000))->capture_default_str();
    app.add_option("--pp", o->pp, "Prompt tokens of the pp test")->check(CLI::Range(1, 1 << 16))->capture_default_str();
    app.add_option("--tg", o->tg, "Generated tokens of the tg test")->check(CLI::Range(1, 1 << 16))->capture_default_str();
    app.add_option("--mmap", o->mmap, "Model suite: weights in the file mapping (on), copied into huge pages (off) or auto")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->capture_default_str();
    app.add_option("--kv-type", o->kv_type, "Model suite: KV cache element type, f16 (as generate and serve use) | f32")
        ->check(CLI::IsMember({"f32", "f16"}))
        ->capture_default_str();
    app.add_option("--bw-mib", o->bw_mib, "Size of the bandwidth probe buffer (MiB)")->check(CLI::Range(16, 1 << 16))->capture_default_str();
    app.add_option("-o,--out", o->out_dir, "Report directory (default bench-results/<timestamp>/)");
    app.add_flag("--no-charts", o->no_charts, "Do not run gnuplot");
    add_parallel_options(app, o->parallel, "--stages");

    CLI::App* cmp = app.add_subcommand("compare", "Per-row speed ratios of two reports; flags regressions (rows or build-wide) beyond the noise measured on the pair (exit 2)");
    cmp->add_option("old", o->old_path, "Old report.json")->required()->check(CLI::ExistingFile);
    cmp->add_option("new", o->new_path, "New report.json")->required()->check(CLI::ExistingFile);
    cmp->add_option("--min-threshold", o->threshold, "Smallest slowdown that counts as a regression (the floor under the measured noise)")
        ->check(CLI::Range(0.0, 10.0))->capture_default_str();
    app.require_subcommand(0, 1);
    return [o, cmp] {
        if (cmp->parsed()) return run_compare(*o);
        return run_bench_cmd(*o);
    };
}});

}  // namespace
}  // namespace pl::cli
