// SPDX-License-Identifier: MIT
// `parallama generate`'s options, shared by the single-process path (cmd_generate.cpp) and the
// distributed one (generate_dist.cpp).
#pragma once

#include "parallel_options.h"
#include "sampling/sampler.h"

#include <string>

namespace pl::cli {

struct GenerateOptions {
    std::string model;
    std::string prompt;
    std::string prompt_ids;
    std::string prompts_file;
    int n_predict = 128;
    int n_ctx = 0;
    int threads = 0;
    bool print_ids = false;
    bool no_bos = false;
    bool ignore_eos = false;
    SamplingParams sampling;
    ParallelOptions parallel;
};

// The prompts of --prompts-file (one per line, blank lines skipped); an error names the file.
Result<std::vector<std::string>> read_prompts_file(const std::string& path);

// generate under mpirun: every rank runs it (docs/parallelism.md); world rank 0 prints.
int run_generate_dist(const GenerateOptions& o);

}  // namespace pl::cli
