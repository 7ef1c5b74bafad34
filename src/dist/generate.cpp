// SPDX-License-Identifier: MIT
#include "dist/generate.h"

#include "core/log.h"
#include "dist/tensor_parallel.h"
#include "model/llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <span>
#include <string>

namespace pl::dist {
namespace {

constexpr int kTagItem = 1;    // stage s -> s+1: header, entries, hidden states
constexpr int kTagLogits = 2;  // last stage -> replica root
constexpr int kTagResult = 3;  // replica root -> world rank 0: the replica's outputs

// A work item: n entries of micro-batch mb (n < 0: the end of the run).
struct ItemHeader {
    int32_t n = 0;
    int32_t mb = 0;
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Flattened int vectors: [count, len_0, ids_0..., len_1, ids_1...].
std::vector<int32_t> pack_lists(const std::vector<std::vector<int32_t>>& v) {
    std::vector<int32_t> out{static_cast<int32_t>(v.size())};
    for (const auto& x : v) {
        out.push_back(static_cast<int32_t>(x.size()));
        out.insert(out.end(), x.begin(), x.end());
    }
    return out;
}

std::vector<std::vector<int32_t>> unpack_lists(const int32_t* p) {
    std::vector<std::vector<int32_t>> v(static_cast<size_t>(*p++));
    for (auto& x : v) {
        const int32_t n = *p++;
        x.assign(p, p + n);
        p += n;
    }
    return v;
}

// One rank's part of a replica's schedule: runs work items through its stage.
class StageRunner {
public:
    StageRunner(Grid& g, Session& s, const ModelConfig& c) : g_(g), s_(s), dim_(c.dim), vocab_(c.vocab_size) {
        fault_ = is_fault_rank(g.at.world_rank);
    }

    // Runs `e` through this stage (x_in: the previous stage's hidden states, null on stage 0) and
    // passes the result on: hidden states to the next stage, logits to the root (kept in
    // logits() when the root is the last stage itself).
    void run(const ItemHeader& h, std::span<const BatchEntry> e, const float* x_in) {
        const Placement& at = g_.at;
        const size_t n = e.size();
        size_t n_logits = 0;
        for (const BatchEntry& x : e) n_logits += x.logits ? 1 : 0;
        std::vector<float>& out = at.last_stage() ? logits_ : hidden_;
        out.resize(at.last_stage() ? n_logits * static_cast<size_t>(vocab_) : n * static_cast<size_t>(dim_));
        const auto t0 = Clock::now();
        const double tp0 = g_.tp.stats().seconds;
        if (Status st = s_.decode_stage(e, x_in, out.data()); !st) fatal(st);
        compute_s_ += since(t0) - (g_.tp.stats().seconds - tp0);
        ++steps_;
        if (fault_) fault_exit(at.world_rank);  // fault injection for the tests: this rank dies mid-run
        if (!at.last_stage()) {
            send_item(h, e, hidden_.data());
        } else if (at.layout.pp > 1 && at.tp_rank == 0) {
            g_.pp.send(logits_.data(), logits_.size() * sizeof(float), 0, kTagLogits);
        }
    }
    // Stage s > 0 and tp peers of stage 0: run items until the end marker.
    void serve() {
        const Placement& at = g_.at;
        std::vector<BatchEntry> e;
        for (;;) {
            ItemHeader h;
            std::vector<uint8_t> msg;
            const float* x_in = nullptr;
            if (at.pp_rank == 0) {
                g_.tp.bcast(&h, sizeof h, 0);
                if (h.n >= 0) {
                    e.resize(static_cast<size_t>(h.n));
                    g_.tp.bcast(e.data(), e.size() * sizeof(BatchEntry), 0);
                }
            } else {
                msg = g_.pp.recv(at.pp_rank - 1, kTagItem);
                std::memcpy(&h, msg.data(), sizeof h);
                if (h.n >= 0) {
                    e.resize(static_cast<size_t>(h.n));
                    std::memcpy(e.data(), msg.data() + sizeof h, e.size() * sizeof(BatchEntry));
                    x_in = reinterpret_cast<const float*>(msg.data() + sizeof h + e.size() * sizeof(BatchEntry));
                }
            }
            if (h.n < 0) {
                stop();
                return;
            }
            run(h, e, x_in);
        }
    }
    // Passes the end marker on (the root calls it for its own stage).
    void stop() {
        const ItemHeader end{-1, 0};
        if (g_.at.replica_root() && g_.at.layout.tp > 1) {
            ItemHeader h = end;
            g_.tp.bcast(&h, sizeof h, 0);
        }
        if (!g_.at.last_stage()) send_item(end, {}, nullptr);
    }
    // The root's copy of the stage-0 item for its tp peers.
    void bcast_item(ItemHeader h, std::vector<BatchEntry>& e) {
        if (g_.at.layout.tp == 1) return;
        g_.tp.bcast(&h, sizeof h, 0);
        g_.tp.bcast(e.data(), e.size() * sizeof(BatchEntry), 0);
    }
    std::vector<float>& logits() { return logits_; }
    int steps() const { return steps_; }
    double compute_s() const { return compute_s_; }

private:
    void send_item(const ItemHeader& h, std::span<const BatchEntry> e, const float* x) {
        const size_t nx = h.n > 0 ? e.size() * static_cast<size_t>(dim_) : 0;
        std::vector<uint8_t> buf(sizeof h + e.size() * sizeof(BatchEntry) + nx * sizeof(float));
        std::memcpy(buf.data(), &h, sizeof h);
        if (!e.empty()) std::memcpy(buf.data() + sizeof h, e.data(), e.size() * sizeof(BatchEntry));
        if (nx && x) std::memcpy(buf.data() + sizeof h + e.size() * sizeof(BatchEntry), x, nx * sizeof(float));
        g_.pp.send(buf.data(), buf.size(), g_.at.pp_rank + 1, kTagItem);
    }

    Grid& g_;
    Session& s_;
    int dim_, vocab_;
    bool fault_ = false;
    std::vector<float> hidden_;  // (n, dim)
    std::vector<float> logits_;  // (rows with logits, vocab)
    int steps_ = 0;
    double compute_s_ = 0;
};

// The replica root: samples, and feeds the micro-batches round-robin into stage 0.
std::vector<std::vector<int32_t>> run_root(Grid& g, StageRunner& stage, const GenerateJob& job,
                                           const std::vector<std::vector<int32_t>>& prompts, int vocab, int n_mb) {
    const int n = static_cast<int>(prompts.size());
    std::vector<Sampler> samplers;
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
    std::vector<int> len(static_cast<size_t>(n));
    struct MicroBatch {
        std::vector<BatchEntry> entries;  // the next item
        std::vector<int> logit_seqs;      // sequences of the item in flight, in logits order
        std::vector<float> logits;        // its logits when the root is also the last stage
        bool pending = false;
    };
    std::vector<MicroBatch> mbs(static_cast<size_t>(n_mb));
    for (int i = 0; i < n; ++i) {
        samplers.emplace_back(job.sampling, vocab);
        const auto& p = prompts[static_cast<size_t>(i)];
        for (int32_t id : p) samplers.back().accept(id);
        auto& mb = mbs[static_cast<size_t>(i % n_mb)];
        for (size_t j = 0; j < p.size(); ++j) mb.entries.push_back({i, static_cast<int>(j), p[j], j + 1 == p.size()});
        len[static_cast<size_t>(i)] = static_cast<int>(p.size());
    }
    const bool remote_logits = g.at.layout.pp > 1;
    for (bool any = true; any;) {
        any = false;
        for (int m = 0; m < n_mb; ++m) {
            MicroBatch& mb = mbs[static_cast<size_t>(m)];
            if (mb.pending) {
                if (remote_logits) {
                    std::vector<uint8_t> msg = g.pp.recv(g.at.layout.pp - 1, kTagLogits);
                    mb.logits.resize(msg.size() / sizeof(float));
                    std::memcpy(mb.logits.data(), msg.data(), msg.size());
                }
                const float* rows = mb.logits.data();
                for (size_t j = 0; j < mb.logit_seqs.size(); ++j) {
                    const int i = mb.logit_seqs[j];
                    std::vector<float> row(rows + j * static_cast<size_t>(vocab), rows + (j + 1) * static_cast<size_t>(vocab));
                    const int32_t next = samplers[static_cast<size_t>(i)].sample(row);
                    samplers[static_cast<size_t>(i)].accept(next);
                    auto& o = out[static_cast<size_t>(i)];
                    o.push_back(next);
                    if ((!job.ignore_eos && job.is_eog && job.is_eog(next)) || static_cast<int>(o.size()) == job.n_predict) continue;
                    mb.entries.push_back({i, len[static_cast<size_t>(i)]++, next, true});
                }
                mb.pending = false;
            }
            if (mb.entries.empty()) continue;
            mb.logit_seqs.clear();
            for (const BatchEntry& e : mb.entries)
                if (e.logits) mb.logit_seqs.push_back(e.seq);
            const ItemHeader h{static_cast<int32_t>(mb.entries.size()), m};
            stage.bcast_item(h, mb.entries);
            stage.run(h, mb.entries, nullptr);
            if (!remote_logits) mb.logits = stage.logits();
            mb.entries.clear();
            mb.pending = true;
            any = true;
        }
    }
    stage.stop();
    return out;
}

}  // namespace

long proc_status_kib(const char* key) {
    std::ifstream f("/proc/self/status");
    const std::string k = std::string(key) + ":";
    for (std::string line; std::getline(f, line);)
        if (line.rfind(k, 0) == 0) return std::atol(line.c_str() + k.size());
    return 0;
}

Result<GenerateResult> generate(Grid& g, const Model& model, const GenerateJob& job, long rss_load_kib) {
    Comm& w = world();
    const Placement& at = g.at;
    const ModelConfig& c = model.config();
    const int D = at.layout.dp;

    // World rank 0 tokenized; every rank learns every prompt (the replicas' KV sizes depend on them).
    std::vector<int32_t> packed;
    if (at.world_rank == 0) packed = pack_lists(job.prompts);
    int32_t packed_n = static_cast<int32_t>(packed.size());
    w.bcast(&packed_n, sizeof packed_n, 0);
    packed.resize(static_cast<size_t>(packed_n));
    w.bcast(packed.data(), packed.size() * sizeof(int32_t), 0);
    const std::vector<std::vector<int32_t>> all = unpack_lists(packed.data());
    const bool same_prompt = all.size() == 1;  // every replica runs it (outputs compared)
    std::vector<std::vector<int32_t>> mine;
    std::vector<size_t> mine_index;
    for (size_t i = 0; i < all.size(); ++i)
        if (same_prompt || static_cast<int>(i % static_cast<size_t>(D)) == at.dp_rank) {
            mine.push_back(all[i]);
            mine_index.push_back(i);
        }

    GenerateResult res;
    std::vector<std::vector<int32_t>> outputs;
    RankReport rep;
    rep.world_rank = at.world_rank;
    rep.dp_rank = at.dp_rank;
    rep.pp_rank = at.pp_rank;
    rep.tp_rank = at.tp_rank;
    rep.layer_begin = model.dims().layer_begin;
    rep.layer_end = model.dims().layer_end;
    rep.rss_load_kib = rss_load_kib;
    CommStats tp0 = g.tp.stats(), pp0 = g.pp.stats();
    auto t0 = Clock::now();
    if (!mine.empty()) {
        size_t longest = 0;
        for (const auto& p : mine) longest = std::max(longest, p.size());
        const int n_ctx = job.n_ctx > 0 ? job.n_ctx : static_cast<int>(longest) + job.n_predict;
        if (static_cast<int64_t>(longest) + job.n_predict > n_ctx)
            return err("the longest prompt ({} tokens) + -n {} exceeds the context size {}", longest, job.n_predict, n_ctx);
        const int n_seq = static_cast<int>(mine.size());
        auto session = Session::create(model, n_ctx, false, 0, n_seq);
        if (!session) fatal(session.status());
        MpiTensorParallel tp(g.tp, at.layout.reduce, static_cast<size_t>((*session)->n_batch()) * static_cast<size_t>(c.dim));
        if (at.layout.tp > 1) (*session)->set_tensor_parallel(&tp);
        StageRunner stage(g, **session, c);
        const int n_mb = job.micro_batches > 0 ? std::min(job.micro_batches, n_seq) : std::min(n_seq, at.layout.pp);
        // The loop's clock starts when every rank of the replica has its session (wall_s: the
        // work items only, not the KV cache allocation of the slowest peer).
        g.replica.barrier();
        t0 = Clock::now();
        tp0 = g.tp.stats();
        pp0 = g.pp.stats();
        if (at.replica_root())
            outputs = run_root(g, stage, job, mine, c.vocab_size, n_mb);
        else
            stage.serve();
        g.pp.wait_sends();
        rep.steps = stage.steps();
        rep.compute_s = stage.compute_s();
    }
    rep.wall_s = since(t0);
    rep.tp_comm_s = g.tp.stats().seconds - tp0.seconds;
    rep.tp_bytes = g.tp.stats().bytes_sent - tp0.bytes_sent;
    rep.p2p_comm_s = g.pp.stats().seconds - pp0.seconds;
    rep.p2p_bytes = g.pp.stats().bytes_sent - pp0.bytes_sent;

    // Outputs of the other replicas to world rank 0.
    if (at.replica_root() && at.world_rank != 0) {
        const std::vector<int32_t> p = pack_lists(outputs);
        w.send(p.data(), p.size() * sizeof(int32_t), 0, kTagResult);
        w.wait_sends();
    }
    if (at.world_rank == 0) {
        res.outputs.resize(all.size());
        for (size_t j = 0; j < mine_index.size(); ++j) res.outputs[mine_index[j]] = outputs[j];
        for (int d = 1; d < D; ++d) {
            std::vector<uint8_t> msg = w.recv(at.world_rank_of(d, 0, 0), kTagResult);
            const auto theirs = unpack_lists(reinterpret_cast<const int32_t*>(msg.data()));
            for (size_t j = 0, i = static_cast<size_t>(d); j < theirs.size(); ++j, i += static_cast<size_t>(D)) {
                if (!same_prompt) {
                    res.outputs[i] = theirs[j];
                } else if (theirs[j] != res.outputs[0]) {
                    fatal(err("data-parallel replica {} generated other tokens than replica 0 for the same prompt", d));
                }
            }
        }
        for (const auto& o : res.outputs) res.tokens += static_cast<int>(o.size());
    }
    rep.rss_peak_kib = proc_status_kib("VmHWM");
    res.ranks.resize(at.world_rank == 0 ? static_cast<size_t>(at.world_size) : 1);
    w.gather(&rep, sizeof rep, res.ranks.data(), 0);
    res.wall_s = rep.wall_s;
    return res;
}

}  // namespace pl::dist
