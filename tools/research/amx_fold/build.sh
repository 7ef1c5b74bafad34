#!/usr/bin/env bash
# Builds the folded-scale q3.5 microbenchmark against the project's static library (build/ first:
# cmake --preset release && cmake --build --preset release). Run through scripts/bench-prio.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
g++ -std=c++20 -O3 -march=native -fopenmp -I "$root/src" "$here/amx_fold_bench.cpp" \
    "$root/build/lib/libparallama.a" -lfmt -o "$here/amx_fold_bench"
echo "built $here/amx_fold_bench"
