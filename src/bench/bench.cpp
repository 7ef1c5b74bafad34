// SPDX-License-Identifier: MIT
#include "bench/bench.h"

#include "bench/report.h"

#include <omp.h>

#include <ctime>
#include <sstream>

namespace pl::bench {

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

Result<std::vector<int>> parse_int_list(const std::string& text, int lo, int hi, const char* what) {
    std::vector<int> out;
    for (const std::string& item : split_list(text)) {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (*end != '\0' || v < lo || v > hi) return err("{}: '{}' is not an integer in [{}, {}]", what, item, lo, hi);
        out.push_back(static_cast<int>(v));
    }
    if (out.empty()) return err("{}: empty list '{}'", what, text);
    return out;
}

Result<nlohmann::json> run_bench(BenchOptions o, const LogFn& log) {
    if (o.suite != "kernels" && o.suite != "model" && o.suite != "all")
        return err("--suite must be kernels, model or all (got '{}')", o.suite);
    const double t0 = now_s();
    const int cores = omp_get_num_procs();
    // Default: kernels at 1..cores threads, models at all cores only (as llama-bench: one count).
    const bool threads_given = !o.threads.empty();
    if (!threads_given)
        for (int t = 1; t <= cores; ++t) o.threads.push_back(t);
    const int saved_threads = omp_get_max_threads();
    o.probe.threads = o.threads;
    auto machine = probe_machine(o.probe, log);
    if (!machine) return machine.status();

    nlohmann::json rep;
    rep["schema"] = kSchemaName;
    rep["version"] = kSchemaVersion;
    char buf[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    rep["created"] = buf;
    rep["command"] = o.command;
    rep["build"] = {{"version", "0.1.0"}, {"compiler", __VERSION__},
#ifdef NDEBUG
                    {"type", "release"}
#else
                    {"type", "debug"}
#endif
    };
    nlohmann::json results = nlohmann::json::array();
    nlohmann::json skipped = nlohmann::json::array();
    nlohmann::json opts;
    opts["suite"] = o.suite;
    opts["threads"] = o.threads;
    opts["model_threads"] = threads_given ? o.threads : std::vector<int>{cores};

    if (o.suite != "model") {
        o.kernels.threads = o.threads;
        auto rows = run_kernel_suite(o.kernels, *machine, log);
        omp_set_num_threads(saved_threads);
        if (!rows) return rows.status();
        // The roofline is the best read bandwidth measured in this run for the thread count: the
        // probe's, or a re-measurement beside a kernel row when the machine was quieter then.
        for (auto& b : machine->bandwidth)
            for (const auto& r : *rows)
                if (r["threads"] == b.threads) b.best_gbps = std::max(b.best_gbps, r["bw_beside_gbps"].get<double>());
        for (auto& r : *rows) {
            const double roof = machine->bw_gbps(r["threads"].get<int>());
            r["roofline_gbps"] = roof;
            r["pct_roofline"] = roof > 0 ? 100.0 * r["gbps"].get<double>() / roof : 0.0;
            results.push_back(std::move(r));
        }
        std::vector<std::string> shapes;
        for (const auto& s : o.kernels.shapes) shapes.push_back(fmt::format("{}x{}", s.rows, s.cols));
        opts["kernels"] = {{"formats", o.kernels.formats}, {"shapes", shapes}, {"batches", o.kernels.batches},
                           {"square", o.kernels.square}, {"warmup", o.kernels.timing.warmup}, {"repeat", o.kernels.timing.repeat},
                           {"min_time_s", o.kernels.timing.min_time_s}};
    }
    if (o.suite != "kernels") {
        o.model.threads = threads_given ? o.threads : std::vector<int>{cores};
        auto rows = run_model_suite(o.model, *machine, log);
        omp_set_num_threads(saved_threads);
        if (!rows) return rows.status();
        for (auto& r : *rows) results.push_back(std::move(r));
        opts["model"] = {{"model", o.model.model_path}, {"shapes", o.model.model_path.empty() ? o.model.shapes : std::vector<std::string>{}},
                         {"type", o.model.type}, {"pp", o.model.n_prompt}, {"tg", o.model.n_gen},
                         {"batches", o.model.batches}, {"repeat", o.model.repeat}, {"warmup", o.model.warmup}};
    }
    rep["machine"] = machine_json(*machine);
    rep["options"] = opts;
    rep["results"] = results;
    rep["skipped"] = skipped;
    rep["wall_s"] = now_s() - t0;
    rep["loadavg_end"] = load_average();
    return rep;
}

}  // namespace pl::bench
