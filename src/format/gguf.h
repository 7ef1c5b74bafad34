// SPDX-License-Identifier: MIT
// GGUF v2/v3 reader and writer.
//
// Reader: mmaps the file, parses header, metadata and tensor infos, and validates every count,
// string length, type, offset, alignment and tensor extent against the file size before anything
// uses them. Any problem gives a Status naming the field ("tensor 'blk.0.attn_q.weight': data ends
// at byte 123456 but the file has 1000 bytes"). Tensor data is used in place (no copies).
//
// Writer: collects metadata and tensor descriptions, then streams the file: header, metadata,
// tensor infos, padding to `general.alignment` (default 32), then each tensor's data (each padded
// to the alignment), asking a callback to fill one tensor at a time so huge models never sit in
// memory at once.
#pragma once

#include "core/mmap_file.h"
#include "core/status.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pl::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS: tensors have 1..4 dims
inline constexpr int kMaxArrayDepth = 8;         // arrays nested deeper than this are refused
// Resource bound: a file may hold at most this many metadata values (array elements included),
// so a small hostile file cannot make the reader build billions of Value objects.
inline constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;

enum class ValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
    String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
    kCount
};
const char* value_type_name(ValueType t);

// One metadata value. Scalars live in u/i/f/b (integers are stored in both u and i when they fit
// either, so callers can read any integer type through the as_* helpers), strings in s, arrays in
// arr (elements of elem_type; nested arrays are allowed by the format).
struct Value {
    ValueType type = ValueType::U32;
    ValueType elem_type = ValueType::U32;  // arrays only
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    bool b = false;
    std::string s;
    std::vector<Value> arr;

    static Value make_u32(uint32_t v);
    static Value make_i32(int32_t v);
    static Value make_u64(uint64_t v);
    static Value make_f32(float v);
    static Value make_bool(bool v);
    static Value make_string(std::string v);
    static Value make_string_array(std::vector<std::string> v);
    static Value make_f32_array(const std::vector<float>& v);
    static Value make_i32_array(const std::vector<int32_t>& v);
    // Remaining scalar types, and a generic array (every element must have type elem_type).
    static Value make_u8(uint8_t v);
    static Value make_i8(int8_t v);
    static Value make_u16(uint16_t v);
    static Value make_i16(int16_t v);
    static Value make_i64(int64_t v);
    static Value make_f64(double v);
    static Value make_array(ValueType elem_type, std::vector<Value> elems);

    bool is_integer() const;
    bool is_float() const { return type == ValueType::F32 || type == ValueType::F64; }
    // Human-readable rendering for `parallama info` (arrays abbreviated after `max_elems`).
    std::string to_string(size_t max_elems = 8) const;
    // "u32", "string", "array[string]", "array[array[i32]]".
    std::string type_string() const;
};

struct TensorInfo {
    std::string name;
    uint32_t type = 0;            // ggml type id (see quant/formats.h)
    std::vector<int64_t> ne;      // dims, ne[0] innermost (the row length), as in GGML
    uint64_t offset = 0;          // relative to the start of the data section
    uint64_t nbytes = 0;          // validated size of the data
    const uint8_t* data = nullptr;  // points into the mapping (reader only)

    int64_t n_elements() const;
    int64_t n_rows() const;       // product of ne[1..]
};

class File {
public:
    // Opens and fully validates a GGUF file.
    static Result<std::unique_ptr<File>> open(const std::string& path);
    // Parses an in-memory buffer (must outlive the File). Used by tests and the fuzzer.
    static Result<std::unique_ptr<File>> parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    const std::string& path() const { return path_; }
    uint64_t data_offset() const { return data_offset_; }
    size_t file_size() const { return bytes_.size(); }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(const std::string& key) const;

    // Typed getters: an absent key gives std::nullopt; a key of the wrong type gives an error Status
    // naming the key and both types. Integer getters accept any integer type whose value fits.
    Result<std::optional<std::string>> get_string(const std::string& key) const;
    Result<std::optional<uint64_t>> get_u64(const std::string& key) const;
    Result<std::optional<int64_t>> get_i64(const std::string& key) const;
    Result<std::optional<double>> get_f64(const std::string& key) const;
    Result<std::optional<bool>> get_bool(const std::string& key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(const std::string& name) const;

private:
    File() = default;
    std::unique_ptr<MappedFile> map_;
    std::span<const uint8_t> bytes_;
    std::string path_;
    uint32_t version_ = 0;
    uint32_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;

    friend class Parser;
};

class Writer {
public:
    // Writes `nbytes` of tensor data into `out` (already sized). Return an error to abort the write.
    using FillFn = std::function<Status(std::span<uint8_t> out)>;

    explicit Writer(uint32_t version = 3) : version_(version) {}
    // Keys are unique; setting a key twice replaces its value. "general.alignment" (U32, power of
    // two) sets the alignment used for the data section.
    void set(const std::string& key, Value v);
    // Tensor bytes are computed from type and dims (quant/formats.h row_bytes); the shape must be
    // valid for the type (ne[0] a multiple of the block size), otherwise write() fails.
    void add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> ne, FillFn fill);
    // Convenience: copies `data` (must be exactly the tensor's size) when writing. Only the span is
    // kept, so the bytes must stay valid until write() returns (no copy of a whole model in RAM).
    void add_tensor_data(const std::string& name, uint32_t type, std::vector<int64_t> ne, std::span<const uint8_t> data);

    // Writes to `path` via a temporary file renamed into place on success (no partial output file
    // is left behind on failure). `progress(done_bytes, total_bytes)` is called after each tensor.
    Status write(const std::string& path, const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

private:
    struct PendingTensor {
        std::string name;
        uint32_t type;
        std::vector<int64_t> ne;
        FillFn fill;
    };
    uint32_t version_;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace pl::gguf
