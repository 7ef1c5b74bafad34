// SPDX-License-Identifier: MIT
// libFuzzer target for the safetensors reader (src/format/safetensors.cpp): parse arbitrary bytes
// as a file, then check what the header comment promises (every tensor inside the data buffer,
// byte size = shape x dtype size, no two non-empty tensors overlapping, sorted by offset, names
// found) and convert the first and last row of every float tensor.
#include "format/safetensors.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "safetensors_fuzz: invariant broken: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace st = pl::safetensors;
    auto r = st::File::parse({data, size}, "fuzz.safetensors");
    if (!r) {
        if (r.error_message().empty()) fail("error without a message");
        return 0;
    }
    const st::File& f = **r;
    const auto& ts = f.tensors();
    for (size_t i = 0; i < ts.size(); ++i) {
        const st::TensorInfo& t = ts[i];
        if (t.begin > t.end) fail("reversed offsets");
        if (t.nbytes() > size || t.data < data || t.data + t.nbytes() > data + size) fail("tensor outside the input");
        int64_t n = t.n_elements();
        if (n < 0) fail("negative element count");
        if (static_cast<uint64_t>(n) * st::dtype_size(t.dtype) != t.nbytes()) fail("nbytes != elements x dtype size");
        if (f.find(t.name) != &t) fail("find(name) does not give the tensor");
        if (i > 0 && ts[i - 1].begin > t.begin) fail("not sorted by offset");
        for (size_t j = 0; j < i; ++j) {
            const st::TensorInfo& a = ts[j];
            if (a.nbytes() && t.nbytes() && a.begin < t.end && t.begin < a.end) fail("overlapping tensors accepted");
        }
        if (!st::is_float_dtype(t.dtype) || n == 0) continue;
        const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
        if (cols == 0) continue;
        std::vector<float> row(static_cast<size_t>(std::min<int64_t>(cols, 1 << 16)));
        const int64_t take = static_cast<int64_t>(row.size());
        if (!st::read_f32(t, 0, take, row.data())) fail("read_f32 refused a float tensor");
        if (!st::read_f32(t, n - take, take, row.data())) fail("read_f32 refused a float tensor");
    }
    for (const auto& [k, v] : f.metadata()) {
        volatile size_t sink = k.size() + v.size();
        (void)sink;
    }
    return 0;
}
