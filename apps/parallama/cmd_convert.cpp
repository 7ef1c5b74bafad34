// SPDX-License-Identifier: MIT
// `parallama convert`: llama2.c checkpoints and Hugging Face folders -> GGUF (see docs/convert.md).
#include "command.h"

#include "convert/convert.h"

#include <memory>

namespace pl::cli {
namespace {

struct ConvertArgs {
    std::string llama2c;
    std::string tokenizer;
    std::string hf;
    std::string output;
    std::string outtype = "f32";
    std::string name;
    bool quiet = false;
};

int run_convert(const ConvertArgs& a) {
    auto outtype = convert::parse_outtype(a.outtype);
    if (!outtype) return fail("convert", outtype.status());
    if (a.llama2c.empty() == a.hf.empty())
        return fail("convert", err("give exactly one source: --llama2c MODEL.bin (with --tokenizer) or --hf DIR"));
    Status s;
    if (!a.llama2c.empty()) {
        if (a.tokenizer.empty()) return fail("convert", err("--llama2c needs --tokenizer tokenizer.bin"));
        convert::Llama2cOptions o;
        o.checkpoint = a.llama2c;
        o.tokenizer = a.tokenizer;
        o.output = a.output;
        o.outtype = *outtype;
        o.name = a.name;
        o.progress = !a.quiet;
        s = convert::llama2c_to_gguf(o);
    } else {
        if (!a.tokenizer.empty()) return fail("convert", err("--tokenizer only applies to --llama2c (--hf reads tokenizer.json)"));
        convert::HfOptions o;
        o.dir = a.hf;
        o.output = a.output;
        o.outtype = *outtype;
        o.name = a.name;
        o.progress = !a.quiet;
        s = convert::hf_to_gguf(o);
    }
    if (!s) return fail("convert", s);
    if (!a.quiet) std::fprintf(stderr, "wrote %s\n", a.output.c_str());
    return 0;
}

const CommandRegistrar reg{{
    "convert",
    "Convert a llama2.c checkpoint or a Hugging Face LLaMA folder to GGUF",
    60,
    [](CLI::App& app) -> RunFn {
        auto a = std::make_shared<ConvertArgs>();
        app.add_option("--llama2c", a->llama2c, "llama2.c checkpoint (model.bin)")->check(CLI::ExistingFile);
        app.add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer.bin (with --llama2c)")->check(CLI::ExistingFile);
        app.add_option("--hf", a->hf, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
            ->check(CLI::ExistingDirectory);
        app.add_option("-o,--output", a->output, "Output .gguf file")->required();
        app.add_option("--outtype", a->outtype, "Type of weight matrices: f32, f16, bf16, q8_0 (norms stay f32)")
            ->capture_default_str();
        app.add_option("--name", a->name, "general.name (default: input file or folder name)");
        app.add_flag("-q,--quiet", a->quiet, "No per-tensor progress on stderr");
        return [a] { return run_convert(*a); };
    },
}};

}  // namespace
}  // namespace pl::cli
