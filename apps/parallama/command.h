// SPDX-License-Identifier: MIT
// Subcommands register themselves: each cmd_<name>.cpp defines one static CommandRegistrar whose
// setup() adds its options to the CLI11 subcommand and returns the function to run when chosen.
#pragma once

#include "core/status.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace pl::cli {

using RunFn = std::function<int()>;

struct CommandDef {
    std::string name;
    std::string help;
    int order;  // position in --help
    std::function<RunFn(CLI::App&)> setup;
};

std::vector<CommandDef>& command_registry();

struct CommandRegistrar {
    explicit CommandRegistrar(CommandDef def) { command_registry().push_back(std::move(def)); }
};

// Prints "parallama <cmd>: error: <message>" to stderr and returns the exit code 1.
int fail(std::string_view cmd, const Status& status);

}  // namespace pl::cli
