// SPDX-License-Identifier: MIT
// parallama: one binary, many subcommands (see `parallama --help`).
#include "command.h"

#include "core/log.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace pl::cli {

std::vector<CommandDef>& command_registry() {
    static std::vector<CommandDef> registry;
    return registry;
}

int fail(std::string_view cmd, const Status& status) {
    std::fprintf(stderr, "parallama %.*s: error: %s\n", static_cast<int>(cmd.size()), cmd.data(),
                 status.message().c_str());
    return 1;
}

}  // namespace pl::cli

int main(int argc, char** argv) {
    using namespace pl::cli;
    CLI::App app{"parallama: LLaMA-family inference at ~3.5 bits per weight, from one core to clusters"};
    app.require_subcommand(1);
    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "Log progress and decisions to stderr (same as PARALLAMA_LOG=info)");

    auto defs = command_registry();
    std::sort(defs.begin(), defs.end(), [](const CommandDef& a, const CommandDef& b) { return a.order < b.order; });
    std::map<CLI::App*, RunFn> runs;
    for (const auto& def : defs) {
        CLI::App* sub = app.add_subcommand(def.name, def.help);
        runs[sub] = def.setup(*sub);
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (verbose && pl::log_level() > pl::LogLevel::Info) pl::set_log_level(pl::LogLevel::Info);
    for (auto& [sub, run] : runs) {
        if (sub->parsed()) return run();
    }
    return 1;
}
