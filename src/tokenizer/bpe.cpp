// SPDX-License-Identifier: MIT
// Byte-level BPE tokenizer ("gpt2" in GGUF), compatible with llama.cpp's llm_tokenizer_bpe and
// HF tokenizers' BPE + ByteLevel:
//  - special tokens are split out first, then each raw fragment is pre-tokenized by the regex list
//    of tokenizer.ggml.pre (pretokenize.cpp) into words;
//  - each word's bytes are mapped to GPT-2 stand-in characters, then adjacent symbols are merged
//    by merge rank (lowest rank first, leftmost on ties) with a priority queue.
// Words are short, so the cost is linear in the text length times a small log factor.
#include "core/log.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer_impl.h"

#include <queue>

namespace pl::tok {
namespace {

class BpeTokenizer final : public TokenizerCommon {
public:
    std::string_view kind() const override { return "bpe"; }

    static Result<std::unique_ptr<Tokenizer>> create(VocabSpec& spec) {
        auto def = pre_tokenizer_def(spec.pre);
        if (!def)
            return err("tokenizer: unsupported tokenizer.ggml.pre '{}' (supported: {})", spec.pre,
                       known_pre_tokenizers());
        if (spec.merges.empty()) return err("tokenizer: tokenizer.ggml.merges is missing or empty (needed by gpt2 BPE)");
        PL_ASSIGN_OR_RETURN(auto splitter, RegexSplitter::create(def->patterns));
        std::vector<std::string> merges = std::move(spec.merges);

        std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
        t->init_common(spec);
        t->splitter_ = std::move(splitter);
        t->ignore_merges_ = def->ignore_merges;
        t->add_bos_ = spec.add_bos.value_or(def->add_bos);
        t->add_space_prefix_ = spec.add_space_prefix.value_or(false);
        PL_TRY(t->load_merges(merges));
        return std::unique_ptr<Tokenizer>(std::move(t));
    }

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
        std::vector<int32_t> out;
        if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
        std::vector<std::pair<size_t, size_t>> words;
        std::string mapped;
        for (const Fragment& f : partition(text, parse_special)) {
            if (f.token >= 0) {
                out.push_back(f.token);
                continue;
            }
            std::string_view frag = text.substr(f.begin, f.end - f.begin);
            std::string prefixed;
            if (add_space_prefix_) {  // rare for BPE vocabularies, but honour the flag
                prefixed = " ";
                prefixed += frag;
                frag = prefixed;
            }
            words.clear();
            splitter_->split(frag, words);
            for (auto [b, e] : words) {
                mapped.clear();
                for (size_t i = b; i < e; ++i) mapped += byte_to_unicode(static_cast<uint8_t>(frag[i]));
                encode_word(mapped, out);
            }
        }
        return out;
    }

    std::string token_to_piece(int32_t id) const override {
        if (id < 0 || id >= n_vocab()) return {};
        const auto i = static_cast<size_t>(id);
        switch (types_[i]) {
            case TokenType::Control:
            case TokenType::Unknown:
            case TokenType::Unused: return {};
            case TokenType::UserDefined: return tokens_[i];
            default: break;
        }
        // Normal (and Byte/Undefined): undo the byte-level mapping; a character that is not a
        // stand-in (malformed vocab) is kept as its UTF-8.
        const std::string& t = tokens_[i];
        std::string out;
        out.reserve(t.size());
        size_t pos = 0;
        while (pos < t.size()) {
            const size_t start = pos;
            uint32_t cp = 0;
            if (!utf8::decode(t, pos, cp)) {
                out += t[pos++];
                continue;
            }
            const int b = unicode_to_byte(cp);
            if (b >= 0) {
                out += static_cast<char>(b);
            } else {
                out.append(t, start, pos - start);
            }
        }
        return out;
    }

private:
    BpeTokenizer() = default;

    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    struct Merge {
        int32_t rank;
        int32_t result;
    };

    Status load_merges(const std::vector<std::string>& merges) {
        merges_.reserve(merges.size());
        size_t skipped = 0;
        for (size_t r = 0; r < merges.size(); ++r) {
            const std::string& m = merges[r];
            // Split at the first space after the first character (a part is never empty).
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (sp == std::string::npos || sp + 1 >= m.size())
                return err("tokenizer: merge {} ('{}') is not two space-separated parts", r, m);
            const std::string_view left(m.data(), sp);
            const std::string_view right(m.data() + sp + 1, m.size() - sp - 1);
            auto l = lookup(left), rr = lookup(right);
            auto res = lookup(std::string(left) + std::string(right));
            if (!l || !rr || !res) {
                ++skipped;  // a merge whose parts or result are not tokens can never apply here
                continue;
            }
            merges_.emplace(pair_key(*l, *rr), Merge{static_cast<int32_t>(r), *res});
        }
        if (skipped) PL_LOG_WARN("tokenizer: ignored {} of {} merges that name unknown tokens", skipped, merges.size());
        return Status::ok();
    }

    struct Symbol {
        int prev;
        int next;
        int32_t id;  // -1 once merged into its left neighbour
    };
    struct Bigram {
        int left;
        int right;
        int32_t rank;
        int32_t left_id;
        int32_t right_id;
    };
    struct BigramOrder {  // top of the queue: lowest rank, then leftmost
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        }
    };

    void encode_word(const std::string& word, std::vector<int32_t>& out) const {
        if (ignore_merges_) {
            if (auto id = lookup(word)) {
                out.push_back(*id);
                return;
            }
        }
        std::vector<Symbol> syms;
        syms.reserve(word.size());
        for (size_t pos = 0; pos < word.size();) {
            const size_t len = std::min(word.size() - pos, char_len(static_cast<uint8_t>(word[pos])));
            auto id = lookup(std::string_view(word.data() + pos, len));
            pos += len;
            if (!id) {  // cannot happen with a complete byte-level vocabulary
                if (unk_id_ >= 0) out.push_back(unk_id_);
                continue;
            }
            const int idx = static_cast<int>(syms.size());
            syms.push_back({idx - 1, idx + 1, *id});
        }
        if (syms.empty()) return;
        syms.back().next = -1;

        std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
        auto try_add = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const int32_t a = syms[static_cast<size_t>(left)].id, b = syms[static_cast<size_t>(right)].id;
            auto it = merges_.find(pair_key(a, b));
            if (it == merges_.end()) return;
            queue.push({left, right, it->second.rank, a, b});
        };
        for (size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

        while (!queue.empty()) {
            const Bigram bg = queue.top();
            queue.pop();
            Symbol& l = syms[static_cast<size_t>(bg.left)];
            Symbol& r = syms[static_cast<size_t>(bg.right)];
            // Stale when either side has merged since (ids changed or the pair is no longer adjacent).
            if (l.id != bg.left_id || r.id != bg.right_id || l.next != bg.right) continue;
            l.id = merges_.at(pair_key(bg.left_id, bg.right_id)).result;
            r.id = -1;
            l.next = r.next;
            if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = bg.left;
            try_add(l.prev, bg.left);
            try_add(bg.left, l.next);
        }
        for (int i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) out.push_back(syms[static_cast<size_t>(i)].id);
    }

    std::unique_ptr<RegexSplitter> splitter_;
    std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and merged id
    bool ignore_merges_ = false;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe(VocabSpec spec) { return BpeTokenizer::create(spec); }

}  // namespace pl::tok
