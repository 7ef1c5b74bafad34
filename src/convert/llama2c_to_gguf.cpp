// SPDX-License-Identifier: MIT
// llama2.c checkpoint + tokenizer.bin -> GGUF (llama architecture).
#include "convert/convert.h"
#include "format/llama2c.h"

#include <filesystem>

namespace pl::convert {

namespace {

// llama2.c's exporter stores BOS/EOS as "\n<s>\n" and "\n</s>\n" so that run.c prints them on
// their own line; GGUF vocabularies use the plain SentencePiece pieces.
std::string normalize_piece(int32_t id, const std::string& piece) {
    if (id == 1 && piece == "\n<s>\n") return "<s>";
    if (id == 2 && piece == "\n</s>\n") return "</s>";
    return piece;
}

TokenType token_type(int32_t id, const std::string& piece) {
    if (id == 0) return TokenType::Unknown;
    if (id == 1 || id == 2) return TokenType::Control;
    if (is_byte_piece(piece)) return TokenType::Byte;
    return TokenType::Normal;
}

}  // namespace

Status llama2c_to_gguf(const Llama2cOptions& opt) {
    PL_ASSIGN_OR_RETURN(llama2c::Checkpoint ck, llama2c::open_checkpoint(opt.checkpoint));
    const llama2c::Config& c = ck.config;
    if (c.vocab_size < 3)
        return err("{}: vocab_size={} is too small for the <unk>, <s>, </s> tokens", opt.checkpoint, c.vocab_size);
    PL_ASSIGN_OR_RETURN(llama2c::Tokenizer tok, llama2c::read_tokenizer(opt.tokenizer, c.vocab_size));

    gguf::Writer w;
    LlamaHParams hp;
    hp.dim = c.dim;
    hp.hidden_dim = c.hidden_dim;
    hp.n_layers = c.n_layers;
    hp.n_heads = c.n_heads;
    hp.n_kv_heads = c.n_kv_heads;
    hp.vocab_size = c.vocab_size;
    hp.context_length = c.seq_len;
    hp.head_dim = c.head_dim();
    hp.rms_eps = 1e-5f;
    hp.rope_theta = 10000.0f;
    const std::string name =
        opt.name.empty() ? std::filesystem::path(opt.checkpoint).stem().string() : opt.name;
    set_llama_metadata(w, hp, name, opt.outtype);

    std::vector<std::string> pieces;
    std::vector<int32_t> types;
    for (int32_t i = 0; i < c.vocab_size; ++i) {
        pieces.push_back(normalize_piece(i, tok.pieces[static_cast<size_t>(i)]));
        types.push_back(static_cast<int32_t>(token_type(i, pieces.back())));
    }
    using gguf::Value;
    w.set("tokenizer.ggml.model", Value::make_string("llama"));
    w.set("tokenizer.ggml.pre", Value::make_string("default"));
    w.set("tokenizer.ggml.tokens", Value::make_string_array(std::move(pieces)));
    w.set("tokenizer.ggml.scores", Value::make_f32_array(tok.scores));
    w.set("tokenizer.ggml.token_type", Value::make_i32_array(types));
    w.set("tokenizer.ggml.bos_token_id", Value::make_u32(1));
    w.set("tokenizer.ggml.eos_token_id", Value::make_u32(2));
    w.set("tokenizer.ggml.unknown_token_id", Value::make_u32(0));
    w.set("tokenizer.ggml.add_bos_token", Value::make_bool(true));
    w.set("tokenizer.ggml.add_eos_token", Value::make_bool(false));

    Progress progress;
    progress.enabled = opt.progress;
    // A llama2.c (rows, cols) matrix becomes a GGUF tensor with ne = {cols, rows}.
    auto add = [&](const std::string& tname, const llama2c::Matrix& m, bool is_vector = false) {
        std::vector<int64_t> ne = is_vector ? std::vector<int64_t>{m.cols} : std::vector<int64_t>{m.cols, m.rows};
        const uint32_t type = choose_type(tname, ne, opt.outtype);
        progress.add(tname, type, ne);
        add_converted_tensor(w, tname, type, ne, [m](int64_t r, float* out) {
            m.row(r, out);
            return Status::ok();
        });
    };
    add("token_embd.weight", ck.token_embedding);
    add("output_norm.weight", ck.rms_final, true);
    if (!c.shared_classifier) add("output.weight", ck.wcls);
    for (int32_t i = 0; i < c.n_layers; ++i) {
        const llama2c::Layer& l = ck.layers[static_cast<size_t>(i)];
        const std::string p = fmt::format("blk.{}.", i);
        add(p + "attn_norm.weight", l.rms_att, true);
        add(p + "attn_q.weight", l.wq);
        add(p + "attn_k.weight", l.wk);
        add(p + "attn_v.weight", l.wv);
        add(p + "attn_output.weight", l.wo);
        add(p + "ffn_norm.weight", l.rms_ffn, true);
        add(p + "ffn_gate.weight", l.w1);
        add(p + "ffn_down.weight", l.w2);
        add(p + "ffn_up.weight", l.w3);
    }
    return w.write(opt.output, progress.callback());
}

}  // namespace pl::convert
