// SPDX-License-Identifier: MIT
// SentencePiece-style tokenizer ("llama" in GGUF), compatible with llama.cpp's llm_tokenizer_spm:
//  - each raw-text fragment gets a leading space when add_space_prefix and it starts the input or
//    follows a special token; spaces become U+2581 "▁";
//  - the fragment is split into UTF-8 characters, then adjacent symbols are merged greedily by the
//    score of the merged token (highest first, leftmost on ties) using a priority queue of
//    bigrams, so the cost is O(n log n) in the fragment length;
//  - a final symbol that is not a token falls back to its bytes as <0xXX> tokens.
#include "core/log.h"
#include "tokenizer/tokenizer_impl.h"

#include <queue>

namespace pl::tok {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
const std::string kUnknownPiece = "\xE2\x96\x85";  // U+2585, what llama.cpp prints for <unk>

class SpmTokenizer final : public TokenizerCommon {
public:
    explicit SpmTokenizer(VocabSpec& spec) {
        scores_ = std::move(spec.scores);
        init_common(spec);
        scores_.resize(tokens_.size(), 0.0f);
        add_bos_ = spec.add_bos.value_or(true);
        add_space_prefix_ = spec.add_space_prefix.value_or(true);
        for (int b = 0; b < 256; ++b) {
            byte_ids_[b] = -1;
            if (auto id = lookup(fmt::format("<0x{:02X}>", b))) {
                byte_ids_[b] = *id;
            } else if (auto id1 = lookup(std::string(1, static_cast<char>(b)))) {
                byte_ids_[b] = *id1;
            }
        }
        for (size_t i = 0; i < tokens_.size(); ++i) {
            if (types_[i] != TokenType::Byte) continue;
            const std::string& t = tokens_[i];
            unsigned v = 0;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
                std::sscanf(t.c_str() + 3, "%2X", &v) == 1) {
                byte_value_.emplace(static_cast<int32_t>(i), static_cast<uint8_t>(v));
            }
        }
    }

    std::string_view kind() const override { return "spm"; }

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
        std::vector<int32_t> out;
        if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
        bool prev_special = true;  // the first fragment gets the prefix space too
        for (const Fragment& f : partition(text, parse_special)) {
            if (f.token >= 0) {
                out.push_back(f.token);
                prev_special = true;
                continue;
            }
            std::string escaped;
            escaped.reserve((f.end - f.begin) * 3 + 3);
            if (add_space_prefix_ && prev_special) escaped += kSpace;
            for (size_t i = f.begin; i < f.end; ++i) {
                if (text[i] == ' ') {
                    escaped += kSpace;
                } else {
                    escaped += text[i];
                }
            }
            encode_fragment(escaped, out);
            prev_special = false;
        }
        return out;
    }

    std::string token_to_piece(int32_t id) const override {
        if (id < 0 || id >= n_vocab()) return {};
        const auto i = static_cast<size_t>(id);
        switch (types_[i]) {
            case TokenType::Normal:
            case TokenType::Undefined: {
                const std::string& t = tokens_[i];
                std::string out;
                out.reserve(t.size());
                for (size_t p = 0; p < t.size();) {
                    if (t.compare(p, kSpace.size(), kSpace) == 0) {
                        out += ' ';
                        p += kSpace.size();
                    } else {
                        out += t[p++];
                    }
                }
                return out;
            }
            case TokenType::UserDefined: return tokens_[i];
            case TokenType::Byte: {
                auto it = byte_value_.find(id);
                return it == byte_value_.end() ? tokens_[i] : std::string(1, static_cast<char>(it->second));
            }
            case TokenType::Unknown: return kUnknownPiece;
            case TokenType::Control:
            case TokenType::Unused: return {};
        }
        return {};
    }

private:
    struct Symbol {
        int prev;
        int next;
        size_t pos;  // byte offset in the escaped fragment
        size_t n;    // byte length; 0 once merged into its left neighbour
    };
    struct Bigram {
        int left;
        int right;
        float score;
        size_t size;
    };
    struct BigramOrder {  // top of the queue: highest score, then leftmost
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };

    // Bytes of the character at s[pos]: char_len of the lead byte, but only as far as continuation
    // bytes follow. Invalid UTF-8 (a lead byte without its continuations) is a 1-byte symbol, so it
    // can never swallow the first byte of a following "▁" and turn a space into raw bytes of
    // U+2581 (decode(encode(s)) == s holds for any bytes). Valid UTF-8 splits as before.
    static size_t symbol_len(const std::string& s, size_t pos) {
        const size_t n = std::min(s.size() - pos, char_len(static_cast<uint8_t>(s[pos])));
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<uint8_t>(s[pos + k]) & 0xC0) != 0x80) return 1;
        return n;
    }

    void encode_fragment(const std::string& s, std::vector<int32_t>& out) const {
        std::vector<Symbol> syms;
        syms.reserve(s.size());
        for (size_t pos = 0; pos < s.size();) {
            const size_t len = symbol_len(s, pos);
            const int idx = static_cast<int>(syms.size());
            syms.push_back({idx - 1, pos + len == s.size() ? -1 : idx + 1, pos, len});
            pos += len;
        }
        std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
        auto try_add = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const Symbol& l = syms[static_cast<size_t>(left)];
            const Symbol& r = syms[static_cast<size_t>(right)];
            const std::string_view merged(s.data() + l.pos, l.n + r.n);
            auto id = lookup(merged);
            if (!id) return;
            queue.push({left, right, scores_[static_cast<size_t>(*id)], merged.size()});
        };
        for (size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

        while (!queue.empty()) {
            const Bigram b = queue.top();
            queue.pop();
            Symbol& l = syms[static_cast<size_t>(b.left)];
            Symbol& r = syms[static_cast<size_t>(b.right)];
            if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = b.left;
            try_add(l.prev, b.left);
            try_add(b.left, l.next);
        }

        for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
            const Symbol& sym = syms[static_cast<size_t>(i)];
            const std::string_view piece(s.data() + sym.pos, sym.n);
            if (auto id = lookup(piece)) {
                out.push_back(*id);
                continue;
            }
            // Merged symbols are always tokens; only single characters can miss: emit their bytes.
            for (char c : piece) {
                const int32_t bid = byte_ids_[static_cast<uint8_t>(c)];
                if (bid >= 0) {
                    out.push_back(bid);
                } else if (unk_id_ >= 0) {
                    out.push_back(unk_id_);
                }
            }
        }
    }

    std::vector<float> scores_;
    int32_t byte_ids_[256];
    std::unordered_map<int32_t, uint8_t> byte_value_;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_spm(VocabSpec spec) {
    auto tok = std::make_unique<SpmTokenizer>(spec);
    return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace pl::tok
