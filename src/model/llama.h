// SPDX-License-Identifier: MIT
// The LLaMA-family model: hyper-parameters from `llama.*` GGUF metadata, weight views bound to the
// mapped file (or copied into huge pages, MmapMode), and the float reference forward pass.
//
// Dimensions use llama2.c's vocabulary: dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim,
// kv_dim = n_kv_heads * head_dim, vocab_size, seq_len (the context the KV cache is sized for).
#pragma once

#include "core/huge_pages.h"
#include "core/status.h"
#include "format/gguf.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/ops.h"
#include "model/shard.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pl {

struct ModelConfig {
    std::string arch;          // general.architecture ("llama")
    std::string name;          // general.name
    int dim = 0;
    int hidden_dim = 0;
    int n_layers = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int head_dim = 0;
    int kv_dim = 0;
    int vocab_size = 0;
    int context_length = 0;    // trained context (llama.context_length)
    int n_rot = 0;             // rotary dims per head (llama.rope.dimension_count)
    float rope_theta = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied_embeddings = false;  // no output.weight: the token embedding is the output head

    // Reads and validates llama.* metadata (and tensor shapes where metadata is silent).
    static Result<ModelConfig> from_gguf(const gguf::File& f);
    std::string summary() const;
};

struct LayerWeights {
    std::vector<float> attn_norm;  // (dim)
    std::vector<float> ffn_norm;   // (dim)
    WeightView wq;                 // (n_heads*head_dim, dim)
    WeightView wk;                 // (kv_dim, dim)
    WeightView wv;                 // (kv_dim, dim)
    WeightView wo;                 // (dim, n_heads*head_dim)
    WeightView w_gate;             // (hidden_dim, dim)   ffn_gate = w1
    WeightView w_up;               // (hidden_dim, dim)   ffn_up   = w3
    WeightView w_down;             // (dim, hidden_dim)   ffn_down = w2

    // The seven matrices, in file order (for loops over all of them).
    std::array<WeightView*, 7> matrices() { return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down}; }
    std::array<const WeightView*, 7> matrices() const { return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down}; }
};

// Where a model's weight matrices live, `--mmap auto|on|off`:
//   on   in the file mapping, used in place (4 KiB pages; several processes share the page cache);
//   off  copied at load into anonymous memory with transparent huge pages (like llama.cpp's
//        --no-mmap, plus MADV_HUGEPAGE): about 10 % faster decode here, docs/performance.md;
//   auto off when the kernel has huge pages on and the copies of every process of the job on
//        this machine take at most half the available memory, else on.
enum class MmapMode { Auto, On, Off };
const char* mmap_mode_name(MmapMode m);
std::optional<MmapMode> parse_mmap_mode(std::string_view name);  // "auto", "on", "off"
// The mode Model::load uses (auto unless set, e.g. by --mmap).
MmapMode default_mmap_mode();
void set_default_mmap_mode(MmapMode m);
// The decision for `bytes` of weights: avail = available memory (nullopt = unknown), local_procs =
// processes of the job on this machine, thp = huge pages usable.
bool should_copy_weights(MmapMode mode, uint64_t bytes, std::optional<uint64_t> avail, int local_procs, bool thp);

class Model {
public:
    // Opens a GGUF, validates architecture, metadata and every tensor's presence, type and shape.
    // Errors list all missing tensors at once.
    static Result<std::unique_ptr<Model>> load(const std::string& path);
    static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<gguf::File> file);
    // One rank's shard (model/shard.h): only its layers, and under tensor parallelism only its
    // row ranges (views into the mapping) and column slices (read with pread into memory of its
    // own, so the mapping's pages that hold other ranks' columns are never touched). Errors name
    // the tensor and the numbers when a split does not fit the shape or the weight type's blocks.
    static Result<std::unique_ptr<Model>> load(const std::string& path, const ShardSpec& shard);
    static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<gguf::File> file, const ShardSpec& shard);

    const ModelConfig& config() const { return cfg_; }
    const gguf::File& file() const { return *file_; }
    const WeightView& token_embd() const { return token_embd_; }  // (vocab_size, dim)
    const WeightView& output() const { return output_; }          // (vocab_size, dim)
    const std::vector<float>& output_norm() const { return output_norm_; }
    const std::vector<float>& rope_freqs() const { return rope_freqs_; }  // (n_rot/2) or empty
    const LayerWeights& layer(int l) const { return layers_[static_cast<size_t>(l)]; }  // bound for dims() layers
    const ShardSpec& shard() const { return shard_; }
    const ShardDims& dims() const { return dims_; }  // this shard's heads, FFN rows, vocab rows, layers
    // Bytes of weights streamed per generated token (all matrices once + one embedding row).
    uint64_t weight_bytes() const;
    uint64_t n_params() const;
    // True when the weight matrices were copied into huge-page memory (MmapMode above).
    bool weights_copied() const { return arena_.data() != nullptr; }

private:
    Model() = default;
    std::unique_ptr<gguf::File> file_;
    ModelConfig cfg_;
    WeightView token_embd_;
    WeightView output_;
    std::vector<float> output_norm_;
    std::vector<float> rope_freqs_;
    std::vector<LayerWeights> layers_;
    ShardSpec shard_;
    ShardDims dims_;
    std::vector<std::unique_ptr<uint8_t[]>> owned_;  // column slices of a tensor-parallel shard
    HugeBuffer arena_;                               // the copied weight matrices (MmapMode::Off)
    // avail: available_memory_bytes(), read once at load.
    void place_weights(MmapMode mode, std::optional<uint64_t> avail);
};

// Per-sequence state: the KV cache and scratch buffers, sized once from the config.
// Memory is reserved with calloc so untouched KV pages cost nothing until used.
// Element type of the KV cache: f32 (exact) or f16 (half the memory and the attention traffic;
// keys and values rounded to nearest even).
enum class KvType { F32, F16 };
const char* kv_type_name(KvType t);
std::optional<KvType> parse_kv_type(std::string_view name);  // "f32", "f16"
// The type Session::create uses when none is given (f32 unless set, e.g. by --kv-type).
KvType default_kv_type();
void set_default_kv_type(KvType t);

// One token of a continuous batch: sequence `seq` (a KV slot, 0 .. n_seq-1) at position `pos`.
struct BatchEntry {
    int seq = 0;
    int pos = 0;
    int32_t token = 0;
    bool logits = false;  // this entry's logits are wanted
};

class Session {
public:
    // n_ctx <= 0 means min(model context, 4096). `reference` selects the float reference path
    // for every matrix (activations stay f32); otherwise weights with an int8 kernel (Q8_0, Q4_0,
    // Q4_1, ...) multiply int8-quantized activations with the selected ISA's kernels.
    // n_batch (<= 0: 64) is how many tokens one forward step processes together: each weight
    // matrix is streamed from memory once per step (prompt processing is matrix-matrix).
    // n_seq (<= 0: 1) sequences can be decoded together (decode()); each has its own KV slot of
    // n_ctx positions.
    // kv: the cache's element type (default_kv_type() when not given).
    // kv_budget_tokens: the KV cache is a pool of blocks of kKvBlock positions shared by all
    // sequences (paged); this many positions in all (<= 0: n_seq blocks-rounded contexts, so
    // every sequence can fill its context). Blocks are taken as sequences grow and given back by seq_free().
    static Result<std::unique_ptr<Session>> create(const Model& model, int n_ctx = 0, bool reference = false,
                                                   int n_batch = 0, int n_seq = 1, std::optional<KvType> kv = std::nullopt,
                                                   int64_t kv_budget_tokens = 0);
    static constexpr int kKvBlock = 16;  // positions per KV block
    KvType kv_type() const { return kv_type_; }
    ~Session();

    int n_ctx() const { return n_ctx_; }
    int n_batch() const { return n_batch_; }
    int n_seq() const { return n_seq_; }
    const ModelConfig& config() const { return model_.config(); }
    int n_past() const { return n_past_; }  // tokens already in the KV cache (eval(): sequence 0)
    void reset() {
        n_past_ = 0;
        seq_free(0);
    }
    // Called with every matrix product's float input (W.cols values per token) before it is
    // quantized, in forward order; for importance matrices and activation statistics. Empty = off.
    using ActivationObserver = std::function<void(const WeightView& W, const float* x)>;
    void set_activation_observer(ActivationObserver obs) { observer_ = std::move(obs); }

    // Forgets every token from position n on (n <= n_past), e.g. to re-use a shared prefix.
    void truncate(int n);

    // Runs `tokens` at positions n_past.. (in steps of n_batch) and appends them to the cache.
    // When logits_out is not null it receives vocab_size floats per token (tokens.size() rows) if
    // all_logits, else only the last token's row. Fails (without changing state) when the
    // context would overflow or a token id is out of range. Results do not depend on n_batch.
    Status eval(std::span<const int32_t> tokens, float* logits_out, bool all_logits = false);

    // Continuous batching: the entries, from any sequences at any positions (prompt chunks and
    // single decode tokens mixed), run as forward steps of up to n_batch entries, in order. Each
    // entry's K/V go into its sequence's slot at its position, and it attends to positions
    // 0..pos of that slot, which must already be filled (earlier, or by entries before it). Every
    // weight matrix is streamed once per step for all entries. logits_out receives vocab_size
    // floats per entry with `logits` set, in entry order. An entry's result is bit-identical to
    // running its sequence alone. Fails without running anything on a bad sequence, position or
    // token. Does not touch n_past() (the caller tracks each sequence's length).
    Status decode(std::span<const BatchEntry> entries, float* logits_out);

    // Pipeline stages: decode() for a model shard holding layers [b, e) (Model::dims()). When the
    // shard does not start at layer 0, x_in holds the entries' hidden states (entries.size(), dim)
    // in place of their tokens' embeddings (tokens are still validated); when it does not end at
    // the last layer, out receives the hidden states after layer e-1 (entries.size(), dim),
    // otherwise the logits as decode() writes them. decode() is decode_stage(entries, nullptr, out).
    Status decode_stage(std::span<const BatchEntry> entries, const float* x_in, float* out);

    // Tensor parallelism: the collectives for a model loaded with ShardSpec::tp_size > 1 (not
    // owned; must outlive the session). eval() and decode() fail without them. Every rank of the
    // stage must make the same calls with the same entries; only tp rank 0's logits are filled.
    void set_tensor_parallel(TensorParallelOps* ops) { tp_ = ops; }

    // Gives sequence `seq`'s KV blocks back to the pool (the sequence is empty afterwards).
    void seq_free(int seq);
    // Positions sequence `seq` can hold without taking new blocks.
    int seq_capacity(int seq) const;
    int kv_blocks_total() const { return n_blocks_; }
    int kv_blocks_free() const { return static_cast<int>(free_blocks_.size()); }
    int kv_blocks_used() const { return n_blocks_ - kv_blocks_free(); }
    // Bytes of the key and value caches together: the shard's layers and KV heads only (a
    // tensor-parallel rank holds the KV heads its query heads read).
    size_t kv_cache_bytes() const { return kv_cache_bytes_; }

private:
    explicit Session(const Model& m) : model_(m) {}
    // n tokens at positions pos0..pos0+n-1 (n <= n_batch). logits: (n, vocab) when all_logits,
    // else the last token's (vocab); null for none.
    void forward_batch(const int32_t* tokens, int n, int pos0, float* logits, bool all_logits);
    // The general step: entry i is token tokens[i] of sequence seqs[i] at position pos[i]; the
    // logits of the rows listed in logit_rows (ascending) go to logits, one vocab row each.
    // x_in: (n, dim) hidden states in place of the embeddings (null: embed the tokens); x_out:
    // (n, dim) receives the hidden states after the shard's last layer instead of running the head.
    void forward_entries(const int32_t* tokens, const int* seqs, const int* pos, int n, float* logits,
                         const int* logit_rows, int n_logit_rows, const float* x_in = nullptr, float* x_out = nullptr);
    Status check_shard_ready(bool needs_full_depth) const;
    // Y = X W^T for n rows of X; `xq` caches X's int8 quantization across matrices sharing the
    // input (reset `xq_valid` whenever X changes).
    void linear(const WeightView& W, const float* X, int n, float* Y, Q8Acts& xq, bool& xq_valid);
    void linear_many(std::span<const WeightView* const> Ws, std::span<float* const> Ys, const float* X, int n, Q8Acts& xq,
                     bool& xq_valid);
    void quantize_input(const WeightView& W, const float* X, int n, Q8Acts& xq, bool& xq_valid);
    void observe(const WeightView& W, const float* X, int n);

    const Model& model_;
    const CpuKernels* kernels_ = nullptr;  // null: float reference path
    ActivationObserver observer_;
    TensorParallelOps* tp_ = nullptr;
    std::vector<float> logits_local_;  // (n_batch, vocab rows of this rank) before the gather
    int n_ctx_ = 0;
    int n_batch_ = 0;
    int n_past_ = 0;
    int n_seq_ = 1;
    int n_threads_ = 1;             // OpenMP threads the attention scratch is sized for
    KvType kv_type_ = KvType::F32;
    const CpuKernels* kv_kernels_ = nullptr;  // f16 conversions and attention (scalar on the reference path)
    // Under parallelism n_layers and kv_dim are the shard's (Model::dims()).
    void* key_cache_ = nullptr;     // (n_layers, n_blocks, n_kv_heads, head_dim, kKvBlock) floats or halves
    void* value_cache_ = nullptr;   // (n_layers, n_blocks, n_kv_heads, kKvBlock, head_dim)
    int n_blocks_ = 0;
    size_t kv_cache_bytes_ = 0;
    std::vector<int32_t> free_blocks_;              // a stack of unused block ids
    std::vector<std::vector<int32_t>> seq_blocks_;  // per sequence: block of positions [16b, 16b+16)
    // Takes blocks so that every entry's position is backed; all or nothing (error names the shortfall).
    Status reserve(const int* seqs, const int* pos, int n);
    std::vector<float> k_new_;      // (n_batch, kv_dim) this step's keys before they go to their slots
    std::vector<float> v_new_;      // (n_batch, kv_dim)
    std::vector<int> seqs_, pos_, rows_;  // per-step scratch of forward_batch
    std::vector<float> x_;          // (n_batch, dim) residual stream
    std::vector<float> xb_;         // (n_batch, dim) normed input / attention output
    std::vector<float> xb2_;        // (n_batch, dim)
    std::vector<float> q_;          // (n_batch, q_dim) queries (q_dim = n_heads*head_dim of the shard)
    std::vector<float> hb_;         // (n_batch, hidden_dim)  (the shard's FFN rows)
    std::vector<float> hb2_;        // (n_batch, hidden_dim)
    std::vector<float> att_;        // (n_threads, n_ctx) attention scores, per thread
    Q8Acts xq_;                     // (n_batch, dim) quantized input
    Q8Acts hq_;                     // (n_batch, hidden_dim) quantized FFN activation
    std::vector<float> rot_;        // rotated copy of a linear's input (q3.5 weights)
};

}  // namespace pl
