// SPDX-License-Identifier: MIT
// Shared pieces of the importers (llama2c_to_gguf, hf_to_gguf): LLaMA metadata in llama.cpp's GGUF
// conventions, output type selection, streamed tensor conversion and progress reporting.
//
// GGUF conventions followed (llama.cpp's gguf-py constants):
//   general.architecture = "llama", general.name, general.file_type (LlamaFileType: 0 = all F32,
//   1 = mostly F16, 7 = mostly Q8_0, 32 = mostly BF16)
//   llama.{context_length, embedding_length, block_count, feed_forward_length,
//          rope.dimension_count (= head_dim), attention.head_count, attention.head_count_kv} (U32)
//   llama.attention.layer_norm_rms_epsilon, llama.rope.freq_base (F32)
//   tensors: token_embd, output_norm, output, rope_freqs, blk.{i}.{attn_norm, attn_q, attn_k, attn_v,
//   attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}.weight; ne[0] = row length (input columns),
//   ne[1] = rows (outputs).
#pragma once

#include "core/status.h"
#include "format/gguf.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pl::convert {

// --outtype: the type of 2-D weight matrices. Norms and other 1-D tensors are always F32.
enum class OutType { F32, F16, BF16, Q8_0 };
Result<OutType> parse_outtype(std::string_view s);
const char* outtype_name(OutType t);
// llama.cpp's general.file_type value (LlamaFileType) for an out type.
uint32_t file_type(OutType t);

// Token types (llama.cpp's SentencePiece/GGUF token types).
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
// True for SentencePiece byte pieces "<0xXX>" (two hex digits).
bool is_byte_piece(std::string_view piece);

struct LlamaHParams {
    int64_t dim = 0;          // embedding_length
    int64_t hidden_dim = 0;   // feed_forward_length
    int64_t n_layers = 0;
    int64_t n_heads = 0;
    int64_t n_kv_heads = 0;
    int64_t vocab_size = 0;
    int64_t context_length = 0;
    int64_t head_dim = 0;     // rope.dimension_count
    float rms_eps = 1e-5f;
    float rope_theta = 10000.0f;
};

// Writes general.* and llama.* keys.
void set_llama_metadata(gguf::Writer& w, const LlamaHParams& hp, const std::string& name, OutType outtype);

// GGUF type id used to store tensor `name` of dims `ne`: F32 for 1-D tensors and *_norm.weight;
// otherwise `outtype`, falling back to F16 when the row length is not a multiple of the block size
// (as llama.cpp's convert does for Q8_0).
uint32_t choose_type(const std::string& name, const std::vector<int64_t>& ne, OutType outtype);

// Fills out[0..ne[0]) with source row r (as float32). Rows are numbered in GGUF order: row r of the
// output tensor, r < product of ne[1..].
using RowReader = std::function<Status(int64_t r, float* out)>;

// Converts rows on the fly while the Writer streams (nothing is buffered beyond one row).
// Fails at write time when `type` has no quantizer.
void add_converted_tensor(gguf::Writer& w, const std::string& name, uint32_t type, std::vector<int64_t> ne,
                          RowReader read_row);

// A progress printer for Writer::write: one stderr line per tensor, "[ 12/291] blk.1.attn_q.weight
// q8_0 [4096, 4096]  123.4/13476.8 MiB". `names` lists the tensors in the order they were added.
struct Progress {
    std::vector<std::string> names;
    std::vector<std::string> details;
    bool enabled = true;
    size_t next = 0;
    void add(const std::string& name, uint32_t type, const std::vector<int64_t>& ne);
    std::function<void(uint64_t, uint64_t)> callback();
};

}  // namespace pl::convert
