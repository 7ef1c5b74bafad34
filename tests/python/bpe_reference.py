#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent reference for parallama's byte-level BPE tokenizer.

Reads the vocabulary and merges of a GGUF (tokenizer.ggml.model = gpt2) with the `gguf` package,
builds a HuggingFace `tokenizers` BPE model (Rust) with the pre-tokenizer that tokenizer.ggml.pre
names, and prints the token ids of each test case, one line per case (ids separated by spaces).

usage: bpe_reference.py MODEL.gguf CASES_FILE
CASES_FILE holds the cases in llama.cpp's .inp format: each case followed by
"\\n__ggml_vocab_test__\\n". Exit code 77 means a needed Python package is missing.
"""
import sys

SEP = "\n__ggml_vocab_test__\n"

try:
    import gguf
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:  # the C++ test skips on 77
    print(f"bpe_reference.py: missing Python package: {e}", file=sys.stderr)
    sys.exit(77)

# The llama3 / tiktoken-style split used by LLaMA 3 (see tokenizer.json of Meta-Llama-3).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_string(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else bytes(f.parts[-1]).decode("utf-8")


def build(path):
    r = gguf.GGUFReader(path)
    model = field_string(r, "tokenizer.ggml.model")
    if model != "gpt2":
        sys.exit(f"bpe_reference.py: {path}: tokenizer.ggml.model is {model!r}, not 'gpt2'")
    pre = field_string(r, "tokenizer.ggml.pre", "default")
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field_strings(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    ignore_merges = pre in ("llama3", "llama-bpe", "llama-v3")
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore_merges))
    if pre in ("smollm", "starcoder", "refact"):
        # SmolLM2's tokenizer.json: Digits(individual_digits) then ByteLevel with the GPT-2 regex.
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    elif pre in ("gpt2", "gpt-2"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif ignore_merges:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        sys.exit(f"bpe_reference.py: no reference pre-tokenizer for tokenizer.ggml.pre = {pre!r}")
    tok.decoder = decoders.ByteLevel()
    return tok


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bpe_reference.py MODEL.gguf CASES_FILE")
    tok = build(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8", newline="") as f:
        raw = f.read()
    cases = raw.split(SEP)
    if cases and cases[-1] == "":
        cases.pop()
    out = sys.stdout
    for text in cases:
        out.write(" ".join(str(i) for i in tok.encode(text, add_special_tokens=False).ids) + "\n")


if __name__ == "__main__":
    main()
