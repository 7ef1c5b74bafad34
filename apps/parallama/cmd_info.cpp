// SPDX-License-Identifier: MIT
// parallama info FILE: what is inside a GGUF file.
//   header:   GGUF version, alignment, data section offset, file size
//   metadata: one line per key: name, type, value (arrays abbreviated to --max-elems elements)
//   tensors:  index, name, type, shape (GGML order, ne[0] first), bytes, offset in the data section
//   totals:   tensor count, parameters, bytes, bits per weight
// The whole file is validated first (format/gguf.h); a bad file gives one line
// "parallama info: error: <file>: <what is wrong>" on stderr and exit code 1.
#include "command.h"

#include "format/gguf.h"
#include "quant/formats.h"

#include <algorithm>
#include <cstdio>
#include <memory>

namespace pl::cli {
namespace {

struct InfoOptions {
    std::string file;
    size_t max_elems = 8;
    bool no_tensors = false;
};

// Keys and tensor names are valid UTF-8 but may hold control characters; keep one item per line.
std::string printable(std::string_view s) {
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<uint8_t>(ch);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += ch;
    }
    return out;
}

std::string human_bytes(uint64_t n) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string shape_string(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
    return s + "]";
}

int run_info(const InfoOptions& o) {
    auto opened = gguf::File::open(o.file);
    if (!opened) return fail("info", opened.status());
    const gguf::File& f = **opened;

    std::string out;
    out += fmt::format("file:       {}\n", f.path());
    out += fmt::format("size:       {} bytes ({})\n", f.file_size(), human_bytes(f.file_size()));
    out += fmt::format("gguf:       version {}, alignment {}, data section at offset {}\n", f.version(),
                       f.alignment(), f.data_offset());

    out += fmt::format("metadata:   {} keys\n", f.metadata().size());
    size_t key_w = 0, type_w = 0;
    for (const auto& [key, v] : f.metadata()) {
        key_w = std::max(key_w, printable(key).size());
        type_w = std::max(type_w, v.type_string().size());
    }
    key_w = std::min<size_t>(key_w, 48);
    for (const auto& [key, v] : f.metadata()) {
        std::string value = v.to_string(o.max_elems);
        if (v.type == gguf::ValueType::Array) value = fmt::format("({} elements) {}", v.arr.size(), value);
        out += fmt::format("  {:<{}}  {:<{}}  {}\n", printable(key), key_w, v.type_string(), type_w, value);
    }

    uint64_t params = 0, bytes = 0;
    for (const auto& t : f.tensors()) {
        params += static_cast<uint64_t>(t.n_elements());
        bytes += t.nbytes;
    }
    out += fmt::format("tensors:    {}\n", f.tensors().size());
    if (!o.no_tensors && !f.tensors().empty()) {
        size_t name_w = 4, shape_w = 5;
        for (const auto& t : f.tensors()) {
            name_w = std::max(name_w, printable(t.name).size());
            shape_w = std::max(shape_w, shape_string(t.ne).size());
        }
        name_w = std::min<size_t>(name_w, 64);
        const size_t idx_w = std::max<size_t>(1, std::to_string(f.tensors().size() - 1).size());
        out += fmt::format("  {:>{}}  {:<{}}  {:<7}  {:<{}}  {:>12}  {:>12}\n", "#", idx_w, "name", name_w, "type",
                           "shape", shape_w, "bytes", "offset");
        for (size_t k = 0; k < f.tensors().size(); ++k) {
            const auto& t = f.tensors()[k];
            out += fmt::format("  {:>{}}  {:<{}}  {:<7}  {:<{}}  {:>12}  {:>12}\n", k, idx_w, printable(t.name), name_w,
                               type_name(t.type), shape_string(t.ne), shape_w, t.nbytes, t.offset);
        }
    }
    const double bpw = params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
    out += fmt::format("total:      {} params, {} bytes ({}), {:.2f} bits per weight\n", params, bytes,
                       human_bytes(bytes), bpw);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

const CommandRegistrar kInfo({"info", "Show a GGUF file's header, metadata and tensor table (validates the file)", 10,
                              [](CLI::App& app) -> RunFn {
    auto o = std::make_shared<InfoOptions>();
    app.add_option("file", o->file, "GGUF file")->required();
    app.add_option("--max-elems", o->max_elems, "Array elements shown per metadata key")->capture_default_str();
    app.add_flag("--no-tensors", o->no_tensors, "Leave out the tensor table (totals are still printed)");
    return [o] { return run_info(*o); };
}});

}  // namespace
}  // namespace pl::cli
