// SPDX-License-Identifier: MIT
// Importers that write LLaMA GGUF files in llama.cpp's conventions (see convert/llama_gguf.h and
// docs/convert.md). Both stream one tensor at a time through gguf::Writer, which leaves no output
// file behind on failure.
#pragma once

#include "convert/llama_gguf.h"
#include "core/status.h"

#include <string>

namespace pl::convert {

struct Llama2cOptions {
    std::string checkpoint;  // llama2.c model.bin
    std::string tokenizer;   // llama2.c tokenizer.bin (vocab_size pieces)
    std::string output;      // .gguf path
    OutType outtype = OutType::F32;
    std::string name;        // general.name; default: checkpoint file stem
    bool progress = true;    // per-tensor lines on stderr
};

// llama2.c checkpoint + tokenizer.bin -> GGUF. Validates the header and the exact file size first.
// rms eps 1e-5 and rope base 10000 (llama2.c's fixed values). token_embd.weight doubles as the
// classifier when the checkpoint shares it (no output.weight is written then; llama.cpp and our
// loader fall back to token_embd).
Status llama2c_to_gguf(const Llama2cOptions& opt);

struct HfOptions {
    std::string dir;     // Hugging Face model folder: config.json, *.safetensors, tokenizer.json, ...
    std::string output;
    OutType outtype = OutType::F32;
    std::string name;    // general.name; default: folder name
    bool progress = true;
};

// Hugging Face LlamaForCausalLM / MistralForCausalLM folder -> GGUF. Q/K rows get the inverse of
// HF's rotary permutation so the GGUF holds Meta's interleaved layout.
Status hf_to_gguf(const HfOptions& opt);

}  // namespace pl::convert
