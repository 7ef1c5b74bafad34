// SPDX-License-Identifier: MIT
// Reports of `parallama bench`: the JSON document (schema in docs/bench-schema.json, version
// kSchemaVersion), the markdown tables printed on stdout (llama-bench style), and PNG charts drawn
// with gnuplot when it is on PATH (thread scaling, roofline, % of bandwidth per format, batch
// scaling when several batch sizes ran).
#pragma once

#include "bench/probe.h"
#include "bench/stats.h"
#include "core/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

inline constexpr const char* kSchemaName = "parallama-bench";
// Bump on any change to the report layout (and update docs/bench-schema.json). Version 2 added
// the distributed model rows' "layout" and "ranks", version 3 the rows' arithmetic-peak fields;
// version 1 and 2 reports remain valid and comparable.
inline constexpr int kSchemaVersion = 3;
// The oldest version `bench compare` reads (rows and ids are unchanged since).
inline constexpr int kSchemaOldestComparable = 1;

// {"min","median","max","mean","n","spread"}
nlohmann::json stats_json(const Stats& s);
nlohmann::json machine_json(const MachineInfo& m);
// A row's arithmetic side: "gops", "peak_kind" (int8 | fp32), "peak_gops" (the probe's peak for
// `threads`, 0 when not probed) and "pct_peak".
void put_peak(nlohmann::json& row, double gops, const MachineInfo& m, int threads, bool int8);

// Markdown: machine summary, then one table per suite present in the report.
std::string report_markdown(const nlohmann::json& report);

// Writes <dir>/report.json and <dir>/report.md (creating dir).
Status write_report(const std::string& dir, const nlohmann::json& report);

// Writes the chart data and gnuplot scripts to <dir>/charts/ and, when gnuplot is installed,
// renders <dir>/*.png. Returns the PNG paths written (empty without gnuplot or kernel rows).
Result<std::vector<std::string>> draw_charts(const std::string& dir, const nlohmann::json& report);

}  // namespace pl::bench
