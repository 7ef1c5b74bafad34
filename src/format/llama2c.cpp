// SPDX-License-Identifier: MIT
#include "format/llama2c.h"

#include "core/check.h"

#include <algorithm>
#include <cstring>

namespace pl::llama2c {
namespace {

// Bounds that keep every product below 2^62 while allowing far larger models than llama2.c ever
// produced (dims up to 1M, 100k layers would already be absurd).
constexpr int32_t kMaxDim = 1 << 20;
constexpr int32_t kMaxLayers = 4096;
constexpr int32_t kMaxVocab = 1 << 24;
constexpr int32_t kMaxSeq = 1 << 24;

int32_t read_i32(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace

uint64_t Config::n_floats() const {
    const uint64_t d = dim, h = hidden_dim, l = n_layers, v = vocab_size, s = seq_len;
    const uint64_t kv = static_cast<uint64_t>(kv_dim());
    const uint64_t hd = static_cast<uint64_t>(head_dim());
    uint64_t n = v * d;                         // token_embedding
    n += l * d;                                 // rms_att
    n += l * d * d + 2 * l * kv * d + l * d * d;  // wq, wk, wv, wo
    n += l * d;                                 // rms_ffn
    n += 3 * l * h * d;                         // w1, w2, w3
    n += d;                                     // rms_final
    n += 2 * s * (hd / 2);                      // freq_cis_real, freq_cis_imag
    if (!shared_classifier) n += v * d;         // wcls
    return n;
}

Result<Config> parse_config(std::span<const uint8_t> bytes) {
    if (bytes.size() < kHeaderBytes)
        return err("file has {} bytes, too short for the {}-byte llama2.c header", bytes.size(), kHeaderBytes);
    Config c;
    const uint8_t* p = bytes.data();
    c.dim = read_i32(p);
    c.hidden_dim = read_i32(p + 4);
    c.n_layers = read_i32(p + 8);
    c.n_heads = read_i32(p + 12);
    c.n_kv_heads = read_i32(p + 16);
    int32_t vocab = read_i32(p + 20);
    c.seq_len = read_i32(p + 24);
    c.shared_classifier = vocab > 0;
    if (vocab == INT32_MIN) return err("header: vocab_size={} is invalid", vocab);
    c.vocab_size = vocab < 0 ? -vocab : vocab;
    const std::string hdr = fmt::format("dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} vocab_size={} seq_len={}",
                                        c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab, c.seq_len);
    auto bad = [&](std::string_view why) { return err("header ({}): {}", hdr, why); };
    if (c.dim <= 0 || c.dim > kMaxDim) return bad(fmt::format("dim must be in [1, {}]", kMaxDim));
    if (c.hidden_dim <= 0 || c.hidden_dim > kMaxDim) return bad(fmt::format("hidden_dim must be in [1, {}]", kMaxDim));
    if (c.n_layers <= 0 || c.n_layers > kMaxLayers) return bad(fmt::format("n_layers must be in [1, {}]", kMaxLayers));
    if (c.n_heads <= 0 || c.n_heads > c.dim) return bad("n_heads must be in [1, dim]");
    if (c.dim % c.n_heads != 0) return bad("dim is not a multiple of n_heads");
    if (c.n_kv_heads <= 0 || c.n_kv_heads > c.n_heads) return bad("n_kv_heads must be in [1, n_heads]");
    if (c.n_heads % c.n_kv_heads != 0) return bad("n_heads is not a multiple of n_kv_heads");
    if (c.head_dim() % 2 != 0) return bad(fmt::format("head_dim={} must be even for RoPE", c.head_dim()));
    if (c.vocab_size == 0 || c.vocab_size > kMaxVocab) return bad(fmt::format("|vocab_size| must be in [1, {}]", kMaxVocab));
    if (c.seq_len <= 0 || c.seq_len > kMaxSeq) return bad(fmt::format("seq_len must be in [1, {}]", kMaxSeq));
    return c;
}

void Matrix::row(int64_t r, float* out) const {
    std::memcpy(out, data + static_cast<size_t>(r * cols) * 4, static_cast<size_t>(cols) * 4);
}

Result<Checkpoint> parse_checkpoint(std::span<const uint8_t> bytes, const std::string& name) {
    auto cfg = parse_config(bytes);
    if (!cfg) return cfg.status().with_context(name);
    const Config& c = *cfg;
    const uint64_t expected = kHeaderBytes + 4 * c.n_floats();
    if (bytes.size() != expected) {
        return err("{}: file has {} bytes but a llama2.c checkpoint with dim={} hidden_dim={} n_layers={} n_heads={} "
                   "n_kv_heads={} vocab_size={} seq_len={} ({} classifier) needs exactly {} bytes ({})",
                   name, bytes.size(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                   c.seq_len, c.shared_classifier ? "shared" : "separate", expected,
                   bytes.size() < expected ? "truncated?" : "trailing data or wrong header?");
    }
    Checkpoint ck;
    ck.config = c;
    const uint8_t* p = bytes.data() + kHeaderBytes;
    // Takes `count` consecutive matrices of (rows, cols) starting at p, advancing p.
    auto take = [&](int64_t rows, int64_t cols) {
        Matrix m{p, rows, cols};
        p += static_cast<size_t>(rows * cols) * 4;
        return m;
    };
    const int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), L = c.n_layers;
    ck.token_embedding = take(c.vocab_size, d);
    ck.layers.resize(static_cast<size_t>(L));
    for (auto& l : ck.layers) l.rms_att = take(1, d);
    for (auto& l : ck.layers) l.wq = take(d, d);
    for (auto& l : ck.layers) l.wk = take(kv, d);
    for (auto& l : ck.layers) l.wv = take(kv, d);
    for (auto& l : ck.layers) l.wo = take(d, d);
    for (auto& l : ck.layers) l.rms_ffn = take(1, d);
    for (auto& l : ck.layers) l.w1 = take(h, d);
    for (auto& l : ck.layers) l.w2 = take(d, h);
    for (auto& l : ck.layers) l.w3 = take(h, d);
    ck.rms_final = take(1, d);
    take(c.seq_len, c.head_dim() / 2);  // freq_cis_real
    take(c.seq_len, c.head_dim() / 2);  // freq_cis_imag
    ck.wcls = c.shared_classifier ? ck.token_embedding : take(c.vocab_size, d);
    PL_CHECK(p == bytes.data() + bytes.size(), "llama2c layout walk ended at {} of {}", p - bytes.data(), bytes.size());
    return ck;
}

Result<Checkpoint> open_checkpoint(const std::string& path) {
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    PL_ASSIGN_OR_RETURN(Checkpoint ck, parse_checkpoint(map->bytes(), path));
    ck.map = std::move(map);
    return ck;
}

Result<Tokenizer> parse_tokenizer(std::span<const uint8_t> bytes, int32_t vocab_size, const std::string& name) {
    if (vocab_size <= 0) return err("{}: vocab_size={} must be positive", name, vocab_size);
    if (bytes.size() < 4) return err("{}: file has {} bytes, too short for max_token_length", name, bytes.size());
    Tokenizer t;
    t.max_token_length = read_i32(bytes.data());
    if (t.max_token_length <= 0) return err("{}: max_token_length={} must be positive", name, t.max_token_length);
    size_t pos = 4;
    // vocab_size comes from the checkpoint header: reserve no more tokens than the bytes can hold
    // (8 bytes each at least), so a hostile header cannot ask for gigabytes before the size check.
    const size_t fit = std::min(static_cast<size_t>(vocab_size), (bytes.size() - 4) / 8);
    t.pieces.reserve(fit);
    t.scores.reserve(fit);
    for (int32_t i = 0; i < vocab_size; ++i) {
        if (bytes.size() - pos < 8)
            return err("{}: truncated at token {} of {} (byte {} of {})", name, i, vocab_size, pos, bytes.size());
        float score;
        std::memcpy(&score, bytes.data() + pos, 4);
        const int32_t len = read_i32(bytes.data() + pos + 4);
        pos += 8;
        if (len < 0 || len > t.max_token_length)
            return err("{}: token {} has length {} (max_token_length is {})", name, i, len, t.max_token_length);
        if (bytes.size() - pos < static_cast<size_t>(len))
            return err("{}: token {} needs {} bytes but only {} remain", name, i, len, bytes.size() - pos);
        t.pieces.emplace_back(reinterpret_cast<const char*>(bytes.data() + pos), static_cast<size_t>(len));
        t.scores.push_back(score);
        pos += static_cast<size_t>(len);
    }
    if (pos != bytes.size())
        return err("{}: {} trailing bytes after {} tokens (does the tokenizer match the model's vocab_size?)", name,
                   bytes.size() - pos, vocab_size);
    return t;
}

Result<Tokenizer> read_tokenizer(const std::string& path, int32_t vocab_size) {
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    return parse_tokenizer(map->bytes(), vocab_size, path);
}

}  // namespace pl::llama2c
