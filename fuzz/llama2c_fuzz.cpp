// SPDX-License-Identifier: MIT
// libFuzzer target for the llama2.c readers (src/format/llama2c.cpp). The first input byte picks
// what the rest is: even, a checkpoint (header + weights; most inputs stop at the header or the
// exact-size check, so the header fields get the attention); odd, a tokenizer.bin read with a
// vocab_size taken from the next 4 bytes (any int32, as a hostile checkpoint header could give).
#include "format/llama2c.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "llama2c_fuzz: invariant broken: %s\n", what);
    std::abort();
}

void touch(const pl::llama2c::Matrix& m, const uint8_t* data, size_t size) {
    if (m.rows <= 0 || m.cols <= 0) fail("empty matrix");
    const auto b = m.bytes();
    if (b.data() < data || b.size() > size || b.data() + b.size() > data + size) fail("matrix outside the input");
    std::vector<float> row(static_cast<size_t>(m.cols));
    m.row(0, row.data());
    m.row(m.rows - 1, row.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t* p = data + 1;
    const size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        auto cfg = pl::llama2c::parse_config({p, n});
        auto ck = pl::llama2c::parse_checkpoint({p, n}, "fuzz.bin");
        if (ck && !cfg) fail("checkpoint parsed with a bad header");
        if (!ck) {
            if (ck.error_message().empty()) fail("error without a message");
            return 0;
        }
        const auto& c = ck->config;
        if (c.dim <= 0 || c.n_heads <= 0 || c.dim % c.n_heads || c.head_dim() % 2) fail("bad config accepted");
        if (static_cast<int64_t>(ck->layers.size()) != c.n_layers) fail("layer count");
        touch(ck->token_embedding, p, n);
        touch(ck->rms_final, p, n);
        touch(ck->wcls, p, n);
        for (const auto& l : ck->layers)
            for (const auto* m : {&l.rms_att, &l.wq, &l.wk, &l.wv, &l.wo, &l.rms_ffn, &l.w1, &l.w2, &l.w3}) touch(*m, p, n);
        return 0;
    }
    if (n < 4) return 0;
    int32_t vocab;
    std::memcpy(&vocab, p, 4);
    auto t = pl::llama2c::parse_tokenizer({p + 4, n - 4}, vocab, "fuzz-tokenizer.bin");
    if (!t) {
        if (t.error_message().empty()) fail("error without a message");
        return 0;
    }
    if (static_cast<int64_t>(t->pieces.size()) != vocab || t->scores.size() != t->pieces.size()) fail("token count");
    for (const auto& s : t->pieces)
        if (static_cast<int64_t>(s.size()) > t->max_token_length) fail("piece longer than max_token_length");
    return 0;
}
