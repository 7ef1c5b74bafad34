#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sets up (idempotent), builds the release preset and runs the whole test suite.
# Extra arguments go to ctest (e.g. scripts/test.sh -L unit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh --test
scripts/fetch-model.sh >/dev/null || echo "test: demo model unavailable; tests that need it will skip" >&2
scripts/fetch-text.sh >/dev/null || echo "test: calibration/eval texts unavailable; tests that need them will skip" >&2
cmake --preset release >/dev/null
cmake --build --preset release
# ctest runs two test processes at once and each uses every core through OpenMP. With libgomp's
# default spin-waiting, a thread spinning at a barrier holds the core its partner needs: tiny
# models, which run thousands of short parallel regions, then took 60-90 s instead of 0.1-2 s.
# Waiting threads sleep instead (tests are never timed; benchmarks do not run here).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
ctest --preset release "$@"
