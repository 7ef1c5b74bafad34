// SPDX-License-Identifier: MIT
// Comm for a build without MPI: a world of one rank. Collectives are identities; point-to-point
// calls cannot happen (there is no peer), and a run under mpirun is refused with a clear message.
#include "dist/comm.h"

#include "core/check.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pl::dist {

struct Comm::Impl {};

Comm::Comm() = default;
Comm::~Comm() = default;
Comm::Comm(Comm&&) noexcept = default;
Comm& Comm::operator=(Comm&&) noexcept = default;

Comm Comm::split(int, int) const { return Comm(); }
void Comm::allreduce_sum(float*, size_t) {}
void Comm::allreduce_sum_rma(float*, size_t, size_t) {}
int Comm::allreduce_max(int v) { return v; }
void Comm::bcast(void*, size_t, int) {}
void Comm::bcast_idle(void*, size_t, int) {}
void Comm::barrier() {}
void Comm::barrier_idle() {}
void Comm::gather(const void* data, size_t bytes, void* out, int) { std::memcpy(out, data, bytes); }
void Comm::gatherv(const void* data, size_t bytes, void* out, const std::vector<size_t>&, int) { std::memcpy(out, data, bytes); }
void Comm::send(const void*, size_t, int, int) { PL_CHECK(false, "send without MPI"); }
void Comm::wait_sends() {}
std::vector<uint8_t> Comm::recv(int, int) { PL_CHECK(false, "recv without MPI"); }
std::optional<Comm::Message> Comm::try_recv(int, int) { return std::nullopt; }
Comm::Message Comm::recv_idle(int, int) { PL_CHECK(false, "recv without MPI"); }

Status init_world() {
    if (launched_by_mpirun()) return err("this parallama was built without MPI (install libopenmpi-dev and rebuild) but runs under mpirun");
    return Status::ok();
}

Comm& world() {
    static Comm w;
    return w;
}

void abort_world(int code) {
    std::fflush(stdout);
    std::fflush(stderr);
    std::exit(code);
}

const char* mpi_library() { return "none"; }

}  // namespace pl::dist
