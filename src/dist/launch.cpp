// SPDX-License-Identifier: MIT
// What the MPI and the serial build of dist/comm share: whether mpirun started this process,
// fatal errors, fault injection.
#include "dist/comm.h"

#include <cstdio>
#include <cstdlib>

namespace pl::dist {

bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(v)) return true;
    return false;
}

void fatal(const Status& s) {
    std::fprintf(stderr, "parallama: error: rank %d: %s\n", world().rank(), s.message().c_str());
    abort_world(1);
}

bool is_fault_rank(int world_rank) {
    const char* f = std::getenv("PARALLAMA_FAULT_RANK");
    return f && std::atoi(f) == world_rank;
}

void fault_exit(int world_rank) {
    std::fprintf(stderr, "parallama: rank %d exits on purpose (PARALLAMA_FAULT_RANK)\n", world_rank);
    std::fflush(stderr);
    std::_Exit(3);
}

}  // namespace pl::dist
