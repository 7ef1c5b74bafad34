// SPDX-License-Identifier: MIT
// parallama tokenize: shows how a model's tokenizer splits a text.
//   default: one line per token, "id<TAB>'piece'" (control tokens show their text; bytes that are
//            not printable UTF-8 are escaped as \n, \t, \r, \xNN so each token stays on one line)
//   --ids:   the ids only, space-separated on one line
// Only the GGUF metadata is read, so vocabulary-only files work too.
#include "command.h"

#include "core/utf8.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <cstdio>

namespace pl::cli {
namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    bool ids_only = false;
    bool no_bos = false;
    bool special = false;
};

std::string escape_piece(const std::string& s) {
    std::string out;
    size_t pos = 0;
    while (pos < s.size()) {
        const size_t start = pos;
        uint32_t cp = 0;
        if (!utf8::decode(s, pos, cp)) {
            out += fmt::format("\\x{:02X}", static_cast<uint8_t>(s[pos]));
            ++pos;
            continue;
        }
        switch (cp) {
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            case '\\': out += "\\\\"; break;
            default:
                if (cp < 0x20 || cp == 0x7F) {
                    out += fmt::format("\\x{:02X}", cp);
                } else {
                    out.append(s, start, pos - start);
                }
        }
    }
    return out;
}

int run_tokenize(const TokenizeOptions& o) {
    auto file = gguf::File::open(o.model);
    if (!file) return fail("tokenize", file.status());
    auto tok = Tokenizer::from_gguf(**file);
    if (!tok) return fail("tokenize", tok.status());
    const Tokenizer& tk = **tok;
    const std::vector<int32_t> ids = tk.encode(o.text, !o.no_bos && tk.add_bos_default(), o.special);
    std::string out;
    if (o.ids_only) {
        for (size_t i = 0; i < ids.size(); ++i) out += fmt::format("{}{}", i ? " " : "", ids[i]);
        out += '\n';
    } else {
        for (int32_t id : ids) out += fmt::format("{}\t'{}'\n", id, escape_piece(tk.render_token(id)));
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

const CommandRegistrar kTokenize({"tokenize", "Show the token ids (and pieces) a model's tokenizer gives a text", 30,
                                  [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<TokenizeOptions>();
    app.add_option("-m,--model", o->model, "Model or vocabulary GGUF file")->required();
    app.add_option("text", o->text, "Text to tokenize")->required();
    app.add_flag("--ids", o->ids_only, "Print only the ids, space-separated on one line");
    app.add_flag("--no-bos", o->no_bos, "Do not add BOS even when the model asks for it");
    app.add_flag("--special", o->special, "Recognise control tokens (\"<|im_start|>\") in the text");
    return [o] { return run_tokenize(*o); };
}});

}  // namespace
}  // namespace pl::cli
