#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Independent GGML (de)quantizer for quant_test: wraps the numpy implementations that ship in the
# `gguf` package (gguf.quants), which llama.cpp maintains separately from ggml-quants.c.
#
#   dequant_ref.py check                         exit 0 when numpy + gguf import, else 3
#   dequant_ref.py dequant <type> <in> <out>     <in>: raw blocks, <out>: float32 little-endian
#   dequant_ref.py quant   <type> <in> <out>     <in>: float32 little-endian, <out>: raw blocks
# <type> is the lower-case GGML name (q4_0, q6_k, f16, bf16, ...).
import sys


def main() -> int:
    try:
        import numpy as np
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize, quantize
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"numpy/gguf not importable: {e}", file=sys.stderr)
        return 3
    if len(sys.argv) == 2 and sys.argv[1] == "check":
        return 0
    if len(sys.argv) != 5 or sys.argv[1] not in ("dequant", "quant"):
        print(__doc__ or "usage: dequant_ref.py check | dequant|quant <type> <in> <out>", file=sys.stderr)
        return 2
    mode, name, src, dst = sys.argv[1:]
    qtype = GGMLQuantizationType[name.upper()]
    if mode == "dequant":
        raw = np.fromfile(src, dtype=np.uint8)
        out = dequantize(raw, qtype).astype("<f4", copy=False)
    else:
        x = np.fromfile(src, dtype="<f4")
        out = quantize(x, qtype)
    out.tofile(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
