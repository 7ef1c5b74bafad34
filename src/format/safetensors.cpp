// SPDX-License-Identifier: MIT
#include "format/safetensors.h"

#include "core/fp16.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

namespace pl::safetensors {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct DtypeRow {
    Dtype d;
    const char* name;
    size_t size;
};
constexpr DtypeRow kDtypes[] = {
    {Dtype::Bool, "BOOL", 1}, {Dtype::U8, "U8", 1},       {Dtype::I8, "I8", 1},
    {Dtype::I16, "I16", 2},   {Dtype::U16, "U16", 2},     {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2}, {Dtype::I32, "I32", 4},     {Dtype::U32, "U32", 4},
    {Dtype::F32, "F32", 4},   {Dtype::F64, "F64", 8},     {Dtype::I64, "I64", 8},
    {Dtype::U64, "U64", 8},   {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::F8_E5M2, "F8_E5M2", 1},
};
static_assert(std::size(kDtypes) == static_cast<size_t>(Dtype::kCount));

// The format caps the header at 100 MB (safetensors' own reader refuses more).
constexpr uint64_t kMaxHeader = 100ull << 20;

// Product of dims times elem size, or an error on negative dims / overflow.
Result<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, size_t elem) {
    unsigned __int128 n = elem;
    for (int64_t d : shape) {
        n *= static_cast<uint64_t>(d);
        if (n > (static_cast<unsigned __int128>(1) << 62)) return err("size overflows");
    }
    return static_cast<uint64_t>(n);
}

Status parse_tensor(const std::string& name, const json& v, uint64_t data_size, TensorInfo& t) {
    if (!v.is_object()) return err("tensor '{}': entry is not an object", name);
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return err("tensor '{}': missing or non-string \"dtype\"", name);
    if (sh == v.end() || !sh->is_array()) return err("tensor '{}': missing or non-array \"shape\"", name);
    if (off == v.end() || !off->is_array() || off->size() != 2)
        return err("tensor '{}': \"data_offsets\" must be an array [begin, end]", name);
    auto dtype = parse_dtype(dt->get<std::string>());
    if (!dtype) return dtype.status().with_context(fmt::format("tensor '{}'", name));
    t.name = name;
    t.dtype = *dtype;
    for (const auto& d : *sh) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0)
            return err("tensor '{}': shape entries must be non-negative integers, got {}", name, d.dump());
        t.shape.push_back(d.get<int64_t>());
    }
    for (const auto& o : *off)
        if (!o.is_number_unsigned()) return err("tensor '{}': data_offsets must be non-negative integers", name);
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.begin > t.end) return err("tensor '{}': data_offsets [{}, {}] are reversed", name, t.begin, t.end);
    if (t.end > data_size)
        return err("tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes)", name, t.begin,
                   t.end, data_size);
    auto nbytes = checked_nbytes(t.shape, dtype_size(t.dtype));
    if (!nbytes) return nbytes.status().with_context(fmt::format("tensor '{}'", name));
    if (*nbytes != t.end - t.begin)
        return err("tensor '{}': shape [{}] of {} needs {} bytes but data_offsets [{}, {}] hold {}", name,
                   fmt::join(t.shape, ", "), dtype_name(t.dtype), *nbytes, t.begin, t.end, t.end - t.begin);
    return Status::ok();
}

}  // namespace

const char* dtype_name(Dtype d) {
    for (const auto& r : kDtypes)
        if (r.d == d) return r.name;
    return "?";
}

size_t dtype_size(Dtype d) {
    for (const auto& r : kDtypes)
        if (r.d == d) return r.size;
    return 0;
}

Result<Dtype> parse_dtype(std::string_view s) {
    for (const auto& r : kDtypes)
        if (s == r.name) return r.d;
    return err("unknown dtype \"{}\"", s);
}

bool is_float_dtype(Dtype d) { return d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16 || d == Dtype::F64; }

int64_t TensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

Result<std::unique_ptr<File>> File::parse(std::span<const uint8_t> bytes, std::string name) {
    auto ctx = [&](const Status& s) { return s.with_context(name); };
    if (bytes.size() < 8) return ctx(err("file has {} bytes, too short for the 8-byte header length", bytes.size()));
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    if (n > bytes.size() - 8)
        return ctx(err("header length {} runs past the end of the file ({} bytes)", n, bytes.size()));
    if (n > kMaxHeader) return ctx(err("header length {} exceeds the 100 MB limit", n));
    const char* hb = reinterpret_cast<const char*>(bytes.data() + 8);
    json j = json::parse(hb, hb + n, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return ctx(err("header ({} bytes) is not valid JSON", n));
    if (!j.is_object()) return ctx(err("header is not a JSON object"));

    std::unique_ptr<File> f(new File());
    f->path_ = std::move(name);
    const uint8_t* data = bytes.data() + 8 + n;
    const uint64_t data_size = bytes.size() - 8 - n;
    try {
        for (auto it = j.begin(); it != j.end(); ++it) {
            if (it.key() == "__metadata__") {
                if (!it.value().is_object()) return ctx(err("__metadata__ is not an object"));
                for (auto m = it.value().begin(); m != it.value().end(); ++m) {
                    if (!m.value().is_string()) return ctx(err("__metadata__['{}'] is not a string", m.key()));
                    f->metadata_[m.key()] = m.value().get<std::string>();
                }
                continue;
            }
            TensorInfo t;
            PL_TRY(ctx(parse_tensor(it.key(), it.value(), data_size, t)));
            t.data = data + t.begin;
            f->tensors_.push_back(std::move(t));
        }
    } catch (const json::exception& e) {  // type mismatches not caught above
        return ctx(err("malformed header: {}", e.what()));
    }
    std::sort(f->tensors_.begin(), f->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Sorted by begin, a non-empty tensor overlaps an earlier one exactly when it starts before the
    // furthest end seen so far. Empty tensors never overlap (and must not hide an overlap by
    // sitting between two tensors that do).
    const TensorInfo* reach = nullptr;  // the non-empty tensor seen so far that ends last
    for (const auto& b : f->tensors_) {
        if (b.begin == b.end) continue;
        if (reach && b.begin < reach->end)
            return ctx(err("tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", reach->name, reach->begin, reach->end,
                           b.name, b.begin, b.end));
        if (!reach || b.end > reach->end) reach = &b;
    }
    for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
    return f;
}

Result<std::unique_ptr<File>> File::open(const std::string& path) {
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    PL_ASSIGN_OR_RETURN(auto f, parse(map->bytes(), path));
    f->map_ = std::move(map);
    return f;
}

const TensorInfo* File::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<Model> Model::open_dir(const std::string& dir) {
    Model m;
    std::vector<std::string> shard_names;
    const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
    std::map<std::string, std::string> weight_map;
    std::error_code ec;
    if (fs::exists(index_path, ec)) {
        PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(index_path.string()));
        const char* p = reinterpret_cast<const char*>(map->data());
        json j = json::parse(p, p + map->size(), nullptr, false);
        if (j.is_discarded() || !j.is_object()) return err("{}: not a valid JSON object", index_path.string());
        auto wm = j.find("weight_map");
        if (wm == j.end() || !wm->is_object()) return err("{}: no \"weight_map\" object", index_path.string());
        std::set<std::string> shards;
        for (auto it = wm->begin(); it != wm->end(); ++it) {
            if (!it.value().is_string()) return err("{}: weight_map['{}'] is not a string", index_path.string(), it.key());
            const std::string shard = it.value().get<std::string>();
            if (shard.find('/') != std::string::npos || shard == "..")
                return err("{}: shard name '{}' must be a plain file name", index_path.string(), shard);
            weight_map[it.key()] = shard;
            shards.insert(shard);
        }
        shard_names.assign(shards.begin(), shards.end());
    } else {
        if (!fs::is_directory(dir, ec)) return err("{}: not a directory", dir);
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.path().extension() == ".safetensors") shard_names.push_back(e.path().filename().string());
        if (ec) return err("{}: cannot list directory: {}", dir, ec.message());
        std::sort(shard_names.begin(), shard_names.end());
        if (shard_names.empty()) return err("{}: no *.safetensors files (and no model.safetensors.index.json)", dir);
    }
    for (const auto& s : shard_names) {
        const std::string p = (fs::path(dir) / s).string();
        if (!fs::exists(p, ec)) return err("{}: shard '{}' named by the index is missing", dir, s);
        PL_ASSIGN_OR_RETURN(auto f, File::open(p));
        m.files_.push_back(std::move(f));
    }
    for (const auto& f : m.files_) {
        for (const auto& t : f->tensors()) {
            auto [it, inserted] = m.by_name_.emplace(t.name, &t);
            if (!inserted) return err("tensor '{}' appears in two shards ({} and another)", t.name, f->path());
        }
    }
    if (!weight_map.empty()) {
        std::vector<std::string> missing;
        for (const auto& [name, shard] : weight_map) {
            auto it = m.by_name_.find(name);
            if (it == m.by_name_.end()) missing.push_back(name + " (in " + shard + ")");
        }
        if (!missing.empty())
            return err("{}: {} tensor(s) listed in the index are missing from their shards: {}", dir, missing.size(),
                       fmt::join(missing.begin(), missing.begin() + std::min<size_t>(missing.size(), 8), ", "));
    }
    return m;
}

const TensorInfo* Model::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> Model::names() const {
    std::vector<std::string> out;
    for (const auto& [n, t] : by_name_) out.push_back(n);
    return out;
}

Status read_f32(const TensorInfo& t, int64_t first, int64_t n, float* out) {
    const size_t es = dtype_size(t.dtype);
    const uint8_t* p = t.data + static_cast<size_t>(first) * es;
    switch (t.dtype) {
        case Dtype::F32:
            std::memcpy(out, p, static_cast<size_t>(n) * 4);
            return Status::ok();
        case Dtype::F16:
        case Dtype::BF16: {
            const bool half = t.dtype == Dtype::F16;
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                out[i] = half ? fp16_to_fp32(h) : bf16_to_fp32(h);
            }
            return Status::ok();
        }
        case Dtype::F64:
            for (int64_t i = 0; i < n; ++i) {
                double d;
                std::memcpy(&d, p + 8 * i, 8);
                out[i] = static_cast<float>(d);
            }
            return Status::ok();
        default:
            return err("tensor '{}': dtype {} cannot be converted to float (expected F32, F16, BF16 or F64)", t.name,
                       dtype_name(t.dtype));
    }
}

}  // namespace pl::safetensors
