// SPDX-License-Identifier: MIT
// libFuzzer target for the GGUF reader: parse arbitrary bytes, then walk everything a caller could
// touch (metadata rendering, typed getters, every tensor's data range). Any crash, sanitizer report
// or broken invariant (a tensor outside the input) is a bug in src/format/gguf.cpp.
#include "format/gguf.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace {

size_t walk(const pl::gguf::Value& v, int depth) {
    size_t n = v.s.size() + static_cast<size_t>(v.u) + static_cast<size_t>(v.is_integer()) + (v.is_float() ? 1 : 0);
    if (depth > pl::gguf::kMaxArrayDepth + 1) std::abort();  // the reader must bound nesting
    for (const auto& e : v.arr) {
        if (e.type != v.elem_type) std::abort();  // arrays are homogeneous
        n += walk(e, depth + 1);
    }
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto r = pl::gguf::File::parse({data, size}, "fuzz");
    if (!r) {
        if (r.error_message().empty()) std::abort();  // failures always explain themselves
        return 0;
    }
    const pl::gguf::File& f = **r;
    volatile size_t sink = 0;
    for (const auto& [key, v] : f.metadata()) {
        sink = sink + key.size() + walk(v, 0) + v.to_string().size() + v.type_string().size();
        if (f.find(key) != &v) std::abort();
        (void)f.get_string(key);
        (void)f.get_u64(key);
        (void)f.get_i64(key);
        (void)f.get_f64(key);
        (void)f.get_bool(key);
    }
    for (const auto& t : f.tensors()) {
        if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) std::abort();
        if (t.nbytes == 0 || t.ne.empty() || t.ne.size() > pl::gguf::kMaxDims) std::abort();
        if (f.find_tensor(t.name) != &t) std::abort();
        sink = sink + t.data[0] + t.data[t.nbytes - 1] + static_cast<size_t>(t.n_elements() + t.n_rows());
    }
    (void)sink;
    return 0;
}
