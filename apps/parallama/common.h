// SPDX-License-Identifier: MIT
// Option helpers shared by the subcommands.
#pragma once

#include "core/status.h"
#include "sampling/sampler.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace pl::cli {

// "1 2 3" or "1,2,3" -> ids. Errors name the bad item.
Result<std::vector<int32_t>> parse_ids(const std::string& text);

// llama.cpp's sampling flag names: --temp --top-k --top-p --min-p --repeat-penalty
// --repeat-last-n --seed.
void add_sampling_options(CLI::App& app, SamplingParams& p);

// -t/--threads (OpenMP threads, 0 = all cores), --threading (matmul strategy), --kv-type (KV
// cache element type; kv_default unless given: f16 for running models, like llama.cpp; the
// quality tools pass f32 so that their figures measure the weights alone) and --mmap (where the
// weights live); apply_threads() applies all four.
void add_threads_option(CLI::App& app, int& threads, const char* kv_default = "f16");
// adaptive: -t 0 may shrink and regrow with other processes' load (core/cpu_budget.h); false under MPI.
void apply_threads(int threads, bool adaptive = true);

}  // namespace pl::cli
