// SPDX-License-Identifier: MIT
#include "serve/dist_serve.h"

#include "core/check.h"
#include "core/log.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <type_traits>

namespace pl {
namespace {

// Tags on the world communicator.
constexpr int kTagToReplica = 11;    // world rank 0 -> replica root: Request, Cancel, Stop (one tag: kept in order)
constexpr int kTagFromReplica = 12;  // replica root -> world rank 0: a Report and its events

// A replica root's Session call as its peers get it: broadcast to stage 0's tp peers (kTpOp),
// passed from stage to stage with the entries and hidden states (kTagStage).
enum class TpOp : int32_t { Decode, Free, Stop };
struct TpHeader {
    TpOp op = TpOp::Stop;
    int32_t arg = 0;  // Decode: entries; Free: the sequence
};
constexpr int kTagStage = 13;   // on the pp communicator: stage s -> s + 1
constexpr int kTagLogits = 14;  // on the pp communicator: the last stage's tp rank 0 -> the root

enum class ToReplica : int32_t { Request, Cancel, Stop };
struct Event {
    int64_t id = 0;
    int32_t token = -1;   // >= 0: a token; -1: the request is done
    int32_t reason = 0;   // done: FinishReason
    int32_t n_generated = 0;
};

// Byte strings of trivially copyable values and vectors of them.
class Writer {
public:
    template <class T>
    Writer& put(const T& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
        return *this;
    }
    template <class T>
    Writer& put_vec(const std::vector<T>& v) {
        put(static_cast<int32_t>(v.size()));
        for (const T& x : v) put(x);
        return *this;
    }
    const std::vector<uint8_t>& bytes() const { return bytes_; }
    std::vector<uint8_t>& bytes() { return bytes_; }

private:
    std::vector<uint8_t> bytes_;
};

class Reader {
public:
    explicit Reader(const std::vector<uint8_t>& b) : p_(b.data()), end_(b.data() + b.size()) {}
    template <class T>
    T get() {
        static_assert(std::is_trivially_copyable_v<T>);
        PL_CHECK(static_cast<size_t>(end_ - p_) >= sizeof(T), "truncated serve message ({} bytes left, {} wanted)", end_ - p_, sizeof(T));
        T v;
        std::memcpy(&v, p_, sizeof v);
        p_ += sizeof v;
        return v;
    }
    template <class T>
    std::vector<T> get_vec() {
        const int32_t n = get<int32_t>();
        PL_CHECK(n >= 0, "bad vector length {} in a serve message", n);
        std::vector<T> v(static_cast<size_t>(n));
        for (T& x : v) x = get<T>();
        return v;
    }

private:
    const uint8_t* p_;
    const uint8_t* end_;
};

static_assert(std::is_trivially_copyable_v<SamplingParams>, "SamplingParams travels as bytes");
static_assert(std::is_trivially_copyable_v<BatchEntry>, "BatchEntry travels as bytes");

void send_tp(dist::Comm& tp, TpHeader h) { tp.bcast_idle(&h, sizeof h, 0); }

// To the same tp rank of the next stage: the header, then for a Decode the entries and their
// hidden states (entries x dim floats).
void send_stage(dist::Grid& g, TpHeader h, std::span<const BatchEntry> e = {}, const float* x = nullptr, size_t nx = 0) {
    if (g.at.last_stage()) return;
    Writer out;
    out.put(h);
    for (const BatchEntry& b : e) out.put(b);
    auto& bytes = out.bytes();
    const auto* px = reinterpret_cast<const uint8_t*>(x);
    if (nx) bytes.insert(bytes.end(), px, px + nx * sizeof(float));
    g.pp.send(bytes.data(), bytes.size(), g.at.pp_rank + 1, kTagStage);
}

size_t logit_rows(std::span<const BatchEntry> e) {
    return static_cast<size_t>(std::count_if(e.begin(), e.end(), [](const BatchEntry& x) { return x.logits; }));
}

}  // namespace

// ---- the ranks of one replica ----------------------------------------------------------------------

ReplicaGroup::ReplicaGroup(dist::Grid& grid, Session& session) : g_(grid), s_(session) {}

Status ReplicaGroup::decode(std::span<const BatchEntry> entries, float* logits_out) {
    const int32_t n = static_cast<int32_t>(entries.size());
    if (g_.at.layout.tp > 1) {
        send_tp(g_.tp, {TpOp::Decode, n});
        g_.tp.bcast(const_cast<BatchEntry*>(entries.data()), entries.size() * sizeof(BatchEntry), 0);
    }
    if (g_.at.layout.pp == 1) return s_.decode(entries, logits_out);
    // The stage-0 tp peers fail alike (same entries, same cache) and pass nothing on either.
    const size_t dim = static_cast<size_t>(s_.config().dim);
    hidden_.resize(entries.size() * dim);
    PL_TRY(s_.decode_stage(entries, nullptr, hidden_.data()));
    send_stage(g_, {TpOp::Decode, n}, entries, hidden_.data(), hidden_.size());
    const dist::Comm::Message m = g_.pp.recv_idle(g_.at.layout.pp - 1, kTagLogits);
    const size_t want = logit_rows(entries) * static_cast<size_t>(s_.config().vocab_size) * sizeof(float);
    PL_CHECK(m.bytes.size() == want, "logits of {} bytes from the last stage, {} expected", m.bytes.size(), want);
    if (want) std::memcpy(logits_out, m.bytes.data(), want);
    return Status::ok();
}

void ReplicaGroup::seq_free(int seq) {
    if (g_.at.layout.tp > 1) send_tp(g_.tp, {TpOp::Free, seq});
    send_stage(g_, {TpOp::Free, seq});
    s_.seq_free(seq);
}

void ReplicaGroup::close() {
    if (g_.at.layout.tp > 1) send_tp(g_.tp, {TpOp::Stop, 0});
    send_stage(g_, {TpOp::Stop, 0});
    g_.pp.wait_sends();
}

void run_replica_peer(dist::Grid& g, Session& session) {
    const dist::Placement& at = g.at;
    const bool fault = dist::is_fault_rank(at.world_rank);
    const size_t dim = static_cast<size_t>(session.config().dim), vocab = static_cast<size_t>(session.config().vocab_size);
    std::vector<BatchEntry> entries;
    std::vector<float> out;  // (entries, dim) hidden states, or (rows with logits, vocab) on the last stage
    for (;;) {
        TpHeader h;
        dist::Comm::Message msg;
        const float* x_in = nullptr;
        if (at.pp_rank == 0) {  // a tp peer of the root
            g.tp.bcast_idle(&h, sizeof h, 0);
            if (h.op == TpOp::Decode) {
                entries.resize(static_cast<size_t>(h.arg));
                g.tp.bcast(entries.data(), entries.size() * sizeof(BatchEntry), 0);
            }
        } else {
            msg = g.pp.recv_idle(at.pp_rank - 1, kTagStage);
            Reader in(msg.bytes);
            h = in.get<TpHeader>();
            if (h.op == TpOp::Decode) {
                entries.resize(static_cast<size_t>(h.arg));
                for (BatchEntry& e : entries) e = in.get<BatchEntry>();
                const size_t at_x = sizeof h + entries.size() * sizeof(BatchEntry);
                PL_CHECK(msg.bytes.size() == at_x + entries.size() * dim * sizeof(float), "stage message of {} bytes for {} entries",
                         msg.bytes.size(), entries.size());
                x_in = reinterpret_cast<const float*>(msg.bytes.data() + at_x);
            }
        }
        switch (h.op) {
            case TpOp::Stop:
                send_stage(g, h);
                g.pp.wait_sends();
                return;
            case TpOp::Free:
                session.seq_free(h.arg);
                send_stage(g, h);
                break;
            case TpOp::Decode: {
                const size_t rows = logit_rows(entries);
                out.resize(at.last_stage() ? std::max<size_t>(1, rows) * vocab : entries.size() * dim);
                if (Status st = session.decode_stage(entries, x_in, out.data()); !st) {
                    // On stage 0 the root failed alike and reports it; a later stage cannot fail
                    // where stage 0 did not (the same entries, the same cache): a bug, end the job.
                    if (at.pp_rank > 0) dist::fatal(st);
                    PL_LOG_DEBUG("serve: replica peer: step refused: {}", st.message());
                    break;
                }
                if (fault) dist::fault_exit(at.world_rank);
                if (!at.last_stage())
                    send_stage(g, h, entries, out.data(), entries.size() * dim);
                else if (at.tp_rank == 0 && at.layout.pp > 1)
                    g.pp.send(out.data(), rows * vocab * sizeof(float), 0, kTagLogits);
                break;
            }
        }
    }
}

// ---- data-parallel replicas: the roots other than world rank 0 -----------------------------------

void run_replica_root(dist::Comm& world, LocalBackend& replica) {
    const int world_rank = world.rank();
    const bool fault = dist::is_fault_rank(world_rank);
    std::unordered_map<int64_t, int64_t> ids;  // world rank 0's request id -> this Scheduler's
    std::vector<Event> events;                 // of the step being run, for the next report
    bool stop = false;
    while (!stop) {
        // Messages from world rank 0: when idle, wait (napping) for one; take all that came.
        std::optional<dist::Comm::Message> m;
        if (!replica.busy()) m = world.recv_idle(0, kTagToReplica);
        for (; m || (m = world.try_recv(0, kTagToReplica)); m.reset()) {
            Reader in(m->bytes);
            const auto kind = in.get<ToReplica>();
            if (kind == ToReplica::Stop) {
                stop = true;
                break;
            }
            const auto id = in.get<int64_t>();
            if (kind == ToReplica::Cancel) {
                if (auto it = ids.find(id); it != ids.end()) replica.cancel(it->second);
                continue;
            }
            SchedRequest r;
            r.max_tokens = in.get<int32_t>();
            r.sampling = in.get<SamplingParams>();
            r.prompt = in.get_vec<int32_t>();
            r.stop_tokens = in.get_vec<int32_t>();
            r.on_token = [&events, id](int32_t tok) {
                events.push_back({id, tok, 0, 0});
                return true;
            };
            r.on_done = [&events, &ids, id](FinishReason why, int n) {
                events.push_back({id, -1, static_cast<int32_t>(why), n});
                ids.erase(id);
            };
            auto sid = replica.submit(std::move(r));
            if (!sid) {  // world rank 0 checked it against an identical scheduler: cannot happen
                PL_LOG_ERROR("serve: replica root: request {} refused: {}", id, sid.error_message());
                events.push_back({id, -1, static_cast<int32_t>(FinishReason::Error), 0});
                continue;
            }
            ids[id] = *sid;
        }
        if (stop) break;
        ReplicaDispatcher::Report rep;
        auto r = replica.step([&rep](int batch, double s) {
            rep.batch = batch;
            rep.step_s = s;
        });
        if (!r) PL_LOG_ERROR("serve: forward step failed: {}", r.error_message());
        if (rep.batch > 0 && fault) dist::fault_exit(world_rank);
        if (rep.batch == 0 && events.empty()) continue;
        EngineStats s;
        replica.stats(s);
        rep.queued = s.queued;
        rep.running = s.running;
        rep.kv_blocks_used = s.kv_blocks_used;
        rep.steps = s.steps;
        rep.n_events = static_cast<int32_t>(events.size());
        Writer out;
        out.put(rep);
        for (const Event& e : events) out.put(e);
        world.send(out.bytes().data(), out.bytes().size(), 0, kTagFromReplica);
        events.clear();
    }
    // The last report says goodbye: world rank 0 receives (and drops) every report before it, so
    // no message is left unmatched, however large, when the ranks finalize.
    ReplicaDispatcher::Report bye;
    bye.batch = -1;
    world.send(&bye, sizeof bye, 0, kTagFromReplica);
    world.wait_sends();
    replica.close();  // its tp peers stop too
}

// ---- data-parallel replicas: world rank 0 --------------------------------------------------------

ReplicaDispatcher::ReplicaDispatcher(dist::Comm& world, std::unique_ptr<LocalBackend> local, std::vector<int> roots)
    : world_(world), local_(std::move(local)), roots_(std::move(roots)) {
    load_.resize(roots_.size() + 1);
    reports_.resize(roots_.size() + 1);
    EngineStats s;
    local_->stats(s);
    slots_ = s.n_seq;
}

int ReplicaDispatcher::pick(const std::vector<ReplicaLoad>& load, int last) {
    const int n = static_cast<int>(load.size());
    int best = -1;
    for (int k = 1; k <= n; ++k) {
        const int d = ((last < 0 ? -1 : last) + k) % n;
        if (best < 0 || load[static_cast<size_t>(d)].outstanding < load[static_cast<size_t>(best)].outstanding) best = d;
    }
    return best;
}

bool ReplicaDispatcher::queue_full(int max_queue) const {
    const int least = load_[static_cast<size_t>(pick(load_, last_pick_))].outstanding;
    return least - slots_ >= max_queue;
}

Result<int64_t> ReplicaDispatcher::submit(SchedRequest r) {
    PL_TRY(local_->scheduler().check(r));  // every replica's scheduler is made alike
    const int d = pick(load_, last_pick_);
    const int64_t id = next_id_++;
    Route route;
    route.replica = d;
    if (d == 0) {
        auto done = std::move(r.on_done);
        r.on_done = [this, id, done = std::move(done)](FinishReason why, int n) {
            --load_[0].outstanding;
            routes_.erase(id);
            if (done) done(why, n);
        };
        auto lid = local_->submit(std::move(r));
        if (!lid) return lid.status();
        route.local_id = *lid;
    } else {
        Writer out;
        out.put(ToReplica::Request).put(id).put(static_cast<int32_t>(r.max_tokens)).put(r.sampling);
        out.put_vec(r.prompt).put_vec(r.stop_tokens);
        world_.send(out.bytes().data(), out.bytes().size(), roots_[static_cast<size_t>(d - 1)], kTagToReplica);
        route.on_token = std::move(r.on_token);
        route.on_done = std::move(r.on_done);
    }
    last_pick_ = d;
    ++load_[static_cast<size_t>(d)].requests;
    ++load_[static_cast<size_t>(d)].outstanding;
    routes_.emplace(id, std::move(route));
    return id;
}

void ReplicaDispatcher::resolve_cancelled(int64_t id, Route& r) {
    if (r.resolved) return;
    r.resolved = true;
    Writer out;
    out.put(ToReplica::Cancel).put(id);
    world_.send(out.bytes().data(), out.bytes().size(), roots_[static_cast<size_t>(r.replica - 1)], kTagToReplica);
    // Ended here at once (the server may be stopping); the replica's own end only frees the route.
    if (r.on_done) r.on_done(FinishReason::Cancelled, r.tokens);
}

void ReplicaDispatcher::cancel(int64_t id) {
    auto it = routes_.find(id);
    if (it == routes_.end()) return;
    if (it->second.replica == 0)
        local_->cancel(it->second.local_id);
    else
        resolve_cancelled(id, it->second);
}

void ReplicaDispatcher::apply(const dist::Comm::Message& m, const std::function<void(int, double)>& on_step) {
    const auto root = std::find(roots_.begin(), roots_.end(), m.src);
    PL_CHECK(root != roots_.end(), "serve message from rank {}, which is no replica root", m.src);
    const size_t d = static_cast<size_t>(root - roots_.begin()) + 1;
    Reader in(m.bytes);
    const auto rep = in.get<Report>();
    reports_[d] = rep;
    for (int32_t k = 0; k < rep.n_events; ++k) {
        const auto e = in.get<Event>();
        auto it = routes_.find(e.id);
        if (it == routes_.end()) continue;
        Route& r = it->second;
        if (e.token >= 0) {
            if (r.resolved) continue;
            ++r.tokens;
            if (r.on_token && !r.on_token(e.token)) resolve_cancelled(e.id, r);  // the client is gone
            continue;
        }
        if (!r.resolved && r.on_done) r.on_done(static_cast<FinishReason>(e.reason), e.n_generated);
        --load_[d].outstanding;
        routes_.erase(it);
    }
    if (rep.batch > 0 && on_step) on_step(rep.batch, rep.step_s);
}

Result<bool> ReplicaDispatcher::step(const std::function<void(int, double)>& on_step) {
    bool did = false;
    while (auto m = world_.try_recv(dist::Comm::kAnySource, kTagFromReplica)) {
        apply(*m, on_step);
        did = true;
    }
    if (local_->busy()) {
        auto r = local_->step(on_step);
        if (!r) return r;
        did = did || *r;
    }
    return did;
}

bool ReplicaDispatcher::busy() const {
    if (local_->busy()) return true;
    for (size_t d = 1; d < load_.size(); ++d)
        if (load_[d].outstanding > 0) return true;
    return false;
}

void ReplicaDispatcher::stats(EngineStats& s) const {
    local_->stats(s);  // replica 0
    const int blocks = s.kv_blocks_total;
    for (size_t d = 1; d < load_.size(); ++d) {
        const Report& r = reports_[d];
        // A request the replica has not reported on yet counts as queued.
        const int running = std::min(r.running, load_[d].outstanding);
        s.running += running;
        s.queued += load_[d].outstanding - running;
        s.kv_blocks_used += r.kv_blocks_used;
        s.kv_blocks_total += blocks;
        s.steps += r.steps;
        s.n_seq += slots_;
    }
    s.replicas = load_;
}

void ReplicaDispatcher::close() {
    for (int root : roots_) {
        Writer out;
        out.put(ToReplica::Stop);
        world_.send(out.bytes().data(), out.bytes().size(), root, kTagToReplica);
    }
    for (size_t said_bye = 0; said_bye < roots_.size();) {
        const dist::Comm::Message m = world_.recv_idle(dist::Comm::kAnySource, kTagFromReplica);
        if (Reader(m.bytes).get<Report>().batch < 0) ++said_bye;
    }
    world_.wait_sends();
    local_->close();
}

}  // namespace pl
