// SPDX-License-Identifier: MIT
// `parallama bench` as a library call: probe the machine, run the kernel and/or model suites and
// return the report JSON (docs/bench-schema.json). The CLI (apps/parallama/cmd_bench.cpp) parses
// options into BenchOptions, prints the markdown, writes the files and draws the charts.
#pragma once

#include "bench/kernel_suite.h"
#include "bench/model_suite.h"
#include "bench/probe.h"
#include "core/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

struct BenchOptions {
    std::string suite = "all";   // kernels | model | all
    std::vector<int> threads;    // empty = 1..cores for kernels, all cores for models
    ProbeOptions probe;
    KernelOptions kernels;
    ModelOptions model;
    std::string command;         // the command line, recorded in the report
    // Under mpirun (dist::init_world() done): the model suite over this layout, measured on
    // world rank 0 (the others return an empty report); the kernel suite is not distributed.
    bool distributed = false;
    dist::Layout layout;
};

// "1,2,4" -> {1, 2, 4}; each in [lo, hi].
Result<std::vector<int>> parse_int_list(const std::string& text, int lo, int hi, const char* what);
// "a,b,,c" -> {"a", "b", "c"}: the items of a comma-separated option, empty ones skipped.
std::vector<std::string> split_list(const std::string& text);

// Runs everything `o` asks for. Progress lines go to `log`. Fails loudly (Status) on any
// non-finite measurement or bad option.
Result<nlohmann::json> run_bench(BenchOptions o, const LogFn& log);

}  // namespace pl::bench
