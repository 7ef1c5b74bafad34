#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent LLaMA forward pass in numpy (float64), reading weights with the `gguf` package's
own dequantizers. Writes every position's logits as float32 [tokens x vocab] to OUT.

usage: ref_forward.py MODEL.gguf OUT "id id id ..."
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if v.dtype == np.uint8:
        return bytes(v).decode()
    return v[0].item()


def main():
    path, out, ids = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split()]
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    p = arch + "."
    dim = field(r, p + "embedding_length")
    n_layers = field(r, p + "block_count")
    n_heads = field(r, p + "attention.head_count")
    n_kv = field(r, p + "attention.head_count_kv", n_heads)
    eps = field(r, p + "attention.layer_norm_rms_epsilon", 1e-5)
    theta = field(r, p + "rope.freq_base", 10000.0)
    hd = dim // n_heads
    n_rot = field(r, p + "rope.dimension_count", hd)

    W = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows first
        W[t.name] = a.reshape(shape)
    out_w = W.get("output.weight", W["token_embd.weight"])
    freq_factors = W.get("rope_freqs.weight")

    def rmsnorm(x, w):
        return x / np.sqrt(np.mean(x * x) + eps) * w

    def rope(v, pos, nh):
        v = v.reshape(nh, hd).copy()
        i = np.arange(0, n_rot, 2)
        freq = theta ** (-i / n_rot)
        if freq_factors is not None:
            freq = freq / freq_factors
        ang = pos * freq
        c, s = np.cos(ang), np.sin(ang)
        a, b = v[:, i].copy(), v[:, i + 1].copy()
        v[:, i] = a * c - b * s
        v[:, i + 1] = a * s + b * c
        return v

    kc = [[] for _ in range(n_layers)]
    vc = [[] for _ in range(n_layers)]
    logits = []
    for pos, tok in enumerate(ids):
        x = W["token_embd.weight"][tok].copy()
        for l in range(n_layers):
            b = f"blk.{l}."
            h = rmsnorm(x, W[b + "attn_norm.weight"])
            q = rope(W[b + "attn_q.weight"] @ h, pos, n_heads)
            k = rope(W[b + "attn_k.weight"] @ h, pos, n_kv)
            v = (W[b + "attn_v.weight"] @ h).reshape(n_kv, hd)
            kc[l].append(k)
            vc[l].append(v)
            K = np.stack(kc[l])  # (t, n_kv, hd)
            V = np.stack(vc[l])
            att = np.zeros((n_heads, hd))
            for hh in range(n_heads):
                g = hh // (n_heads // n_kv)
                s = K[:, g, :] @ q[hh] / np.sqrt(hd)
                s = np.exp(s - s.max())
                s /= s.sum()
                att[hh] = s @ V[:, g, :]
            x = x + W[b + "attn_output.weight"] @ att.reshape(-1)
            h = rmsnorm(x, W[b + "ffn_norm.weight"])
            gate = W[b + "ffn_gate.weight"] @ h
            up = W[b + "ffn_up.weight"] @ h
            x = x + W[b + "ffn_down.weight"] @ (gate / (1 + np.exp(-gate)) * up)
        logits.append(out_w @ rmsnorm(x, W["output_norm.weight"]))
    np.asarray(logits, dtype="<f4").tofile(out)


if __name__ == "__main__":
    main()
