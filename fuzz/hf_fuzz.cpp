// SPDX-License-Identifier: MIT
// libFuzzer target for the Hugging Face folder importer's JSON readers (src/convert/): the input
// becomes a file in a scratch folder (under $TMPDIR, one per process) and the importer reads it.
// The first byte picks the file:
//   even: config.json, then hf_to_gguf on the folder (it holds no safetensors, so a config that
//         passes read_config stops at the tensor listing; nothing is written);
//   odd:  tokenizer.json, then set_hf_tokenizer with a fixed config; bytes after the first NUL,
//         when there is one, become tokenizer_config.json.
// Any crash, sanitizer report or escaped exception is a bug; every failure must say why.
#include "convert/convert.h"
#include "convert/hf_tokenizer.h"
#include "format/gguf.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "hf_fuzz: invariant broken: %s\n", what);
    std::abort();
}

const std::string& scratch() {
    static const std::string dir = [] {
        const char* t = std::getenv("TMPDIR");
        std::string d = std::string(t && *t ? t : "/tmp") + "/pl-hf-fuzz-" + std::to_string(::getpid());
        fs::create_directories(d);
        return d;
    }();
    return dir;
}

void put(const std::string& name, std::string_view bytes) {
    const std::string path = scratch() + "/" + name;
    if (bytes.data() == nullptr) {
        std::error_code ec;
        fs::remove(path, ec);
        return;
    }
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) fail("cannot write the scratch file");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if ((data[0] & 1) == 0) {
        put("config.json", rest);
        pl::convert::HfOptions opt;
        opt.dir = scratch();
        opt.output = scratch() + "/out.gguf";
        opt.progress = false;
        pl::Status s = pl::convert::hf_to_gguf(opt);
        if (s) fail("converted a folder without tensors");
        if (s.message().empty()) fail("error without a message");
        return 0;
    }
    const size_t nul = rest.find('\0');
    put("tokenizer.json", rest.substr(0, nul));
    put("tokenizer_config.json", nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1));
    static const nlohmann::json config = {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", 0}};
    pl::gguf::Writer w;
    const int64_t n_vocab = 1 + (data[0] >> 1) * 4;  // 1..509 embedding rows
    pl::Status s = pl::convert::set_hf_tokenizer(w, scratch(), n_vocab, config);
    if (!s && s.message().empty()) fail("error without a message");
    return 0;
}
