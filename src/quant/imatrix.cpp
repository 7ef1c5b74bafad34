// SPDX-License-Identifier: MIT
#include "quant/imatrix.h"

#include "format/gguf.h"
#include "quant/formats.h"

#include <cmath>
#include <cstring>

namespace pl {

const std::vector<float>* Imatrix::find(const std::string& weight_name) const {
    auto it = data.find(weight_name);
    return it == data.end() ? nullptr : &it->second;
}

Result<const std::vector<float>*> Imatrix::find_checked(const std::string& weight_name, int64_t cols) const {
    const std::vector<float>* v = find(weight_name);
    if (v && static_cast<int64_t>(v->size()) != cols)
        return err("imatrix entry for '{}' has {} columns, but the tensor's rows have {}", weight_name, v->size(), cols);
    return v;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<float> read_f32(const gguf::TensorInfo& t) {
    std::vector<float> v(static_cast<size_t>(t.n_elements()));
    std::memcpy(v.data(), t.data, v.size() * sizeof(float));
    return v;
}

}  // namespace

Result<Imatrix> load_imatrix(const std::string& path) {
    auto file = gguf::File::open(path);
    if (!file) return file.status().with_context(fmt::format("imatrix '{}'", path));
    const gguf::File& f = **file;
    auto ctx = [&](const Status& s) { return s.with_context(fmt::format("imatrix '{}'", path)); };
    Imatrix m;
    {
        auto v = f.get_string("imatrix.dataset");
        if (!v) return ctx(v.status());
        if (*v) m.dataset = **v;
    }
    for (auto [key, out] : {std::pair<const char*, uint32_t*>{"imatrix.chunk_count", &m.chunk_count},
                            std::pair<const char*, uint32_t*>{"imatrix.chunk_size", &m.chunk_size}}) {
        auto v = f.get_u64(key);
        if (!v) return ctx(v.status());
        if (*v) {
            if (**v > UINT32_MAX) return ctx(err("{} = {} does not fit in u32", key, **v));
            *out = static_cast<uint32_t>(**v);
        }
    }
    {
        auto v = f.get_u64("imatrix.token_count");
        if (!v) return ctx(v.status());
        if (*v) m.token_count = **v;
    }

    const std::string suffix = kImatrixSuffix;
    for (const gguf::TensorInfo& t : f.tensors()) {
        if (!ends_with(t.name, suffix)) continue;
        const std::string weight = t.name.substr(0, t.name.size() - suffix.size());
        if (weight.empty()) return ctx(err("tensor '{}' names no weight", t.name));
        if (t.type != static_cast<uint32_t>(GgmlType::F32))
            return ctx(err("tensor '{}' has type {}, expected f32", t.name, type_name(t.type)));
        const bool shape_ok = t.ne.size() == 1 || (t.ne.size() == 2 && t.ne[1] == 1);
        if (!shape_ok || t.ne[0] < 1)
            return ctx(err("tensor '{}' must have shape [cols] (one value per input column), has {} dims", t.name, t.ne.size()));
        std::vector<float> v = read_f32(t);
        // llama.cpp's files store sums with a separate count; ours store means.
        if (const gguf::TensorInfo* c = f.find_tensor(weight + ".counts")) {
            if (c->type != static_cast<uint32_t>(GgmlType::F32) || c->n_elements() != 1)
                return ctx(err("tensor '{}' must be one f32 value", c->name));
            const float count = read_f32(*c)[0];
            if (!(count > 0.0f) || !std::isfinite(count)) return ctx(err("tensor '{}' holds count {}", c->name, count));
            for (float& x : v) x /= count;
        }
        for (size_t j = 0; j < v.size(); ++j)
            if (!std::isfinite(v[j]) || v[j] < 0.0f)
                return ctx(err("tensor '{}' column {} holds {}, expected a finite value >= 0", t.name, j, v[j]));
        m.data.emplace(weight, std::move(v));
    }
    const std::string cov_suffix = kImatrixCovSuffix;
    constexpr int64_t G = kImatrixCovGroup;
    for (const gguf::TensorInfo& t : f.tensors()) {
        if (!ends_with(t.name, cov_suffix)) continue;
        const std::string weight = t.name.substr(0, t.name.size() - cov_suffix.size());
        const std::vector<float>* diag = m.find(weight);
        if (!diag) return ctx(err("tensor '{}' has no '{}{}' beside it", t.name, weight, suffix));
        if (t.type != static_cast<uint32_t>(GgmlType::F32))
            return ctx(err("tensor '{}' has type {}, expected f32", t.name, type_name(t.type)));
        const int64_t groups = static_cast<int64_t>(diag->size()) / G;
        if (t.ne.size() != 3 || t.ne[0] != G || t.ne[1] != G || t.ne[2] != groups)
            return ctx(err("tensor '{}' must have shape [{}, {}, {}] (the full 256-column groups of {} columns)", t.name, G, G,
                           groups, diag->size()));
        std::vector<float> v = read_f32(t);
        for (size_t j = 0; j < v.size(); ++j)
            if (!std::isfinite(v[j])) return ctx(err("tensor '{}' element {} holds {}", t.name, j, v[j]));
        m.cov.emplace(weight, std::move(v));
    }
    if (m.data.empty()) return ctx(err("no '*{}' tensors: not an importance matrix", suffix));
    return m;
}

Status save_imatrix(const Imatrix& m, const std::string& path) {
    gguf::Writer w;
    w.set("general.type", gguf::Value::make_string("imatrix"));
    w.set("imatrix.chunk_count", gguf::Value::make_u32(m.chunk_count));
    w.set("imatrix.chunk_size", gguf::Value::make_u32(m.chunk_size));
    w.set("imatrix.dataset", gguf::Value::make_string(m.dataset));
    w.set("imatrix.token_count", gguf::Value::make_u64(m.token_count));
    for (const auto& [name, v] : m.data) {
        if (v.empty()) return err("imatrix entry '{}' is empty", name);
        w.add_tensor_data(name + kImatrixSuffix, static_cast<uint32_t>(GgmlType::F32), {static_cast<int64_t>(v.size())},
                          std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
    }
    for (const auto& [name, v] : m.cov) {
        const int64_t groups = static_cast<int64_t>(v.size()) / (kImatrixCovGroup * kImatrixCovGroup);
        w.add_tensor_data(name + kImatrixCovSuffix, static_cast<uint32_t>(GgmlType::F32), {kImatrixCovGroup, kImatrixCovGroup, groups},
                          std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
    }
    return w.write(path);
}

}  // namespace pl
