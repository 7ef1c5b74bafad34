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
ctest --preset release "$@"
