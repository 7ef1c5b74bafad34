// SPDX-License-Identifier: MIT
#include "common.h"

#include "core/cpu_budget.h"
#include "kernels/cpu/ops.h"
#include "model/llama.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace pl::cli {

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n')) ++i;
        if (i >= text.size()) break;
        size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t' && text[j] != '\n') ++j;
        const std::string item = text.substr(i, j - i);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        if (errno || end != item.c_str() + item.size() || v < 0 || v > INT32_MAX)
            return err("'{}' is not a valid token id (item {} of the list)", item, ids.size() + 1);
        ids.push_back(static_cast<int32_t>(v));
        i = j;
    }
    return ids;
}

void add_sampling_options(CLI::App& app, SamplingParams& p) {
    app.add_option("--temp", p.temperature, "Temperature; 0 = greedy")->capture_default_str();
    app.add_option("--top-k", p.top_k, "Top-k sampling; 0 = off")->capture_default_str();
    app.add_option("--top-p", p.top_p, "Top-p (nucleus) sampling; 1 = off")->capture_default_str();
    app.add_option("--min-p", p.min_p, "Min-p sampling; 0 = off")->capture_default_str();
    app.add_option("--repeat-penalty", p.repeat_penalty, "Repetition penalty; 1 = off")->capture_default_str();
    app.add_option("--repeat-last-n", p.repeat_last_n, "Tokens the repetition penalty looks back over")->capture_default_str();
    app.add_option("--seed", p.seed, "Random seed (same seed, same output)")->capture_default_str();
}

namespace {
std::string g_threading = "tasks";
std::string g_kv_type;  // set to the command's default by add_threads_option; --kv-type overrides
std::string g_mmap = "auto";
}

void add_threads_option(CLI::App& app, int& threads, const char* kv_default) {
    g_kv_type = kv_default;
    app.add_option("-t,--threads", threads, "Threads (0 = all cores, fewer while other processes keep cores busy)")->check(CLI::Range(0, 4096))->capture_default_str();
    app.add_option("--threading", g_threading,
                   "How a matrix product is split over the threads: rows | nested | tiled | tasks (docs/performance.md)")
        ->check(CLI::IsMember({"rows", "nested", "tiled", "tasks"}))
        ->capture_default_str();
    app.add_option("--kv-type", g_kv_type, "KV cache element type: f16 (half the memory of f32) | f32")
        ->check(CLI::IsMember({"f32", "f16"}))
        ->capture_default_str();
    app.add_option("--mmap", g_mmap,
                   "Weights: on = used in the file mapping | off = copied into huge-page memory (faster decode) | "
                   "auto = off when the copy takes at most half the available memory")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->capture_default_str();
}

void apply_threads(int threads, bool adaptive) {
    const auto strategy = parse_threading(g_threading);
    if (threads > 0) {
        omp_set_num_threads(threads);
    } else {
        // The default: every core we may run on (affinity, OMP_NUM_THREADS), capped by a cgroup CPU
        // quota; in a single process also fewer while other processes keep cores busy
        // (core/cpu_budget.h). An explicit OMP_NUM_THREADS is a fixed count, like -t. `nested`
        // splits rows by the team's parity, so its team is not resized mid-run.
        int base = omp_get_max_threads();
        if (auto q = cgroup_cpu_limit()) base = std::min(base, *q);
        omp_set_num_threads(base);
        if (adaptive && !std::getenv("OMP_NUM_THREADS") && strategy != Threading::Nested) install_thread_governor(base);
    }
    if (strategy) set_matmul_threading(*strategy);
    if (auto k = parse_kv_type(g_kv_type)) set_default_kv_type(*k);
    if (auto mm = parse_mmap_mode(g_mmap)) set_default_mmap_mode(*mm);
}

}  // namespace pl::cli
