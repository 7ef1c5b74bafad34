// SPDX-License-Identifier: MIT
// A small communicator layer over MPI (Open MPI), the only code that includes <mpi.h>
// (comm_mpi.cpp; comm_serial.cpp is the single-process stand-in of a build without MPI).
//
// MPI is initialised only for a process started by mpirun (init_world()); a plain `parallama`
// run never touches it and sees a world of one rank. Threading: MPI_THREAD_FUNNELED, every call
// from the thread that runs the forward pass, never inside an OpenMP region. Errors on MPI calls
// are fatal (MPI_ERRORS_ARE_FATAL): a lost peer ends the whole job through mpirun instead of
// leaving the others waiting.
//
// Every call counts what it sends and the wall time spent inside it (stats()): the figures of
// the communication report (docs/parallelism.md).
#pragma once

#include "core/status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace pl::dist {

struct CommStats {
    uint64_t bytes_sent = 0;  // payload this rank sent: p2p messages, its vectors in collectives, RMA puts
    uint64_t calls = 0;
    double seconds = 0;       // wall time inside communication calls (waiting included)
};

class Comm {
public:
    Comm();  // a world of one rank (no MPI)
    ~Comm();
    Comm(Comm&&) noexcept;
    Comm& operator=(Comm&&) noexcept;

    int rank() const { return rank_; }
    int size() const { return size_; }

    // MPI_Comm_split: ranks with the same color form a communicator, ordered by key.
    Comm split(int color, int key) const;

    // x[0..n) <- sum over the ranks (MPI_Allreduce, in place).
    void allreduce_sum(float* x, size_t n);
    // One-sided variant: every rank MPI_Puts x into its own slot of every other rank's window
    // between two MPI_Win_fence, then sums the slots in rank order (so all ranks get the same bits).
    // The window is allocated on first use for `max_n` floats per rank (collective).
    void allreduce_sum_rma(float* x, size_t n, size_t max_n);
    // The largest v over the ranks (used to agree on failures).
    int allreduce_max(int v);
    void bcast(void* data, size_t bytes, int root);
    // bcast() for ranks that may wait long for the root (a server's peers between requests):
    // they poll, napping between polls (backing off to 1 ms), instead of spinning on a core.
    // Every rank of the communicator must call bcast_idle for the same broadcast (a non-blocking
    // collective, MPI_Ibcast, does not match a blocking one).
    void bcast_idle(void* data, size_t bytes, int root);
    void barrier();
    // A barrier that sleeps (1 ms polls) while it waits, so that ranks waiting for rank 0 (the
    // bench's machine probe, a model being written) leave the cores to it instead of spinning.
    void barrier_idle();
    // Root receives every rank's `bytes` bytes, rank-major, into out (which must hold size()*bytes).
    void gather(const void* data, size_t bytes, void* out, int root);
    // Root receives rank r's counts[r] bytes at offset sum(counts[0..r)) of out.
    void gatherv(const void* data, size_t bytes, void* out, const std::vector<size_t>& counts, int root);

    // Point to point. send() does not block: the bytes are copied and kept until MPI is done with
    // them (so two ranks sending to each other never deadlock); wait_sends() completes them all.
    void send(const void* data, size_t bytes, int dest, int tag);
    void wait_sends();
    // Receives the next message from src with tag (any size).
    std::vector<uint8_t> recv(int src, int tag);
    static constexpr int kAnySource = -1;
    struct Message {
        int src = -1;
        std::vector<uint8_t> bytes;
    };
    // The next message with `tag` from src (kAnySource: from any rank) if one has arrived.
    std::optional<Message> try_recv(int src, int tag);
    // Waits for the next message with `tag` from src, napping as bcast_idle() does.
    Message recv_idle(int src, int tag);

    const CommStats& stats() const { return stats_; }

private:
    friend Status init_world();
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int rank_ = 0;
    int size_ = 1;
    CommStats stats_;
};

// True when this process was started by mpirun (Open MPI's or another PMI launcher's environment).
bool launched_by_mpirun();
// Initialises MPI (once; MPI_THREAD_FUNNELED) when launched_by_mpirun(), sets the log prefix
// "r<rank>/<size>" and finalises MPI at exit. Without mpirun it does nothing.
Status init_world();
// The world communicator (one rank when MPI is not initialised).
Comm& world();
// Ends every rank of the job now (MPI_Abort) with `code`; std::exit without MPI.
[[noreturn]] void abort_world(int code);
// An error inside a distributed loop (every rank runs the same steps, so it is not a user error
// that only some ranks see): prints "parallama: error: rank R: ..." and ends the whole job now
// (abort_world(1)) rather than leave the peers waiting.
[[noreturn]] void fatal(const Status& s);
// Fault injection for the tests: true on the world rank named by $PARALLAMA_FAULT_RANK, which
// then calls fault_exit() after its first forward step: the rank dies abruptly (std::_Exit(3)).
bool is_fault_rank(int world_rank);
[[noreturn]] void fault_exit(int world_rank);
// "Open MPI v4.1.4" or "none".
const char* mpi_library();

}  // namespace pl::dist
