// SPDX-License-Identifier: MIT
#include "bench/bench.h"

#include "bench/report.h"
#include "dist/comm.h"

#include <omp.h>

#include <algorithm>
#include <ctime>
#include <vector>
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
    dist::Comm& world = dist::world();
    if (o.distributed && o.suite != "model")
        return err("--suite {} under mpirun: only the model suite runs distributed (--suite model)", o.suite);
    // Under mpirun world rank 0 probes the machine (for t x ranks threads too) while the others sleep.
    o.probe.threads = o.threads;
    if (o.distributed)
        for (int t : std::vector<int>(o.threads)) o.probe.threads.push_back(t * world.size());
    if (o.distributed && world.rank() == 0 && omp_get_num_procs() < o.probe.threads.back() && log)
        log(fmt::format("probe: rank 0 may use {} core(s), fewer than the {} threads of {} ranks (mpirun binds ranks to cores; "
                        "--bind-to none lets the probe measure the node)", omp_get_num_procs(), o.probe.threads.back(), world.size()));
    Result<MachineInfo> machine = MachineInfo{};
    if (world.rank() == 0) machine = probe_machine(o.probe, log);
    if (o.distributed) world.barrier_idle();
    if (!machine) return machine.status();
    // The MPI link between the ranks (for `parallama plan`): MPI_Allreduce of 1 float (latency),
    // of 4096 floats (one LLaMA-7B hidden state) and of 4 MiB (bandwidth), median call times,
    // fitted to the ring model t = 2 (N-1) latency + 2 (N-1)/N bytes / bandwidth.
    nlohmann::json link;
    if (o.distributed && world.size() > 1) {
        // The median of single calls: on a shared machine a rank that loses its core for a
        // scheduler slice makes a few calls milliseconds long, which a mean would carry.
        auto time_allreduce = [&](size_t n, int reps) {
            std::vector<float> v(n, 1.0f);
            std::vector<double> t(static_cast<size_t>(reps));
            world.barrier();
            for (auto& x : t) {
                const double s0 = now_s();
                world.allreduce_sum(v.data(), n);
                x = now_s() - s0;
            }
            std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
            return t[static_cast<size_t>(reps / 2)];
        };
        time_allreduce(4096, 20);  // warm-up (connections, buffers)
        const double t1 = time_allreduce(1, 500), t_dim = time_allreduce(4096, 200), t_big = time_allreduce(1 << 20, 21);
        const int n = world.size();
        const double ring = 2.0 * (n - 1) / n * (1 << 20) * sizeof(float);
        link = {{"ranks", n},
                {"allreduce_1_s", t1},
                {"allreduce_4096_s", t_dim},
                {"allreduce_4mib_s", t_big},
                {"latency_s", t1 / (2.0 * (n - 1))},
                {"gbps", t_big > t1 ? ring / (t_big - t1) * 1e-9 : 0.0}};
        if (log)
            log(fmt::format("link: allreduce of 1 float {:.1f} us, 4096 floats {:.1f} us, 4 MiB {:.2f} ms ({:.2f} GB/s ring)", t1 * 1e6,
                            t_dim * 1e6, t_big * 1e3, link["gbps"].get<double>()));
    }

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
        o.model.threads = threads_given ? o.threads : std::vector<int>{std::max(1, cores / std::max(1, world.size()))};
        auto rows = o.distributed ? run_model_suite_dist(o.model, o.layout, *machine, log) : run_model_suite(o.model, *machine, log);
        omp_set_num_threads(saved_threads);
        if (!rows) return rows.status();
        for (auto& r : *rows) results.push_back(std::move(r));
        opts["model_threads"] = o.model.threads;
        opts["model"] = {{"model", o.model.model_path}, {"shapes", o.model.model_path.empty() ? o.model.shapes : std::vector<std::string>{}},
                         {"type", o.model.type}, {"pp", o.model.n_prompt}, {"tg", o.model.n_gen},
                         {"batches", o.model.batches}, {"repeat", o.model.repeat}, {"warmup", o.model.warmup}};
        if (o.distributed)
            opts["layout"] = {{"tp", o.layout.tp}, {"pp", o.layout.pp}, {"dp", o.layout.dp}, {"ranks", world.size()},
                              {"tp_reduce", dist::tp_reduce_name(o.layout.reduce)}};
    }
    rep["machine"] = machine_json(*machine);
    if (!link.is_null()) rep["link"] = link;
    rep["options"] = opts;
    rep["results"] = results;
    rep["skipped"] = skipped;
    rep["wall_s"] = now_s() - t0;
    rep["loadavg_end"] = load_average();
    return rep;
}

}  // namespace pl::bench
