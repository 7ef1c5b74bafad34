// SPDX-License-Identifier: MIT
// Test helpers: locating ../shared/models (or $PARALLAMA_TEST_DATA), skipping (or failing when
// PARALLAMA_REQUIRE_TEST_DATA=1) when data is absent, running the CLI, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pl::test {

// Directory holding stories260K/, vocab/ ...: $PARALLAMA_TEST_DATA, else <repo>/../shared/models.
std::string models_dir();
// Full path of a file under models_dir(); "" when it does not exist.
std::string model_file(const std::string& relative);
bool require_test_data();  // PARALLAMA_REQUIRE_TEST_DATA=1

// The 256 ids llama2.c's run.c generates greedily from BOS with stories260K, parsed from the fenced
// block of stories260K/reference.md (empty when the file is missing).
std::vector<int32_t> stories_reference_ids();
// Whitespace-separated integers.
std::vector<int32_t> parse_ints(const std::string& text);

// The demo model fetched by scripts/fetch-model.sh (<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf);
// "" when absent.
std::string demo_model();

// Path of the built CLI (build/bin/parallama).
std::string parallama_bin();
// A fresh empty directory under the build tree, unique per call.
std::string make_temp_dir(const std::string& tag);

// The number after `label` in `out` (NaN when absent).
double number_after(const std::string& out, const std::string& label);

struct CmdResult {
    int rc = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};
// Runs `cmd` through /bin/sh, capturing stdout and stderr separately.
CmdResult run_cmd(const std::string& cmd);

std::string read_file(const std::string& path);

}  // namespace pl::test

// Skips the test (or fails it when PARALLAMA_REQUIRE_TEST_DATA=1) when `path` is empty.
#define PL_REQUIRE_DATA(path, what)                                                          \
    do {                                                                                     \
        if ((path).empty()) {                                                                \
            if (::pl::test::require_test_data()) FAIL() << "missing test data: " << (what);  \
            GTEST_SKIP() << "test data not found: " << (what)                                \
                         << " (set PARALLAMA_TEST_DATA or place ../shared/models)";          \
        }                                                                                    \
    } while (0)
