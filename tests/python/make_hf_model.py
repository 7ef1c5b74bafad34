#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds a Hugging Face LlamaForCausalLM folder from a llama2.c checkpoint (test fixture).

Writes config.json, tokenizer.json, tokenizer_config.json and the weights as
  --layout single  : model.safetensors
  --layout sharded : model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json
in --dtype F32, F16 or BF16. q_proj/k_proj get HF's rotary permutation (the forward one applied by
transformers' convert_llama_weights_to_hf.py), so `parallama convert --hf` must undo it to get
back the llama2.c (Meta) layout.

The tokenizer is SentencePiece-style BPE (byte_fallback, "▁") built from a llama2.c tokenizer.bin:
pieces keep their ids; there are no merges (the stand-in vocabulary "<i>" has none to learn).

Usage: make_hf_model.py --checkpoint stories260K.bin --tokenizer tok512-ids.bin --out DIR
                        [--dtype F32|F16|BF16] [--layout single|sharded]
"""
import argparse
import json
import os
import struct

import numpy as np
from safetensors.numpy import save_file


def read_checkpoint(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    w = np.frombuffer(raw[28:], dtype="<f4")
    head_dim = dim // n_heads
    kv_dim = n_kv * head_dim
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        out = w[pos:pos + n].reshape(shape)
        pos += n
        return out

    t = {}
    t["emb"] = take(vocab, dim)
    t["rms_att"] = take(n_layers, dim)
    t["wq"] = take(n_layers, dim, dim)
    t["wk"] = take(n_layers, kv_dim, dim)
    t["wv"] = take(n_layers, kv_dim, dim)
    t["wo"] = take(n_layers, dim, dim)
    t["rms_ffn"] = take(n_layers, dim)
    t["w1"] = take(n_layers, hidden, dim)
    t["w2"] = take(n_layers, dim, hidden)
    t["w3"] = take(n_layers, hidden, dim)
    t["rms_final"] = take(dim)
    take(seq_len, head_dim // 2)
    take(seq_len, head_dim // 2)
    t["wcls"] = t["emb"] if shared else take(vocab, dim)
    assert pos == w.size, "checkpoint size mismatch"
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab,
               seq_len=seq_len, shared=shared)
    return cfg, t


def read_tokenizer(path, vocab):
    with open(path, "rb") as f:
        raw = f.read()
    pos = 4
    pieces, scores = [], []
    for _ in range(vocab):
        score, n = struct.unpack("<fi", raw[pos:pos + 8])
        pos += 8
        pieces.append(raw[pos:pos + n].decode("utf-8"))
        scores.append(score)
        pos += n
    return pieces, scores


def permute_hf(w, n_heads):
    """HF's forward rotary permutation (convert_llama_weights_to_hf.permute)."""
    rows, cols = w.shape
    return w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def to_dtype(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a
    if dtype == "F16":
        return a.astype(np.float16)
    # BF16 (round to nearest even), stored via safetensors' numpy API as a raw uint16 view is not
    # supported, so this returns uint16 and the caller patches the header dtype.
    bits = a.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """safetensors.numpy cannot write BF16; write the file by hand (the format is simple)."""
    if dtype != "BF16":
        save_file(tensors, path, metadata={"format": "pt"})
        return
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        b = a.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--layout", default="single", choices=["single", "sharded"])
    args = ap.parse_args()

    c, t = read_checkpoint(args.checkpoint)
    pieces, _ = read_tokenizer(args.tokenizer, c["vocab"])
    os.makedirs(args.out, exist_ok=True)

    tensors = {"model.embed_tokens.weight": t["emb"], "model.norm.weight": t["rms_final"]}
    if not c["shared"]:
        tensors["lm_head.weight"] = t["wcls"]
    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = t["rms_att"][i]
        tensors[p + "self_attn.q_proj.weight"] = permute_hf(t["wq"][i], c["n_heads"])
        tensors[p + "self_attn.k_proj.weight"] = permute_hf(t["wk"][i], c["n_kv"])
        tensors[p + "self_attn.v_proj.weight"] = t["wv"][i]
        tensors[p + "self_attn.o_proj.weight"] = t["wo"][i]
        tensors[p + "post_attention_layernorm.weight"] = t["rms_ffn"][i]
        tensors[p + "mlp.gate_proj.weight"] = t["w1"][i]
        tensors[p + "mlp.down_proj.weight"] = t["w2"][i]
        tensors[p + "mlp.up_proj.weight"] = t["w3"][i]
    tensors = {k: to_dtype(v, args.dtype) for k, v in tensors.items()}

    if args.layout == "single":
        write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, args.dtype)
    else:
        names = sorted(tensors)
        half = len(names) // 2
        shards = [names[:half], names[half:]]
        weight_map = {}
        for k, group in enumerate(shards):
            fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(os.path.join(args.out, fname), {n: tensors[n] for n in group}, args.dtype)
            weight_map.update({n: fname for n in group})
        total = sum(v.nbytes for v in tensors.values())
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    torch_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[args.dtype]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c["dim"],
        "intermediate_size": c["hidden"],
        "num_hidden_layers": c["n_layers"],
        "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv"],
        "max_position_embeddings": c["seq_len"],
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": c["vocab"],
        "tie_word_embeddings": c["shared"],
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": torch_dtype,
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    specials = {0: "<unk>", 1: "<s>", 2: "</s>"}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, s in specials.items()
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {p: i for i, p in enumerate(pieces)},
            "merges": [],
        },
    }
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "tokenizer_class": "LlamaTokenizer",
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2)


if __name__ == "__main__":
    main()
