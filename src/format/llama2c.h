// SPDX-License-Identifier: MIT
// Readers for llama2.c's files (github.com/karpathy/llama2.c, run.c).
//
// Checkpoint (model.bin, the "legacy" version-0 export): 7 little-endian int32
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
// (vocab_size < 0 means the classifier wcls is stored separately; |vocab_size| is the vocabulary),
// then float32 arrays in this order, each row-major:
//   token_embedding (vocab_size, dim)
//   rms_att         (n_layers, dim)
//   wq              (n_layers, dim, dim)        rows = outputs (n_heads * head_dim)
//   wk              (n_layers, kv_dim, dim)
//   wv              (n_layers, kv_dim, dim)
//   wo              (n_layers, dim, dim)
//   rms_ffn         (n_layers, dim)
//   w1              (n_layers, hidden_dim, dim)  gate
//   w2              (n_layers, dim, hidden_dim)  down
//   w3              (n_layers, hidden_dim, dim)  up
//   rms_final       (dim)
//   freq_cis_real   (seq_len, head_dim / 2)      unused (RoPE is recomputed)
//   freq_cis_imag   (seq_len, head_dim / 2)      unused
//   wcls            (vocab_size, dim)            only when vocab_size < 0 in the header
// with head_dim = dim / n_heads and kv_dim = n_kv_heads * head_dim. The file size must match this
// layout exactly. Q/K rows are in Meta's interleaved RoPE layout (the one GGUF uses).
//
// Tokenizer (tokenizer.bin): int32 max_token_length, then per token: float32 score, int32 len,
// len bytes of piece (no terminator). The token count is not stored; it is the model's vocab_size.
#pragma once

#include "core/mmap_file.h"
#include "core/status.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace pl::llama2c {

struct Config {
    int32_t dim = 0;
    int32_t hidden_dim = 0;
    int32_t n_layers = 0;
    int32_t n_heads = 0;
    int32_t n_kv_heads = 0;
    int32_t vocab_size = 0;   // always positive here
    int32_t seq_len = 0;
    bool shared_classifier = true;  // header vocab_size was positive

    int32_t head_dim() const { return dim / n_heads; }
    int32_t kv_dim() const { return n_kv_heads * head_dim(); }
    // Number of float32 values after the header that a checkpoint with this config holds.
    uint64_t n_floats() const;
};

inline constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

// Parses and validates the 28-byte header (positive dims, dim % n_heads == 0, n_heads % n_kv_heads
// == 0, even head_dim, sizes small enough that no count overflows).
Result<Config> parse_config(std::span<const uint8_t> bytes);

// A float32 matrix inside the checkpoint: `rows` rows of `cols` values. The bytes may be unaligned
// (in-memory images); read with row().
struct Matrix {
    const uint8_t* data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    // Copies row r into out[0..cols).
    void row(int64_t r, float* out) const;
    std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(rows * cols * 4)}; }
};

struct Layer {
    Matrix rms_att;  // (1, dim)
    Matrix wq;       // (dim, dim)
    Matrix wk;       // (kv_dim, dim)
    Matrix wv;       // (kv_dim, dim)
    Matrix wo;       // (dim, dim)
    Matrix rms_ffn;  // (1, dim)
    Matrix w1;       // (hidden_dim, dim)
    Matrix w2;       // (dim, hidden_dim)
    Matrix w3;       // (hidden_dim, dim)
};

struct Checkpoint {
    Config config;
    Matrix token_embedding;  // (vocab_size, dim)
    std::vector<Layer> layers;
    Matrix rms_final;        // (1, dim)
    Matrix wcls;             // (vocab_size, dim); same bytes as token_embedding when shared
    std::unique_ptr<MappedFile> map;  // keeps the mapping alive (null for parse())
};

// Maps and validates a checkpoint file; errors name the file, the header values and both sizes.
Result<Checkpoint> open_checkpoint(const std::string& path);
// Same for an in-memory image that outlives the result.
Result<Checkpoint> parse_checkpoint(std::span<const uint8_t> bytes, const std::string& name = "<memory>");

struct Tokenizer {
    int32_t max_token_length = 0;
    std::vector<std::string> pieces;  // raw bytes of each piece
    std::vector<float> scores;
};

// Reads exactly `vocab_size` tokens; trailing bytes, truncation, negative lengths or a piece
// longer than max_token_length are errors.
Result<Tokenizer> read_tokenizer(const std::string& path, int32_t vocab_size);
Result<Tokenizer> parse_tokenizer(std::span<const uint8_t> bytes, int32_t vocab_size,
                                  const std::string& name = "<memory>");

}  // namespace pl::llama2c
