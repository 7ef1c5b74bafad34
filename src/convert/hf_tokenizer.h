// SPDX-License-Identifier: MIT
// Hugging Face tokenizer.json + tokenizer_config.json -> GGUF tokenizer.* metadata.
//
// Two BPE flavours are recognised (anything else is an error naming what was found):
//   * SentencePiece-style (LLaMA 1/2, Mistral): BPE with byte_fallback and "▁" for spaces ->
//     tokenizer.ggml.model = "llama"; scores make llama.cpp's SPM merge loop pick merges in HF's
//     merge-rank order (score = -rank of the merge producing the token; tokens no merge produces
//     score below all of them); "<0xXX>" pieces are Byte tokens.
//   * byte-level GPT-2 style (LLaMA 3 and most newer models): tokenizer.ggml.model = "gpt2" with the
//     merges list and a pre-tokenizer name inferred from the pre_tokenizer ("llama-bpe" for the
//     LLaMA 3 split regex, "gpt2" for a plain ByteLevel one, else "default").
// Special tokens (bos/eos/unk/pad), add_bos_token/add_eos_token and chat_template come from
// tokenizer_config.json, with config.json's *_token_id and the post_processor as fallbacks.
#pragma once

#include "core/status.h"
#include "format/gguf.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace pl::convert {

// Reads `dir`/tokenizer.json (+ tokenizer_config.json when present) and sets tokenizer.* keys on
// `w`. `n_vocab` is the model's vocabulary (embedding rows): ids beyond the tokenizer's are padded
// with "[PAD<id>]" Unused tokens; a tokenizer with more tokens than that is an error.
// `config` is the parsed config.json (for *_token_id fallbacks).
Status set_hf_tokenizer(gguf::Writer& w, const std::string& dir, int64_t n_vocab, const nlohmann::json& config);

}  // namespace pl::convert
