// SPDX-License-Identifier: MIT
#include "bench/report.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace pl::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string human_bytes(int64_t b) {
    if (b <= 0) return "?";
    if (b >= (1 << 20)) return fmt::format("{} MiB", b >> 20);
    return fmt::format("{} KiB", b >> 10);
}

Status write_text(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary);
    f << text;
    f.close();
    if (!f) return err("cannot write {}", p.string());
    return Status::ok();
}

bool have_gnuplot() {
    const char* path = std::getenv("PATH");
    if (!path) return false;
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
        const size_t end = std::min(p.find(':', start), p.size());
        const fs::path cand = fs::path(p.substr(start, end - start)) / "gnuplot";
        std::error_code ec;
        if (!cand.empty() && fs::exists(cand, ec)) return true;
        start = end + 1;
    }
    return false;
}

std::string shape_of(const json& r) { return fmt::format("{}x{}", r["rows"].get<int64_t>(), r["cols"].get<int64_t>()); }

// "% of peak" cell, e.g. "42% int8"; a dash for rows of reports before version 3.
std::string pct_peak_cell(const json& r) {
    return r.contains("pct_peak") ? fmt::format("{:.0f}% {}", r["pct_peak"].get<double>(), r.value("peak_kind", "")) : "–";
}

// Gnuplot's single-quoted string escape.
std::string gp_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

}  // namespace

void put_peak(json& row, double gops, const MachineInfo& m, int threads, bool int8) {
    const double peak = m.peak_gops(threads, int8);
    row["gops"] = gops;
    row["peak_kind"] = int8 ? "int8" : "fp32";
    row["peak_gops"] = peak;
    row["pct_peak"] = peak > 0 ? 100.0 * gops / peak : 0.0;
}

json stats_json(const Stats& s) {
    return {{"min", s.min}, {"median", s.median}, {"max", s.max}, {"mean", s.mean}, {"n", s.n}, {"spread", s.spread()}};
}

json machine_json(const MachineInfo& m) {
    json bw = json::array(), peak = json::array();
    for (const auto& b : m.bandwidth) bw.push_back({{"threads", b.threads}, {"best_gbps", b.best_gbps}, {"gbps", stats_json(b.gbps)}});
    for (const auto& p : m.peak)
        peak.push_back({{"threads", p.threads}, {"fp32_gflops", p.fp32_gflops}, {"int8_gops", p.int8_gops}});
    json j = {{"vendor", m.vendor},
            {"cpu", m.brand},
            {"features", m.features},
            {"isa", m.isa},
            {"int8_instruction", m.dot_instr},
            {"cores", m.cores},
            {"cache_bytes", {{"l1d", m.l1d_bytes}, {"l2", m.l2_bytes}, {"l3", m.l3_bytes}}},
            {"memory_bytes", m.mem_bytes},
            {"loadavg_start", m.loadavg_start},
            {"bandwidth_buffer_bytes", m.bw_buffer_bytes},
            {"bandwidth", bw},
            {"peak", peak}};
    if (m.others_busy_cores >= 0) j["others_busy_cores"] = m.others_busy_cores;
    if (!m.warnings.empty()) j["warnings"] = m.warnings;
    return j;
}

std::string report_markdown(const json& rep) {
    std::string md;
    const json& m = rep["machine"];
    md += fmt::format("## parallama bench ({})\n\n", rep.value("created", ""));
    md += fmt::format("`{}`\n\n", rep.value("command", ""));
    md += fmt::format("CPU: {} ({} cores, kernels: {}); L1d {} / L2 {} / L3 {}; memory {:.1f} GiB\n\n", m["cpu"].get<std::string>(),
                      m["cores"].get<int>(), m["isa"].get<std::string>(), human_bytes(m["cache_bytes"]["l1d"].get<int64_t>()),
                      human_bytes(m["cache_bytes"]["l2"].get<int64_t>()), human_bytes(m["cache_bytes"]["l3"].get<int64_t>()),
                      static_cast<double>(m["memory_bytes"].get<int64_t>()) / (1 << 30));
    md += fmt::format("Load average (1 min) at start / end: {:.2f} / {:.2f}; the report's wall time: {:.0f} s", m.value("loadavg_start", -1.0),
                      rep.value("loadavg_end", -1.0), rep.value("wall_s", 0.0));
    if (m.contains("others_busy_cores"))
        md += fmt::format("; other processes kept {:.1f} cores busy at the start", m["others_busy_cores"].get<double>());
    md += "\n\n";
    md += "| threads | read GB/s (best) | read GB/s (median) | fp32 GFLOP/s | int8 GOP/s |\n| ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& b : m["bandwidth"]) {
        double f = 0, i8 = 0;
        for (const auto& p : m["peak"])
            if (p["threads"] == b["threads"]) f = p["fp32_gflops"], i8 = p["int8_gops"];
        md += fmt::format("| {} | {:.1f} | {:.1f} | {:.0f} | {:.0f} |\n", b["threads"].get<int>(), b["best_gbps"].get<double>(),
                          b["gbps"]["median"].get<double>(), f, i8);
    }
    if (m.contains("warnings")) {
        md += "\n";
        for (const auto& w : m["warnings"]) md += fmt::format("> Warning: {}.\n\n", w.get<std::string>());
    }
    bool kernels = false, model = false;
    for (const auto& r : rep["results"]) (r["suite"] == "kernels" ? kernels : model) = true;
    if (kernels) {
        md += "\n| test | format | path | rows x cols | batch | threads | threading | time ms (median) | spread | GFLOP/s | % of peak | GB/s | % of bandwidth | % paired | GB/s read just before |\n";
        md += "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
        for (const auto& r : rep["results"]) {
            if (r["suite"] != "kernels") continue;
            const std::string paired = r.contains("pct_paired") ? fmt::format("{:.0f}%", r["pct_paired"].get<double>()) : "–";
            md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.3f} | {:.1f}% | {:.1f} | {} | {:.1f} | {:.0f}% | {} | {:.1f} |\n",
                              r["test"].get<std::string>(), r["format"].get<std::string>(), r["path"].get<std::string>(), shape_of(r),
                              r["batch"].get<int>(), r["threads"].get<int>(), r.value("threading", "rows"), r["time_s"]["median"].get<double>() * 1e3,
                              100.0 * r["time_s"]["spread"].get<double>(), r["gflops"].get<double>(), pct_peak_cell(r),
                              r["gbps"].get<double>(), r["pct_roofline"].get<double>(), paired, r.value("bw_beside_gbps", 0.0));
        }
    }
    if (model) {
        md += "\n| model | test | batch | threads | tokens/s (median) | min | max | spread | GB/s | % of bandwidth | GOP/s | % of peak | note |\n";
        md += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
        for (const auto& r : rep["results"]) {
            if (r["suite"] != "model") continue;
            const std::string gops = r.contains("gops") ? fmt::format("{:.0f}", r["gops"].get<double>()) : "–";
            md += fmt::format("| {} | {}{} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.1f}% | {:.1f} | {:.0f}% | {} | {} | {} |\n",
                              r["model"].get<std::string>(), r["test"].get<std::string>(), r["tokens"].get<int>(), r.value("batch", 1),
                              r["threads"].get<int>(), r["tokens_per_s"]["median"].get<double>(),
                              r["tokens_per_s"]["min"].get<double>(), r["tokens_per_s"]["max"].get<double>(),
                              100.0 * r["time_s"]["spread"].get<double>(), r["gbps"].get<double>(), r["pct_roofline"].get<double>(), gops,
                              pct_peak_cell(r), r.value("extrapolated", false) ? r.value("note", "") : "");
        }
    }
    for (const auto& s : rep.value("skipped", json::array())) md += fmt::format("\nskipped: {}\n", s.get<std::string>());
    return md;
}

Status write_report(const std::string& dir, const json& report) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return err("cannot create {}: {}", dir, ec.message());
    PL_TRY(write_text(fs::path(dir) / "report.json", report.dump(2) + "\n"));
    PL_TRY(write_text(fs::path(dir) / "report.md", report_markdown(report)));
    return Status::ok();
}

Result<std::vector<std::string>> draw_charts(const std::string& dir, const json& rep) {
    std::vector<std::string> pngs;
    std::vector<json> krows;
    for (const auto& r : rep["results"])
        if (r["suite"] == "kernels" && r["test"] == "gemv") krows.push_back(r);
    if (krows.empty()) return pngs;
    const fs::path cdir = fs::path(dir) / "charts";
    std::error_code ec;
    fs::create_directories(cdir, ec);
    if (ec) return err("cannot create {}: {}", cdir.string(), ec.message());
    const json& m = rep["machine"];
    std::vector<std::string> formats;
    std::set<int> threads;
    std::vector<std::string> shapes;
    for (const auto& r : krows) {
        const std::string f = r["format"];
        if (std::find(formats.begin(), formats.end(), f) == formats.end()) formats.push_back(f);
        if (std::find(shapes.begin(), shapes.end(), shape_of(r)) == shapes.end()) shapes.push_back(shape_of(r));
        threads.insert(r["threads"].get<int>());
    }
    const int tmax = *threads.rbegin();
    // Chart shape: the first of 8192x8192 / any 4096-wide / the first present.
    std::string focus = shapes.front();
    for (const auto& s : shapes)
        if (s == "8192x8192") focus = s;
    // reset: every script runs in the same gnuplot process, so no setting may leak into the next.
    const std::string head = "reset\nset terminal pngcairo noenhanced size 1100,650 font 'sans,11'\nset grid\nset key outside right top\n";
    std::string scripts;

    // 1. Thread scaling at the focus shape: GB/s per format, with the measured bandwidth.
    {
        std::string dat = "# threads bandwidth_gbps";
        for (const auto& f : formats) dat += " " + f;
        dat += "\n";
        for (int t : threads) {
            double bw = 0;
            for (const auto& b : m["bandwidth"])
                if (b["threads"] == t) bw = b["best_gbps"];
            dat += fmt::format("{} {:.3f}", t, bw);
            for (const auto& f : formats) {
                std::string v = "NaN";
                for (const auto& r : krows)
                    if (r["format"] == f && r["threads"] == t && shape_of(r) == focus) v = fmt::format("{:.3f}", r["gbps"].get<double>());
                dat += " " + v;
            }
            dat += "\n";
        }
        PL_TRY(write_text(cdir / "thread_scaling.dat", dat));
        std::string gp = head + fmt::format("set output {}\n", gp_quote((fs::path(dir) / "thread_scaling.png").string()));
        gp += fmt::format("set title {}\n", gp_quote(fmt::format("Decode GEMV {} : weight GB/s vs threads ({})", focus, m["cpu"].get<std::string>())));
        gp += "set xlabel 'threads'\nset ylabel 'GB/s of weights streamed'\nset xtics 1\nset yrange [0:*]\n";
        gp += fmt::format("set xrange [0.5:{}.5]\n", tmax);
        gp += fmt::format("plot {} using 1:2 with linespoints lw 3 dt 2 lc rgb 'black' pt 7 title 'memory read bandwidth (measured)'",
                          gp_quote((cdir / "thread_scaling.dat").string()));
        for (size_t i = 0; i < formats.size(); ++i)
            gp += fmt::format(", '' using 1:{} with linespoints lw 2 pt {} ps 1.5 title {}", i + 3, 5 + static_cast<int>(i), gp_quote(formats[i]));
        gp += "\n";
        PL_TRY(write_text(cdir / "thread_scaling.gp", gp));
        scripts += (cdir / "thread_scaling.gp").string() + " ";
        pngs.push_back((fs::path(dir) / "thread_scaling.png").string());
    }
    // 2. % of bandwidth per shape and format at the most threads (clustered bars).
    {
        std::string dat = "shape";
        for (const auto& f : formats) dat += " " + f;
        dat += "\n";
        for (const auto& s : shapes) {
            dat += s;
            for (const auto& f : formats) {
                std::string v = "NaN";
                for (const auto& r : krows)
                    if (r["format"] == f && r["threads"] == tmax && shape_of(r) == s) v = fmt::format("{:.2f}", r["pct_roofline"].get<double>());
                dat += " " + v;
            }
            dat += "\n";
        }
        PL_TRY(write_text(cdir / "bandwidth_fraction.dat", dat));
        std::string gp = head + fmt::format("set output {}\n", gp_quote((fs::path(dir) / "bandwidth_fraction.png").string()));
        gp += fmt::format("set title {}\n", gp_quote(fmt::format("Decode GEMV: % of measured read bandwidth ({} threads, {:.1f} GB/s)", tmax,
                                                                 [&] { double bw = 0; for (const auto& b : m["bandwidth"]) if (b["threads"] == tmax) bw = b["best_gbps"]; return bw; }())));
        gp += "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\nset boxwidth 0.9\n";
        gp += "set ylabel '% of measured bandwidth'\nset xlabel 'rows x cols'\nset yrange [0:*]\nset xtics rotate by -30\n";
        gp += "set arrow from graph 0, first 100 to graph 1, first 100 nohead dt 2 lw 2 lc rgb 'black'\n";
        gp += fmt::format("plot {} using 2:xtic(1) title columnhead", gp_quote((cdir / "bandwidth_fraction.dat").string()));
        for (size_t i = 1; i < formats.size(); ++i) gp += fmt::format(", '' using {} title columnhead", i + 2);
        gp += "\n";
        PL_TRY(write_text(cdir / "bandwidth_fraction.gp", gp));
        scripts += (cdir / "bandwidth_fraction.gp").string() + " ";
        pngs.push_back((fs::path(dir) / "bandwidth_fraction.png").string());
    }
    // 3. Roofline (log-log): attained GFLOP/s vs arithmetic intensity, ceilings from the probe.
    {
        double bw = 0, f32 = 0, i8 = 0;
        for (const auto& b : m["bandwidth"])
            if (b["threads"] == tmax) bw = b["best_gbps"];
        for (const auto& p : m["peak"])
            if (p["threads"] == tmax) f32 = p["fp32_gflops"], i8 = p["int8_gops"];
        std::string gp = head + fmt::format("set output {}\n", gp_quote((fs::path(dir) / "roofline.png").string()));
        gp += fmt::format("set title {}\n", gp_quote(fmt::format("Roofline, decode GEMV, {} threads (points: every shape)", tmax)));
        gp += "set logscale xy 2\nset xlabel 'arithmetic intensity (FLOP per weight byte)'\nset ylabel 'GFLOP/s (int8 formats: GOP/s)'\n";
        gp += "set xrange [0.25:64]\n";
        gp += fmt::format("set yrange [{}:{}]\n", std::max(0.5, bw * 0.25 * 0.25), std::max(i8, f32) * 2);
        gp += fmt::format("bw={:.3f}\nf32={:.3f}\ni8={:.3f}\n", bw, f32, i8);
        gp += "plot (x*bw < i8 ? x*bw : i8) with lines lw 3 lc rgb 'black' title sprintf('bandwidth %.1f GB/s, int8 peak %.0f GOP/s', bw, i8), \\\n";
        gp += "     (x*bw < f32 ? x*bw : f32) with lines lw 2 dt 2 lc rgb 'gray40' title sprintf('fp32 FMA peak %.0f GFLOP/s', f32)";
        for (size_t i = 0; i < formats.size(); ++i) {
            std::string dat = "# intensity gflops\n";
            for (const auto& r : krows)
                if (r["format"] == formats[i] && r["threads"] == tmax) {
                    const double flops = 2.0 * r["rows"].get<double>() * r["cols"].get<double>();
                    dat += fmt::format("{:.4f} {:.3f}\n", flops / r["weight_bytes"].get<double>(), r["gflops"].get<double>());
                }
            const fs::path dp = cdir / fmt::format("roofline_{}.dat", formats[i]);
            PL_TRY(write_text(dp, dat));
            gp += fmt::format(", \\\n     {} using 1:2 with points pt {} ps 1.6 title {}", gp_quote(dp.string()), 5 + static_cast<int>(i), gp_quote(formats[i]));
        }
        gp += "\n";
        PL_TRY(write_text(cdir / "roofline.gp", gp));
        scripts += (cdir / "roofline.gp").string() + " ";
        pngs.push_back((fs::path(dir) / "roofline.png").string());
    }
    // 4. Batch scaling when several batch sizes ran (B GEMVs today).
    std::set<int> batches;
    for (const auto& r : rep["results"])
        if (r["suite"] == "kernels" && r["test"] != "gemm_square") batches.insert(r["batch"].get<int>());
    if (batches.size() > 1) {
        std::string dat = "# batch";
        for (const auto& f : formats) dat += " " + f;
        dat += "\n";
        for (int b : batches) {
            dat += std::to_string(b);
            for (const auto& f : formats) {
                std::string v = "NaN";
                for (const auto& r : rep["results"])
                    if (r["suite"] == "kernels" && r["format"] == f && r["threads"] == tmax && r["batch"] == b && shape_of(r) == focus)
                        v = fmt::format("{:.3f}", r["gflops"].get<double>());
                dat += " " + v;
            }
            dat += "\n";
        }
        PL_TRY(write_text(cdir / "batch_scaling.dat", dat));
        std::string gp = head + fmt::format("set output {}\n", gp_quote((fs::path(dir) / "batch_scaling.png").string()));
        gp += fmt::format("set title {}\n", gp_quote(fmt::format("Batch scaling {} , {} threads (batch B = B GEMVs: no GEMM kernel yet)", focus, tmax)));
        gp += "set logscale x 2\nset xlabel 'batch (vectors)'\nset ylabel 'GFLOP/s'\nset yrange [0:*]\n";
        gp += fmt::format("plot {} using 1:2 with linespoints lw 2 pt 5 title {}", gp_quote((cdir / "batch_scaling.dat").string()), gp_quote(formats[0]));
        for (size_t i = 1; i < formats.size(); ++i)
            gp += fmt::format(", '' using 1:{} with linespoints lw 2 pt {} title {}", i + 2, 5 + static_cast<int>(i), gp_quote(formats[i]));
        gp += "\n";
        PL_TRY(write_text(cdir / "batch_scaling.gp", gp));
        scripts += (cdir / "batch_scaling.gp").string() + " ";
        pngs.push_back((fs::path(dir) / "batch_scaling.png").string());
    }
    if (!have_gnuplot()) return std::vector<std::string>{};
    const std::string cmd = "gnuplot " + scripts + " 2> " + (cdir / "gnuplot.log").string();
    if (std::system(cmd.c_str()) != 0) return err("gnuplot failed (see {})", (cdir / "gnuplot.log").string());
    return pngs;
}

}  // namespace pl::bench
