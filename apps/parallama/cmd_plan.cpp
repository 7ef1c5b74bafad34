// SPDX-License-Identifier: MIT
// parallama plan: predicted decode throughput, memory per device and communication share of a
// model shape on a tp x pp x dp layout (src/dist/plan.h), from flags, a preset, or a machine
// profile measured by `parallama bench` (--profile report.json); --validate compares the
// predictions with the measured tg rows of a bench report. See docs/parallelism.md.
#include "command.h"

#include "bench/bench.h"
#include "dist/plan.h"
#include "format/gguf.h"
#include "model/llama.h"
#include "model/synth.h"
#include "quant/formats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace pl::cli {
namespace {

using nlohmann::json;

struct PlanCliOptions {
    std::string shape = "llama-7b";
    std::string model;
    std::string type = "q3.5";
    std::string tp = "1", pp = "1", dp = "1", batch = "1";
    int micro_batches = 0;
    int ctx = 512;
    int prompt = 0;
    std::string preset;
    std::string profile;
    std::string validate;
    int threads = 0;  // with --profile: threads per rank (0: all cores / ranks)
    double mem_gbps = 0, efficiency = 0, int8_gops = 0, mem_gib = 0;
    int per_node = 0;
    double link_gbps = 0, link_us = -1, net_gbps = 0, net_us = -1;
    bool json_out = false;
};

Result<dist::PlanModel> model_of(const PlanCliOptions& o) {
    dist::PlanModel m;
    if (!o.model.empty()) {
        PL_ASSIGN_OR_RETURN(auto f, gguf::File::open(o.model));
        PL_ASSIGN_OR_RETURN(auto c, ModelConfig::from_gguf(*f));
        m = {std::filesystem::path(o.model).filename().string(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
             c.vocab_size, c.tied_embeddings, 0, "", split_units(*f, c)};
        const gguf::TensorInfo* t = f->find_tensor("blk.0.ffn_down.weight");
        if (!t) return err("{}: no blk.0.ffn_down.weight", o.model);
        m.bytes_per_weight = static_cast<double>(t->nbytes) / static_cast<double>(t->n_elements());
        m.type = type_name(t->type);
        return m;
    }
    const ModelShape* s = find_shape(o.shape);
    if (!s) return err("unknown shape '{}'", o.shape);
    const TypeTraits* tt = type_traits_by_name(o.type);
    if (!tt) return err("unknown weight type '{}'", o.type);
    m = {s->name, s->dim, s->hidden_dim, s->n_layers, s->n_heads, s->n_kv_heads, s->vocab_size, s->tied_embeddings,
         static_cast<double>(tt->block_bytes) / static_cast<double>(tt->block_elems), tt->name,
         SplitUnits{split_unit(static_cast<uint32_t>(tt->type)), split_unit(static_cast<uint32_t>(tt->type))}};
    return m;
}

// Named assumption sets (docs/parallelism.md states where each number comes from).
Result<dist::PlanMachine> preset(const std::string& name) {
    dist::PlanMachine hw;
    hw.name = name;
    if (name == "h100") {  // H100 SXM: 3.35 TB/s HBM3, 80 GB; NVLink 450 GB/s per direction in 8-GPU nodes; 400 Gb/s IB per GPU
        hw.mem_gbps = 3350;
        hw.efficiency = 0.7;
        hw.int8_gops = 1.0e6;  // ~2000 dense int8 TOPS peak; half as a sustained figure
        hw.mem_bytes = 80e9;
        hw.devices_per_node = 8;
        hw.intra = {450, 3e-6};
        hw.inter = {50, 5e-6};
    } else if (name == "pc-1gbe" || name == "pc-10gbe") {  // a desktop: dual-channel DDR5 ~60 GB/s, 64 GB
        hw.mem_gbps = 60;
        hw.efficiency = 0.65;
        hw.int8_gops = 1500;
        hw.mem_bytes = 64e9;
        hw.devices_per_node = 1;
        hw.intra = {60, 1e-6};
        hw.inter = name == "pc-1gbe" ? dist::PlanLink{0.117, 50e-6} : dist::PlanLink{1.17, 20e-6};  // TCP payload rates
    } else {
        return err("unknown preset '{}' (h100, pc-1gbe, pc-10gbe)", name);
    }
    return hw;
}

Result<json> read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) return err("cannot open {}", path);
    json j = json::parse(f, nullptr, false);
    if (j.is_discarded()) return err("{}: not valid JSON", path);
    return j;
}

// The link a bench report measured. Decode reduces one hidden state (LLaMA-7B: 16 KiB) at a time,
// where shared-memory MPI moves far less than its large-message rate, so the bandwidth is fitted to
// the 4096-float allreduce (the latency to the 1-float one) when the report has both.
dist::PlanLink link_of(const json& l) {
    const int n = l.value("ranks", 2);
    dist::PlanLink k{l.value("gbps", 0.0), l.value("latency_s", 1e-6)};
    const double t1 = l.value("allreduce_1_s", 0.0), t4k = l.value("allreduce_4096_s", 0.0);
    if (t4k > t1 && t1 > 0) k.gbps = 2.0 * (n - 1) / n * 4096 * 4 / (t4k - t1) * 1e-9;
    if (k.gbps <= 0) k.gbps = 5;
    return k;
}

// This machine from a bench report: bandwidth and int8 rate of `threads` per rank with `ranks`
// ranks sharing the node (each rank gets 1/ranks of the bandwidth measured at threads x ranks),
// the decode kernels' efficiency (median % of roofline of the single-process tg rows at batch 1)
// and the MPI link (the report's allreduce probe, run under mpirun).
// The ranks of a layout that stream weights at the same time: a tp group per busy stage per
// replica (with fewer micro-batches than stages, only that many stages work at once).
int busy_ranks(const dist::PlanLayout& l) {
    const int m = l.micro_batches > 0 ? l.micro_batches : std::min(l.batch, l.pp);
    return l.tp * std::min(m, l.pp) * l.dp;
}

Result<dist::PlanMachine> from_profile(const json& rep, int threads, int ranks, int busy) {
    dist::PlanMachine hw;
    hw.name = "profile";
    const json& m = rep.at("machine");
    const int cores = m.value("cores", 1);
    if (threads <= 0) threads = std::max(1, cores / ranks);
    busy = std::clamp(busy, 1, ranks);
    auto at = [&](const char* list, const char* key, int t) {
        double v = 0;
        for (const auto& x : m.at(list))
            if (x.value("threads", 0) == t) v = x.value(key, 0.0);
        return v;
    };
    // The busy ranks share what their threads measured together, and no more than all the cores
    // measured (ranks oversubscribing the node share the cores).
    const int total = std::min(threads * busy, cores);
    double bw = at("bandwidth", "best_gbps", total);
    if (bw > 0) {
        hw.mem_gbps = bw / busy;
    } else {
        hw.mem_gbps = at("bandwidth", "best_gbps", threads);
    }
    double i8 = at("peak", "int8_gops", total);
    hw.int8_gops = i8 > 0 ? i8 / busy : at("peak", "int8_gops", threads);
    if (hw.mem_gbps <= 0 || hw.int8_gops <= 0) return err("the report has no probe figures for {} threads", threads);
    std::vector<double> eff;
    for (const auto& r : rep.at("results"))
        if (r.value("suite", "") == "model" && r.value("test", "") == "tg" && r.value("batch", 1) == 1 && !r.contains("layout") &&
            r.value("pct_roofline", 0.0) > 0)
            eff.push_back(r["pct_roofline"].get<double>() / 100.0);
    std::sort(eff.begin(), eff.end());
    hw.efficiency = eff.empty() ? 0.65 : eff[eff.size() / 2];
    hw.mem_bytes = m.value("memory_bytes", 0.0);
    hw.devices_per_node = cores;
    hw.intra = {5, 1e-6};  // unmeasured: shared-memory MPI on this machine, roughly
    if (rep.contains("link")) hw.intra = link_of(rep["link"]);
    hw.inter = hw.intra;
    return hw;
}

void apply_flags(const PlanCliOptions& o, dist::PlanMachine& hw) {
    if (o.mem_gbps > 0) hw.mem_gbps = o.mem_gbps;
    if (o.efficiency > 0) hw.efficiency = o.efficiency;
    if (o.int8_gops > 0) hw.int8_gops = o.int8_gops;
    if (o.mem_gib > 0) hw.mem_bytes = o.mem_gib * (1ull << 30);
    if (o.per_node > 0) hw.devices_per_node = o.per_node;
    if (o.link_gbps > 0) hw.intra.gbps = o.link_gbps;
    if (o.link_us >= 0) hw.intra.latency_s = o.link_us * 1e-6;
    if (o.net_gbps > 0) hw.inter.gbps = o.net_gbps;
    if (o.net_us >= 0) hw.inter.latency_s = o.net_us * 1e-6;
}

json result_json(const dist::PlanModel& m, const dist::PlanLayout& l, const dist::PlanResult& r) {
    return {{"model", m.name}, {"type", m.type}, {"tp", l.tp}, {"pp", l.pp}, {"dp", l.dp}, {"devices", l.tp * l.pp * l.dp},
            {"batch", l.batch}, {"ctx", l.ctx}, {"tokens_per_s", r.tokens_per_s}, {"tokens_per_s_per_seq", r.tokens_per_s_seq},
            {"step_s", {{"mem", r.t_mem_s}, {"compute", r.t_compute_s}, {"tp_comm", r.t_tp_s}, {"p2p", r.t_p2p_s}, {"round", r.round_s}}},
            {"weight_bytes_per_rank", r.weight_bytes_rank}, {"tp_bytes_per_step", r.tp_bytes_rank}, {"comm_share", r.comm_share},
            {"bubble", r.bubble}, {"mem_weights_bytes", r.mem_weights_bytes}, {"mem_kv_bytes", r.mem_kv_bytes}, {"fits", r.fits},
            {"tp_within_node", r.tp_within_node}, {"prefill_tokens_per_s", r.prefill_tokens_per_s}, {"prefill_bubble", r.prefill_bubble},
            {"kv_heads_per_rank", r.kv_heads_rank}, {"kv_replicated", r.kv_replicated}};
}

void print_machine(const dist::PlanMachine& hw) {
    std::printf("machine: %s: %.1f GB/s x %.2f efficiency, %.0f int8 GOP/s, %.1f GiB per device, %d per node; "
                "node link %.3f GB/s %.1f us, network %.3f GB/s %.1f us\n",
                hw.name.c_str(), hw.mem_gbps, hw.efficiency, hw.int8_gops, hw.mem_bytes / (1ull << 30), hw.devices_per_node,
                hw.intra.gbps, hw.intra.latency_s * 1e6, hw.inter.gbps, hw.inter.latency_s * 1e6);
}

// --validate: each tg row of the report (single process or distributed) against the prediction
// for its layout, threads and batch on the machine the same report measured.
// The machine comes from --profile when given (a prediction from another run), else from the
// report itself (its own probe; its single-process tg rows then set the efficiency, which makes
// those rows' predictions circular). A profile without a link takes the validated report's.
int run_validate(const PlanCliOptions& o) {
    auto rep = read_json(o.validate);
    if (!rep) return fail("plan", rep.status());
    json prof_rep = *rep;
    if (!o.profile.empty()) {
        auto p = read_json(o.profile);
        if (!p) return fail("plan", p.status());
        prof_rep = *p;
        if (!prof_rep.contains("link") && rep->contains("link")) prof_rep["link"] = (*rep)["link"];
    }
    json out = json::array();
    if (!o.json_out)
        std::printf("| model | layout | threads/rank | batch | measured tok/s | predicted tok/s | error | measured comm share | predicted |\n"
                    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (const auto& row : (*rep)["results"]) {
        if (row.value("suite", "") != "model" || row.value("test", "") != "tg") continue;
        PlanCliOptions mo = o;
        mo.model = row.value("model_path", "");
        if (!std::filesystem::exists(mo.model)) continue;
        auto m = model_of(mo);
        if (!m) return fail("plan", m.status());
        m->n_layers = row.value("n_layers", m->n_layers);  // the row's figures are for the whole model
        dist::PlanLayout l;
        if (row.contains("layout")) {
            l.tp = row["layout"]["tp"];
            l.pp = row["layout"]["pp"];
            l.dp = row["layout"]["dp"];
        }
        l.batch = row.value("batch", 1);
        l.ctx = row.value("tokens", 16) / 2;
        const int t = row.value("threads", 1);
        auto hw = from_profile(prof_rep, t, l.tp * l.pp * l.dp, busy_ranks(l));
        if (!hw) return fail("plan", hw.status());
        apply_flags(o, *hw);
        auto r = dist::plan(*m, *hw, l);
        if (!r) return fail("plan", r.status());
        const double meas = row["tokens_per_s"]["median"].get<double>();
        double share = 0;
        if (row.contains("ranks"))
            for (const auto& k : row["ranks"]) share = std::max(share, k.value("comm_share", 0.0));
        const double e = r->tokens_per_s / meas - 1.0;
        const std::string lay = fmt::format("tp{} pp{} dp{}", l.tp, l.pp, l.dp);
        if (o.json_out) {
            json j = result_json(*m, l, *r);
            j["measured_tokens_per_s"] = meas;
            j["measured_comm_share"] = share;
            j["error"] = e;
            j["threads"] = t;
            out.push_back(j);
        } else {
            std::printf("| %s | %s | %d | %d | %.2f | %.2f | %+.0f%% | %.1f%% | %.1f%% |\n", row.value("model", "").c_str(), lay.c_str(), t,
                        l.batch, meas, r->tokens_per_s, 100 * e, 100 * share, 100 * r->comm_share);
        }
    }
    if (o.json_out) std::printf("%s\n", out.dump(2).c_str());
    return 0;
}

int run_plan(const PlanCliOptions& o) {
    if (!o.validate.empty()) return run_validate(o);
    auto m = model_of(o);
    if (!m) return fail("plan", m.status());
    auto tps = bench::parse_int_list(o.tp, 1, 1 << 16, "--tp");
    auto pps = bench::parse_int_list(o.pp, 1, 1 << 16, "--pp");
    auto dps = bench::parse_int_list(o.dp, 1, 1 << 16, "--dp");
    auto bs = bench::parse_int_list(o.batch, 1, 1 << 20, "--batch");
    for (const auto* r : {&tps, &pps, &dps, &bs})
        if (!*r) return fail("plan", r->status());
    json rows = json::array();
    std::string table, notes;
    std::vector<int> noted;  // tp degrees whose KV replication has a note
    dist::PlanMachine shown;
    for (int tp : *tps) for (int pp : *pps) for (int dp : *dps) for (int b : *bs) {
        dist::PlanLayout l{tp, pp, dp, b, o.micro_batches, o.ctx, o.prompt, 2};
        dist::PlanMachine hw;
        if (!o.profile.empty()) {
            auto rep = read_json(o.profile);
            if (!rep) return fail("plan", rep.status());
            auto p = from_profile(*rep, o.threads, tp * pp * dp, busy_ranks(l));
            if (!p) return fail("plan", p.status());
            hw = *p;
        } else if (!o.preset.empty()) {
            auto p = preset(o.preset);
            if (!p) return fail("plan", p.status());
            hw = *p;
        }
        apply_flags(o, hw);
        shown = hw;
        auto r = dist::plan(*m, hw, l);
        if (!r) return fail("plan", r.status().with_context(fmt::format("tp{} pp{} dp{}", tp, pp, dp)));
        rows.push_back(result_json(*m, l, *r));
        if (r->kv_replicated && std::find(noted.begin(), noted.end(), tp) == noted.end()) {
            noted.push_back(tp);
            notes += fmt::format("tp{}: too few whole KV groups ({} KV heads) for {} ranks: the {} query heads are split and each rank "
                                 "holds the KV heads they read ({:.2f} a rank on average, {} copies in all), counted in the weights "
                                 "and the KV cache\n",
                                 tp, m->n_kv_heads, tp, m->n_heads, r->kv_heads_rank, r->kv_head_copies);
        }
        table += fmt::format("| {} | {} | {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.1f}% | {:.1f}% | {:.2f} | {:.2f} | {} |\n",
                             tp * pp * dp, tp, pp, dp, b, r->tokens_per_s, r->tokens_per_s_seq, r->round_s * 1e3,
                             100 * r->comm_share, 100 * r->bubble, r->mem_weights_bytes / (1ull << 30), r->mem_kv_bytes / (1ull << 30),
                             r->fits ? "yes" : "NO");
    }
    if (o.json_out) {
        std::printf("%s\n", json{{"machine", {{"name", shown.name}, {"mem_gbps", shown.mem_gbps}, {"efficiency", shown.efficiency},
                                              {"int8_gops", shown.int8_gops}, {"mem_bytes", shown.mem_bytes},
                                              {"devices_per_node", shown.devices_per_node},
                                              {"intra", {{"gbps", shown.intra.gbps}, {"latency_s", shown.intra.latency_s}}},
                                              {"inter", {{"gbps", shown.inter.gbps}, {"latency_s", shown.inter.latency_s}}}}},
                                 {"plans", rows}}
                                    .dump(2)
                                    .c_str());
        return 0;
    }
    std::printf("model: %s %s (%d layers, dim %d, FFN %d, heads %d/%d), %.3f bytes/weight, ctx %d\n", m->name.c_str(), m->type.c_str(),
                m->n_layers, m->dim, m->hidden_dim, m->n_heads, m->n_kv_heads, m->bytes_per_weight, o.ctx);
    print_machine(shown);
    std::printf("\n| devices | tp | pp | dp | batch | tokens/s | per sequence | ms per round | comm share | bubble | weights GiB/dev | KV GiB/dev | fits |\n"
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n%s",
                table.c_str());
    if (!notes.empty()) std::printf("\n%s", notes.c_str());
    return 0;
}

const CommandRegistrar kPlan({"plan", "Predict distributed decode speed, memory and communication share (cost model)", 95,
                              [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<PlanCliOptions>();
    app.add_option("--shape", o->shape, "Model shape (synth names: llama-7b, llama-70b, ...)")->capture_default_str();
    app.add_option("-m,--model", o->model, "A GGUF file instead of --shape/--type")->check(CLI::ExistingFile);
    app.add_option("--type", o->type, "Weight type of --shape")->capture_default_str();
    app.add_option("--tp", o->tp, "Tensor-parallel degrees, e.g. 1,2,8")->capture_default_str();
    app.add_option("--pp", o->pp, "Pipeline stages, e.g. 1,4")->capture_default_str();
    app.add_option("--dp", o->dp, "Data-parallel replicas")->capture_default_str();
    app.add_option("--batch", o->batch, "Sequences per replica, e.g. 1,16")->capture_default_str();
    app.add_option("--micro-batches", o->micro_batches, "Micro-batches per replica (0 = min(batch, pp))")->check(CLI::Range(0, 1 << 16));
    app.add_option("--ctx", o->ctx, "Tokens in the KV cache (attention reads and KV memory)")->check(CLI::Range(1, 1 << 22))->capture_default_str();
    app.add_option("--prompt", o->prompt, "Prompt tokens for the prefill figure (JSON)")->check(CLI::Range(0, 1 << 22));
    app.add_option("--preset", o->preset, "Assumptions: h100 | pc-1gbe | pc-10gbe (docs/parallelism.md)");
    app.add_option("--profile", o->profile, "This machine from a `parallama bench` report.json (probe, kernel efficiency, MPI link)")
        ->check(CLI::ExistingFile);
    app.add_option("--validate", o->validate, "Predict every tg row of this bench report and print measured vs predicted")
        ->check(CLI::ExistingFile);
    app.add_option("-t,--threads", o->threads, "With --profile: threads per rank (0 = cores / ranks)")->check(CLI::Range(0, 4096));
    app.add_option("--mem-gbps", o->mem_gbps, "Device memory bandwidth, GB/s");
    app.add_option("--efficiency", o->efficiency, "Fraction of the bandwidth decode kernels reach");
    app.add_option("--int8-gops", o->int8_gops, "Device int8 rate, GOP/s");
    app.add_option("--mem-gib", o->mem_gib, "Device memory, GiB");
    app.add_option("--devices-per-node", o->per_node, "Devices sharing the fast link");
    app.add_option("--link-gbps", o->link_gbps, "Link within a node, GB/s");
    app.add_option("--link-latency-us", o->link_us, "Link latency within a node, microseconds");
    app.add_option("--net-gbps", o->net_gbps, "Network between nodes, GB/s");
    app.add_option("--net-latency-us", o->net_us, "Network latency, microseconds");
    app.add_flag("--json", o->json_out, "JSON instead of the table");
    return [o] { return run_plan(*o); };
}});

}  // namespace
}  // namespace pl::cli
