// SPDX-License-Identifier: MIT
// parallama serve under mpirun: a tp x pp x dp grid of ranks (src/serve/dist_serve.h). Every
// rank loads its shard; world rank 0 serves HTTP and drives the engine on its main thread (the
// one that initialised MPI, the only one making MPI calls); replica roots run a Scheduler; the
// other ranks of a replica replay their root's forward steps on their shard.
#include "command.h"
#include "common.h"
#include "serve.h"

#include "dist/comm.h"
#include "dist/generate.h"
#include "dist/tensor_parallel.h"
#include "serve/dist_serve.h"
#include "serve/metrics.h"

#include <unistd.h>

#include <climits>
#include <optional>
#include <thread>

namespace pl::cli {

int run_serve_dist(ServeCliOptions o) {
    const char* cmd = "serve";
    // Before MPI starts its own threads, so that none of them takes SIGINT/SIGTERM: on world rank
    // 0 they reach serve_http's signal thread (a drain, then Stop to every rank); the other ranks
    // never act on them (mpirun forwards its signals to every rank; they wait for rank 0's Stop).
    block_shutdown_signals();
    if (o.parallel_layout.micro_batches > 0) {
        if (dist::init_world() && dist::world().rank() == 0)
            fail(cmd, err("--micro-batches is not supported by serve (its steps go through the pipeline stages one at a time); "
                          "generate supports it"));
        return 1;
    }
    auto shard = load_rank_shard(cmd, o.model, o.parallel_layout, o.threads);
    if (!shard) return 1;
    dist::Comm& w = dist::world();
    const dist::Placement& at = shard->at;
    dist::Grid& grid = shard->grid;
    const Model& model = *shard->model;
    const ModelConfig& cfg = model.config();
    const int D = at.layout.dp;

    // World rank 0 alone tokenizes and formats chats.
    std::unique_ptr<Tokenizer> tok;
    Status st;
    if (w.rank() == 0) {
        auto t = Tokenizer::from_gguf(model.file());
        st = t.status().with_context("tokenizer");
        if (t) {
            tok = std::move(t).value();
            st = prepare_http(o, *tok, o.parallel * D);
        }
    }
    if (agree(cmd, st)) return 1;
    // Every rank of a replica makes the same KV pool (the whole model's shape decides it), each
    // holding its tp share of the heads.
    auto plan = plan_serve_session(o, cfg);
    if (agree(cmd, plan.status())) return 1;
    auto session = make_serve_session(o, model, *plan);
    if (agree(cmd, session.status())) return 1;
    dist::MpiTensorParallel tp_ops(grid.tp, at.layout.reduce, static_cast<size_t>((*session)->n_batch()) * static_cast<size_t>(cfg.dim));
    if (at.layout.tp > 1) (*session)->set_tensor_parallel(&tp_ops);

    if (!at.replica_root()) {
        run_replica_peer(grid, **session);
        return 0;
    }
    std::optional<ReplicaGroup> group;
    if (at.layout.tp > 1 || at.layout.pp > 1) group.emplace(grid, **session);
    SessionGroup* m = group ? &*group : nullptr;
    SchedulerOptions so = scheduler_options(o);
    SchedulerOptions replica_so = so;
    replica_so.max_queue = INT_MAX;  // with replicas, world rank 0 applies --max-queue
    if (w.rank() != 0) {
        LocalBackend replica(**session, replica_so, m);
        run_replica_root(w, replica);
        return 0;
    }

    const int replica_ranks = at.layout.tp * at.layout.pp;
    print_kv_line(**session, *plan, o.parallel,
                  replica_ranks > 1 ? fmt::format(" per replica, split over its {} ranks (heads over tp, layers over pp)", replica_ranks) : " per replica");
    std::fprintf(stderr,
                 "serve: %s on %d MPI ranks (%s): %d replica%s of %d tp rank%s x %d stage%s, HTTP on world rank 0 (pid %d: SIGTERM it to "
                 "drain and stop every rank), requests to the least loaded replica\n",
                 at.layout.str().c_str(), w.size(), dist::mpi_library(), D, D > 1 ? "s" : "", at.layout.tp, at.layout.tp > 1 ? "s" : "",
                 at.layout.pp, at.layout.pp > 1 ? "s" : "", static_cast<int>(getpid()));
    std::unique_ptr<EngineBackend> backend;
    if (D == 1) {
        backend = std::make_unique<LocalBackend>(**session, so, m);
    } else {
        std::vector<int> roots;
        for (int d = 1; d < D; ++d) roots.push_back(at.world_rank_of(d, 0, 0));
        backend = std::make_unique<ReplicaDispatcher>(w, std::make_unique<LocalBackend>(**session, replica_so, m), std::move(roots));
    }
    ServerMetrics metrics;
    Engine engine(std::move(backend), so, [&metrics](int batch, double secs) { metrics.step(batch, secs); }, false);
    // The HTTP server on its own thread; the engine (and with it every MPI call) on this one.
    Status http_status;
    std::thread http([&] {
        http_status = serve_http(o.http, model, *tok, engine, metrics, plan->n_ctx);
        engine.shutdown(std::chrono::milliseconds(0));
    });
    engine.run();  // until shutdown; its last act tells every other rank to stop
    http.join();
    if (!http_status) return fail(cmd, http_status);
    return 0;
}

}  // namespace pl::cli
