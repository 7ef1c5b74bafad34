// SPDX-License-Identifier: MIT
// Whether mpirun started this process (shared by the MPI and the serial build of dist/comm).
#include "dist/comm.h"

#include <cstdlib>

namespace pl::dist {

bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
        if (std::getenv(v)) return true;
    return false;
}

}  // namespace pl::dist
