// SPDX-License-Identifier: MIT
// safetensors reader (Hugging Face checkpoints), single file or sharded with an index.
//
// File layout: u64 little-endian N = header length, then N bytes of UTF-8 JSON, then the data
// buffer. The JSON maps tensor names to {"dtype": "F32", "shape": [rows, cols], "data_offsets":
// [begin, end]} (offsets relative to the data buffer, end exclusive) plus an optional
// "__metadata__" object of string to string. Tensors are row-major (last dim innermost).
//
// Everything is validated before use: header length within the file, JSON well formed, known dtype,
// non-negative shape whose byte size (overflow-checked) equals end - begin, offsets inside the data
// buffer, and no two tensors overlapping. Errors name the file and the tensor. Data is used in
// place from a read-only mapping; nothing is copied until a caller converts a row.
#pragma once

#include "core/mmap_file.h"
#include "core/status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace pl::safetensors {

enum class Dtype { Bool, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2, kCount };

const char* dtype_name(Dtype d);
size_t dtype_size(Dtype d);
// "F32" -> Dtype::F32; unknown strings give an error naming the string.
Result<Dtype> parse_dtype(std::string_view s);

struct TensorInfo {
    std::string name;
    Dtype dtype = Dtype::F32;
    std::vector<int64_t> shape;   // row-major, shape.back() innermost
    uint64_t begin = 0;           // byte offsets in the data buffer
    uint64_t end = 0;
    const uint8_t* data = nullptr;  // into the mapping (or the parsed buffer)

    int64_t n_elements() const;
    size_t nbytes() const { return static_cast<size_t>(end - begin); }
};

class File {
public:
    // Maps and validates `path`.
    static Result<std::unique_ptr<File>> open(const std::string& path);
    // Validates an in-memory image (must outlive the File). Used by tests and fuzzing.
    static Result<std::unique_ptr<File>> parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

    const std::string& path() const { return path_; }
    // Tensors sorted by data offset (file order).
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    File() = default;
    std::unique_ptr<MappedFile> map_;
    std::string path_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors.index.json ("weight_map": name -> shard
// file) when present, otherwise every *.safetensors file in the directory. Every tensor named by the
// index must be present in its shard; a name appearing in two shards is an error.
class Model {
public:
    static Result<Model> open_dir(const std::string& dir);

    const TensorInfo* find(const std::string& name) const;
    // Names of all tensors, sorted.
    std::vector<std::string> names() const;
    const std::vector<std::unique_ptr<File>>& files() const { return files_; }

private:
    std::vector<std::unique_ptr<File>> files_;
    std::map<std::string, const TensorInfo*> by_name_;
};

// Converts `n` elements starting at element `first` of `t` to float. Supported dtypes: F32, F16,
// BF16, F64 (an error Status otherwise). The caller guarantees first + n <= n_elements().
Status read_f32(const TensorInfo& t, int64_t first, int64_t n, float* out);
bool is_float_dtype(Dtype d);

}  // namespace pl::safetensors
