// SPDX-License-Identifier: MIT
// Test helpers: locating ../shared/models (or $PARALLAMA_TEST_DATA), skipping (or failing when
// PARALLAMA_REQUIRE_TEST_DATA=1) when data is absent, running the CLI, temp dirs.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace pl::test {

// Directory holding stories260K/, vocab/ ...: $PARALLAMA_TEST_DATA, else <repo>/../shared/models.
std::string models_dir();
// Full path of a file under models_dir(); "" when it does not exist.
std::string model_file(const std::string& relative);
bool require_test_data();  // PARALLAMA_REQUIRE_TEST_DATA=1

// Path of the built CLI (build/bin/parallama).
std::string parallama_bin();
// A fresh empty directory under the build tree, unique per call.
std::string make_temp_dir(const std::string& tag);

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
