// SPDX-License-Identifier: MIT
// GGUF v2/v3 reader and writer (see gguf.h and docs/gguf.md).
//
// The reader never trusts a number from the file: every count and length is checked against the
// bytes that remain before anything is allocated, every addition/multiplication on file values is
// overflow-checked, and all tensor extents are checked against the file size. Errors are Status
// values whose message starts with the file name and names the field and the numbers.
#include "format/gguf.h"

#include "core/utf8.h"
#include "quant/formats.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pl::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint64_t kI64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Smallest encoding of one key/value pair: key length (8) + 1 key byte + value type (4) + 1 byte.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
// Smallest tensor info: name length (8) + 1 name byte + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

bool valid_value_type(uint32_t t) { return t < static_cast<uint32_t>(ValueType::kCount); }

// Encoded size of a scalar, 0 for String/Array.
uint64_t scalar_size(ValueType t) {
    switch (t) {
        case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        default: return 0;
    }
}

// Smallest encoding of one value of type t (string: its length; array: elem type + count).
uint64_t min_value_size(ValueType t) {
    if (t == ValueType::String) return 8;
    if (t == ValueType::Array) return 4 + 8;
    return scalar_size(t);
}

bool is_unsigned_type(ValueType t) {
    return t == ValueType::U8 || t == ValueType::U16 || t == ValueType::U32 || t == ValueType::U64;
}
bool is_signed_type(ValueType t) {
    return t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64;
}

void set_unsigned(Value& v, ValueType t, uint64_t x) {
    v.type = t;
    v.u = x;
    v.i = x <= kI64Max ? static_cast<int64_t>(x) : 0;
}
void set_signed(Value& v, ValueType t, int64_t x) {
    v.type = t;
    v.i = x;
    v.u = x >= 0 ? static_cast<uint64_t>(x) : 0;
}

// Renders a name or string from a file for a one-line message: quoted, control bytes (and all
// bytes >= 0x80 when the string is not valid UTF-8) escaped, long strings cut at a code point
// boundary with the full length appended.
std::string quote(std::string_view s, size_t max_bytes = 96, char q = '\'') {
    const bool valid = utf8::is_valid(s);
    std::string out(1, q);
    size_t n = std::min(s.size(), max_bytes);
    if (valid)
        while (n < s.size() && n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
    for (size_t k = 0; k < n; ++k) {
        const auto c = static_cast<uint8_t>(s[k]);
        if (c == '\\' || c == static_cast<uint8_t>(q)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !valid)) {
            switch (c) {
                case '\n': out += "\\n"; break;
                case '\t': out += "\\t"; break;
                case '\r': out += "\\r"; break;
                default: out += fmt::format("\\x{:02x}", c);
            }
        } else {
            out += static_cast<char>(c);
        }
    }
    if (n < s.size()) out += fmt::format("...{} ({} bytes)", q, s.size());
    else out += q;
    return out;
}

bool checked_add(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }
bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

// Rounds x up to a multiple of `align` (a power of two); false on overflow.
bool align_up(uint64_t x, uint64_t align, uint64_t& out) {
    if (!checked_add(x, align - 1, out)) return false;
    out &= ~(align - 1);
    return true;
}

std::string shape_string(std::span<const int64_t> ne) {
    std::string s = "[";
    for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
    return s + "]";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Value

const char* value_type_name(ValueType t) {
    switch (t) {
        case ValueType::U8: return "u8";
        case ValueType::I8: return "i8";
        case ValueType::U16: return "u16";
        case ValueType::I16: return "i16";
        case ValueType::U32: return "u32";
        case ValueType::I32: return "i32";
        case ValueType::F32: return "f32";
        case ValueType::Bool: return "bool";
        case ValueType::String: return "string";
        case ValueType::Array: return "array";
        case ValueType::U64: return "u64";
        case ValueType::I64: return "i64";
        case ValueType::F64: return "f64";
        default: return "unknown";
    }
}

Value Value::make_u8(uint8_t v) { Value r; set_unsigned(r, ValueType::U8, v); return r; }
Value Value::make_u16(uint16_t v) { Value r; set_unsigned(r, ValueType::U16, v); return r; }
Value Value::make_u32(uint32_t v) { Value r; set_unsigned(r, ValueType::U32, v); return r; }
Value Value::make_u64(uint64_t v) { Value r; set_unsigned(r, ValueType::U64, v); return r; }
Value Value::make_i8(int8_t v) { Value r; set_signed(r, ValueType::I8, v); return r; }
Value Value::make_i16(int16_t v) { Value r; set_signed(r, ValueType::I16, v); return r; }
Value Value::make_i32(int32_t v) { Value r; set_signed(r, ValueType::I32, v); return r; }
Value Value::make_i64(int64_t v) { Value r; set_signed(r, ValueType::I64, v); return r; }

Value Value::make_f32(float v) {
    Value r;
    r.type = ValueType::F32;
    r.f = v;
    return r;
}
Value Value::make_f64(double v) {
    Value r;
    r.type = ValueType::F64;
    r.f = v;
    return r;
}
Value Value::make_bool(bool v) {
    Value r;
    r.type = ValueType::Bool;
    r.b = v;
    r.u = v ? 1 : 0;
    r.i = v ? 1 : 0;
    return r;
}
Value Value::make_string(std::string v) {
    Value r;
    r.type = ValueType::String;
    r.s = std::move(v);
    return r;
}
Value Value::make_array(ValueType elem_type, std::vector<Value> elems) {
    Value r;
    r.type = ValueType::Array;
    r.elem_type = elem_type;
    r.arr = std::move(elems);
    return r;
}
Value Value::make_string_array(std::vector<std::string> v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (auto& s : v) a.push_back(make_string(std::move(s)));
    return make_array(ValueType::String, std::move(a));
}
Value Value::make_f32_array(const std::vector<float>& v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (float x : v) a.push_back(make_f32(x));
    return make_array(ValueType::F32, std::move(a));
}
Value Value::make_i32_array(const std::vector<int32_t>& v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (int32_t x : v) a.push_back(make_i32(x));
    return make_array(ValueType::I32, std::move(a));
}

bool Value::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }

std::string Value::type_string() const {
    if (type != ValueType::Array) return value_type_name(type);
    if (elem_type == ValueType::Array) {
        // Nested arrays may differ per element; describe the first when there is one.
        if (!arr.empty()) return "array[" + arr.front().type_string() + "]";
        return "array[array]";
    }
    return fmt::format("array[{}]", value_type_name(elem_type));
}

std::string Value::to_string(size_t max_elems) const {
    switch (type) {
        case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64:
            return std::to_string(u);
        case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
            return std::to_string(i);
        case ValueType::F32: return fmt::format("{}", static_cast<float>(f));
        case ValueType::F64: return fmt::format("{}", f);
        case ValueType::Bool: return b ? "true" : "false";
        case ValueType::String: return quote(s, 160, '"');
        case ValueType::Array: {
            std::string out = "[";
            const size_t n = std::min(arr.size(), max_elems);
            for (size_t k = 0; k < n; ++k) {
                if (k) out += ", ";
                out += arr[k].to_string(max_elems);
            }
            if (arr.size() > n) out += fmt::format(", ... ({} more, {} total)", arr.size() - n, arr.size());
            return out + "]";
        }
        default: return "?";
    }
}

// ------------------------------------------------------------------------------------------------
// TensorInfo

int64_t TensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

int64_t TensorInfo::n_rows() const {
    int64_t n = 1;
    for (size_t k = 1; k < ne.size(); ++k) n *= ne[k];
    return n;
}

// ------------------------------------------------------------------------------------------------
// Reader

class Parser {
public:
    Parser(std::span<const uint8_t> bytes, File& file) : b_(bytes), f_(file) {}

    Status run() {
        PL_TRY(read_header());
        PL_TRY(read_metadata());
        PL_TRY(read_alignment());
        PL_TRY(read_tensor_infos());
        return check_tensor_data();
    }

private:
    uint64_t remaining() const { return b_.size() - pos_; }

    Status need(uint64_t n, std::string_view what) const {
        if (n <= remaining()) return Status::ok();
        return err("{} at offset {}: needs {} bytes but only {} remain (file size {})", what, pos_, n,
                   remaining(), b_.size());
    }

    template <typename T>
    Status read_pod(T& out, std::string_view what) {
        PL_TRY(need(sizeof(T), what));
        std::memcpy(&out, b_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return Status::ok();
    }

    Status read_string(std::string& out, std::string_view what) {
        uint64_t len = 0;
        const uint64_t at = pos_;
        PL_TRY(read_pod(len, fmt::format("{} length", what)));
        if (len > remaining())
            return err("{} at offset {}: length {} exceeds the {} bytes left in the file (file size {})", what, at,
                       len, remaining(), b_.size());
        out.assign(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(len));
        pos_ += len;
        return Status::ok();
    }

    Status count_values(uint64_t n) {
        if (n > kMaxMetadataValues - n_values_)
            return err("metadata holds more than {} values in total (limit of this reader)", kMaxMetadataValues);
        n_values_ += n;
        return Status::ok();
    }

    Status read_value(ValueType t, Value& out, int depth) {
        switch (t) {
            case ValueType::U8: { uint8_t x; PL_TRY(read_pod(x, "u8 value")); set_unsigned(out, t, x); break; }
            case ValueType::U16: { uint16_t x; PL_TRY(read_pod(x, "u16 value")); set_unsigned(out, t, x); break; }
            case ValueType::U32: { uint32_t x; PL_TRY(read_pod(x, "u32 value")); set_unsigned(out, t, x); break; }
            case ValueType::U64: { uint64_t x; PL_TRY(read_pod(x, "u64 value")); set_unsigned(out, t, x); break; }
            case ValueType::I8: { int8_t x; PL_TRY(read_pod(x, "i8 value")); set_signed(out, t, x); break; }
            case ValueType::I16: { int16_t x; PL_TRY(read_pod(x, "i16 value")); set_signed(out, t, x); break; }
            case ValueType::I32: { int32_t x; PL_TRY(read_pod(x, "i32 value")); set_signed(out, t, x); break; }
            case ValueType::I64: { int64_t x; PL_TRY(read_pod(x, "i64 value")); set_signed(out, t, x); break; }
            case ValueType::F32: {
                float x;
                PL_TRY(read_pod(x, "f32 value"));
                out.type = t;
                out.f = x;
                break;
            }
            case ValueType::F64: {
                double x;
                PL_TRY(read_pod(x, "f64 value"));
                out.type = t;
                out.f = x;
                break;
            }
            case ValueType::Bool: {
                uint8_t x;
                const uint64_t at = pos_;
                PL_TRY(read_pod(x, "bool value"));
                if (x > 1) return err("bool value at offset {} is {} (must be 0 or 1)", at, x);
                out.type = t;
                out.b = x != 0;
                out.u = x;
                out.i = x;
                break;
            }
            case ValueType::String:
                out.type = t;
                PL_TRY(read_string(out.s, "string value"));
                break;
            case ValueType::Array: PL_TRY(read_array(out, depth + 1)); break;
            default: return err("unknown value type {}", static_cast<uint32_t>(t));
        }
        return Status::ok();
    }

    Status read_array(Value& out, int depth) {
        if (depth > kMaxArrayDepth)
            return err("array at offset {} is nested {} levels deep (limit {})", pos_, depth, kMaxArrayDepth);
        uint32_t et = 0;
        const uint64_t type_at = pos_;
        PL_TRY(read_pod(et, "array element type"));
        if (!valid_value_type(et))
            return err("array at offset {}: unknown element type {} (valid: 0..{})", type_at, et,
                       static_cast<uint32_t>(ValueType::kCount) - 1);
        const auto elem = static_cast<ValueType>(et);
        uint64_t count = 0;
        const uint64_t count_at = pos_;
        PL_TRY(read_pod(count, "array element count"));
        const uint64_t min = min_value_size(elem);
        if (count > remaining() / min)
            return err("array at offset {}: {} elements of type {} need at least {} bytes each, but only {} bytes "
                       "remain (file size {})",
                       count_at, count, value_type_name(elem), min, remaining(), b_.size());
        PL_TRY(count_values(count));
        out.type = ValueType::Array;
        out.elem_type = elem;
        out.arr.clear();
        out.arr.resize(static_cast<size_t>(count));
        for (uint64_t k = 0; k < count; ++k) {
            Status s = read_value(elem, out.arr[k], depth);
            if (!s) return s.with_context(fmt::format("array element #{} of {}", k, count));
        }
        return Status::ok();
    }

    Status read_header() {
        if (b_.size() < 4) return err("file is too short ({} bytes) to be a GGUF file", b_.size());
        uint32_t magic = 0;
        PL_TRY(read_pod(magic, "magic"));
        if (magic != kMagic) {
            std::string got;
            for (int k = 0; k < 4; ++k) {
                const auto c = static_cast<uint8_t>(b_[k]);
                got += (c >= 0x20 && c < 0x7f) ? fmt::format("{}", static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
            }
            const bool legacy = magic == 0x67676d6c || magic == 0x67676d66 || magic == 0x67676a74;
            return err("not a GGUF file: magic is \"{}\", expected \"GGUF\"{}", got,
                       legacy ? " (this is a legacy GGML/GGMF/GGJT file; convert it to GGUF)" : "");
        }
        uint32_t version = 0;
        PL_TRY(read_pod(version, "version"));
        if (version == 1)
            return err("GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current "
                       "llama.cpp");
        if (version == 0x02000000 || version == 0x03000000)
            return err("big-endian GGUF files are not supported (version field reads 0x{:08x})", version);
        if (version != 2 && version != 3)
            return err("unsupported GGUF version {} (supported: 2, 3)", version);
        f_.version_ = version;
        PL_TRY(read_pod(n_tensors_, "tensor count"));
        PL_TRY(read_pod(n_kv_, "metadata key count"));
        if (n_kv_ > remaining() / kMinKvBytes)
            return err("metadata key count {} is impossible: each key/value needs at least {} bytes and only {} bytes "
                       "follow the header",
                       n_kv_, kMinKvBytes, remaining());
        if (n_tensors_ > remaining() / kMinTensorInfoBytes ||
            n_tensors_ * kMinTensorInfoBytes > remaining() - n_kv_ * kMinKvBytes)
            return err("tensor count {} is impossible: each tensor info needs at least {} bytes and only {} bytes "
                       "follow the header",
                       n_tensors_, kMinTensorInfoBytes, remaining());
        return Status::ok();
    }

    Status read_metadata() {
        f_.kv_.reserve(static_cast<size_t>(n_kv_));
        for (uint64_t k = 0; k < n_kv_; ++k) {
            std::string key;
            Status s = read_string(key, "key");
            if (!s) return s.with_context(fmt::format("metadata key #{}", k));
            const std::string ctx = fmt::format("metadata key #{} ({})", k, quote(key));
            if (key.empty()) return err("metadata key #{}: key is empty", k);
            if (!utf8::is_valid(key)) return err("{}: key is not valid UTF-8", ctx);
            if (auto it = f_.kv_index_.find(key); it != f_.kv_index_.end())
                return err("{}: duplicate key (first defined as key #{})", ctx, it->second);
            uint32_t type = 0;
            const uint64_t type_at = pos_;
            s = read_pod(type, "value type");
            if (!s) return s.with_context(ctx);
            if (!valid_value_type(type))
                return err("{}: unknown value type {} at offset {} (valid: 0..{})", ctx, type, type_at,
                           static_cast<uint32_t>(ValueType::kCount) - 1);
            s = count_values(1);
            if (!s) return s.with_context(ctx);
            Value v;
            s = read_value(static_cast<ValueType>(type), v, 0);
            if (!s) return s.with_context(ctx);
            f_.kv_index_.emplace(key, f_.kv_.size());
            f_.kv_.emplace_back(std::move(key), std::move(v));
        }
        return Status::ok();
    }

    Status read_alignment() {
        const Value* a = f_.find("general.alignment");
        if (!a) return Status::ok();
        if (a->type != ValueType::U32)
            return err("general.alignment must be of type u32, but it is {}", a->type_string());
        if (a->u == 0 || !std::has_single_bit(a->u))
            return err("general.alignment = {} is not a power of two", a->u);
        f_.alignment_ = static_cast<uint32_t>(a->u);
        return Status::ok();
    }

    Status read_tensor_info(uint64_t idx, TensorInfo& t) {
        Status s = read_string(t.name, "tensor name");
        if (!s) return s.with_context(fmt::format("tensor #{}", idx));
        const std::string ctx = fmt::format("tensor {} (#{})", quote(t.name), idx);
        if (t.name.empty()) return err("tensor #{}: name is empty", idx);
        if (!utf8::is_valid(t.name)) return err("{}: name is not valid UTF-8", ctx);
        if (auto it = f_.tensor_index_.find(t.name); it != f_.tensor_index_.end())
            return err("{}: duplicate tensor name (first used by tensor #{})", ctx, it->second);
        uint32_t n_dims = 0;
        s = read_pod(n_dims, "n_dims");
        if (!s) return s.with_context(ctx);
        if (n_dims < 1 || n_dims > kMaxDims) return err("{}: n_dims = {} (must be 1..{})", ctx, n_dims, kMaxDims);
        uint64_t n_elems = 1;
        t.ne.resize(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t dim = 0;
            s = read_pod(dim, "dimension");
            if (!s) return s.with_context(ctx);
            if (dim < 1 || dim > kI64Max) return err("{}: ne[{}] = {} (must be 1..{})", ctx, d, dim, kI64Max);
            if (n_elems > kI64Max / dim) {
                std::string dims;
                for (uint32_t e = 0; e < d; ++e) dims += std::to_string(t.ne[e]) + " * ";
                return err("{}: element count overflows: {}{} exceeds 2^63-1", ctx, dims, dim);
            }
            n_elems *= dim;
            t.ne[d] = static_cast<int64_t>(dim);
        }
        const uint64_t type_at = pos_;
        s = read_pod(t.type, "tensor type");
        if (!s) return s.with_context(ctx);
        const TypeTraits* tt = type_traits(t.type);
        if (!tt || tt->internal) return err("{}: unknown tensor type {} at offset {}", ctx, t.type, type_at);
        if (t.ne[0] % tt->block_elems != 0)
            return err("{}: ne[0] = {} is not a multiple of the {} block size {}", ctx, t.ne[0], tt->name,
                       tt->block_elems);
        s = read_pod(t.offset, "tensor data offset");
        if (!s) return s.with_context(ctx);
        const uint64_t row = static_cast<uint64_t>(t.ne[0] / tt->block_elems) * tt->block_bytes;
        if (!checked_mul(row, n_elems / static_cast<uint64_t>(t.ne[0]), t.nbytes))
            return err("{}: data size overflows ({} rows of {} bytes)", ctx, n_elems / static_cast<uint64_t>(t.ne[0]),
                       row);
        return Status::ok();
    }

    Status read_tensor_infos() {
        f_.tensors_.reserve(static_cast<size_t>(n_tensors_));
        for (uint64_t k = 0; k < n_tensors_; ++k) {
            TensorInfo t;
            PL_TRY(read_tensor_info(k, t));
            f_.tensor_index_.emplace(t.name, f_.tensors_.size());
            f_.tensors_.push_back(std::move(t));
        }
        return Status::ok();
    }

    Status check_tensor_data() {
        const uint64_t align = f_.alignment_;
        uint64_t data_offset = 0;
        if (!align_up(pos_, align, data_offset))  // cannot happen for pos_ <= SIZE_MAX / 2, kept for safety
            return err("data section offset overflows (end of tensor infos {} aligned to {})", pos_, align);
        f_.data_offset_ = data_offset;
        // Note: a file without tensors may end before its (padded) data section; that is fine.
        for (size_t k = 0; k < f_.tensors_.size(); ++k) {
            TensorInfo& t = f_.tensors_[k];
            if (t.offset % align != 0)
                return err("tensor {} (#{}): data offset {} is not a multiple of the alignment {}", quote(t.name), k,
                           t.offset, align);
            uint64_t start = 0, end = 0;
            if (!checked_add(data_offset, t.offset, start) || !checked_add(start, t.nbytes, end) || end > b_.size())
                return err("tensor {} (#{}): data [offset {}, {} bytes) ends past the end of the file ({} bytes; "
                           "data section starts at {})",
                           quote(t.name), k, t.offset, t.nbytes, b_.size(), data_offset);
            t.data = b_.data() + start;
        }
        std::vector<size_t> order(f_.tensors_.size());
        std::iota(order.begin(), order.end(), size_t{0});
        std::sort(order.begin(), order.end(),
                  [&](size_t a, size_t b) { return f_.tensors_[a].offset < f_.tensors_[b].offset; });
        for (size_t k = 1; k < order.size(); ++k) {
            const TensorInfo& a = f_.tensors_[order[k - 1]];
            const TensorInfo& b = f_.tensors_[order[k]];
            if (a.offset + a.nbytes > b.offset)  // no overflow: both extents were checked above
                return err("tensor {} (#{}): data [offset {}, {} bytes) overlaps tensor {} (#{}) [offset {}, {} bytes)",
                           quote(b.name), order[k], b.offset, b.nbytes, quote(a.name), order[k - 1], a.offset,
                           a.nbytes);
        }
        return Status::ok();
    }

    std::span<const uint8_t> b_;
    File& f_;
    uint64_t pos_ = 0;
    uint64_t n_tensors_ = 0;
    uint64_t n_kv_ = 0;
    uint64_t n_values_ = 0;
};

Result<std::unique_ptr<File>> File::parse(std::span<const uint8_t> bytes, std::string name) {
    std::unique_ptr<File> f(new File());
    f->bytes_ = bytes;
    f->path_ = std::move(name);
    Parser p(bytes, *f);
    Status s;
    try {
        s = p.run();
    } catch (const std::bad_alloc&) {
        s = err("out of memory while reading metadata");
    }
    if (!s) return s.with_context(f->path_);
    return f;
}

Result<std::unique_ptr<File>> File::open(const std::string& path) {
    PL_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    PL_ASSIGN_OR_RETURN(auto f, parse(map->bytes(), path));
    f->map_ = std::move(map);
    return f;
}

const Value* File::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<std::optional<std::string>> File::get_string(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::optional<std::string>();
    if (v->type != ValueType::String)
        return err("{}: key '{}' is {}, expected string", path_, key, v->type_string());
    return std::optional<std::string>(v->s);
}

Result<std::optional<uint64_t>> File::get_u64(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::optional<uint64_t>();
    if (is_unsigned_type(v->type)) return std::optional<uint64_t>(v->u);
    if (is_signed_type(v->type)) {
        if (v->i < 0) return err("{}: key '{}' is {} with value {}, which does not fit u64", path_, key,
                                 v->type_string(), v->i);
        return std::optional<uint64_t>(static_cast<uint64_t>(v->i));
    }
    return err("{}: key '{}' is {}, expected an integer", path_, key, v->type_string());
}

Result<std::optional<int64_t>> File::get_i64(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::optional<int64_t>();
    if (is_signed_type(v->type)) return std::optional<int64_t>(v->i);
    if (is_unsigned_type(v->type)) {
        if (v->u > kI64Max) return err("{}: key '{}' is {} with value {}, which does not fit i64", path_, key,
                                       v->type_string(), v->u);
        return std::optional<int64_t>(static_cast<int64_t>(v->u));
    }
    return err("{}: key '{}' is {}, expected an integer", path_, key, v->type_string());
}

Result<std::optional<double>> File::get_f64(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::optional<double>();
    if (v->is_float()) return std::optional<double>(v->f);
    if (is_unsigned_type(v->type)) return std::optional<double>(static_cast<double>(v->u));
    if (is_signed_type(v->type)) return std::optional<double>(static_cast<double>(v->i));
    return err("{}: key '{}' is {}, expected a number", path_, key, v->type_string());
}

Result<std::optional<bool>> File::get_bool(const std::string& key) const {
    const Value* v = find(key);
    if (!v) return std::optional<bool>();
    if (v->type != ValueType::Bool) return err("{}: key '{}' is {}, expected bool", path_, key, v->type_string());
    return std::optional<bool>(v->b);
}

// ------------------------------------------------------------------------------------------------
// Writer

namespace {

class Buf {
public:
    template <typename T>
    void pod(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        data.insert(data.end(), p, p + sizeof(T));
    }
    void str(const std::string& s) {
        pod<uint64_t>(s.size());
        data.insert(data.end(), s.begin(), s.end());
    }
    std::vector<uint8_t> data;
};

Status check_value(const Value& v, int depth) {
    const auto t = static_cast<uint32_t>(v.type);
    if (!valid_value_type(t)) return err("unknown value type {}", t);
    auto range = [&](uint64_t umax) -> Status {
        if (v.u > umax) return err("{} value {} is out of range", value_type_name(v.type), v.u);
        return Status::ok();
    };
    auto srange = [&](int64_t lo, int64_t hi) -> Status {
        if (v.i < lo || v.i > hi) return err("{} value {} is out of range", value_type_name(v.type), v.i);
        return Status::ok();
    };
    switch (v.type) {
        case ValueType::U8: return range(0xff);
        case ValueType::U16: return range(0xffff);
        case ValueType::U32: return range(0xffffffffu);
        case ValueType::I8: return srange(-128, 127);
        case ValueType::I16: return srange(-32768, 32767);
        case ValueType::I32: return srange(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
        case ValueType::Array: {
            if (depth + 1 > kMaxArrayDepth) return err("arrays nested deeper than {} levels", kMaxArrayDepth);
            if (!valid_value_type(static_cast<uint32_t>(v.elem_type)))
                return err("unknown array element type {}", static_cast<uint32_t>(v.elem_type));
            for (size_t k = 0; k < v.arr.size(); ++k) {
                if (v.arr[k].type != v.elem_type)
                    return err("array element #{} is {}, but the array holds {}", k, value_type_name(v.arr[k].type),
                               value_type_name(v.elem_type));
                Status s = check_value(v.arr[k], depth + 1);
                if (!s) return s.with_context(fmt::format("array element #{}", k));
            }
            return Status::ok();
        }
        default: return Status::ok();
    }
}

void put_value(Buf& b, const Value& v) {
    switch (v.type) {
        case ValueType::U8: b.pod(static_cast<uint8_t>(v.u)); break;
        case ValueType::U16: b.pod(static_cast<uint16_t>(v.u)); break;
        case ValueType::U32: b.pod(static_cast<uint32_t>(v.u)); break;
        case ValueType::U64: b.pod(v.u); break;
        case ValueType::I8: b.pod(static_cast<int8_t>(v.i)); break;
        case ValueType::I16: b.pod(static_cast<int16_t>(v.i)); break;
        case ValueType::I32: b.pod(static_cast<int32_t>(v.i)); break;
        case ValueType::I64: b.pod(v.i); break;
        case ValueType::F32: b.pod(static_cast<float>(v.f)); break;
        case ValueType::F64: b.pod(v.f); break;
        case ValueType::Bool: b.pod(static_cast<uint8_t>(v.b ? 1 : 0)); break;
        case ValueType::String: b.str(v.s); break;
        case ValueType::Array:
            b.pod(static_cast<uint32_t>(v.elem_type));
            b.pod(static_cast<uint64_t>(v.arr.size()));
            for (const Value& e : v.arr) put_value(b, e);
            break;
        default: break;  // rejected by check_value
    }
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
        if (w < 0) {
            if (errno == EINTR) continue;
            return err("write to '{}' failed: {}", path, std::strerror(errno));
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return Status::ok();
}

// A temp file beside the destination, removed unless commit() renamed it into place.
class TempFile {
public:
    Status create(const std::string& dest) {
        dest_ = dest;
        std::string tmpl = dest + ".tmp.XXXXXX";
        fd_ = ::mkstemp(tmpl.data());
        if (fd_ < 0) return err("cannot create a temporary file next to '{}': {}", dest, std::strerror(errno));
        path_ = tmpl;
        ::fchmod(fd_, 0644);
        return Status::ok();
    }
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    Status commit() {
        if (::close(fd_) != 0) {
            fd_ = -1;
            return err("closing '{}' failed: {}", path_, std::strerror(errno));
        }
        fd_ = -1;
        if (::rename(path_.c_str(), dest_.c_str()) != 0)
            return err("cannot rename '{}' to '{}': {}", path_, dest_, std::strerror(errno));
        path_.clear();
        return Status::ok();
    }
    ~TempFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!path_.empty()) ::unlink(path_.c_str());
    }

private:
    int fd_ = -1;
    std::string path_, dest_;
};

}  // namespace

void Writer::set(const std::string& key, Value v) {
    for (auto& [k, val] : kv_) {
        if (k == key) {
            val = std::move(v);
            return;
        }
    }
    kv_.emplace_back(key, std::move(v));
}

void Writer::add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> ne, FillFn fill) {
    tensors_.push_back(PendingTensor{name, type, std::move(ne), std::move(fill)});
}

void Writer::add_tensor_data(const std::string& name, uint32_t type, std::vector<int64_t> ne,
                             std::span<const uint8_t> data) {
    add_tensor(name, type, std::move(ne), [data](std::span<uint8_t> out) -> Status {
        if (data.size() != out.size())
            return err("data has {} bytes but the tensor needs {}", data.size(), out.size());
        if (!data.empty()) std::memcpy(out.data(), data.data(), data.size());
        return Status::ok();
    });
}

Status Writer::write(const std::string& path, const std::function<void(uint64_t, uint64_t)>& progress) const {
    const std::string ctx = fmt::format("writing {}", path);
    if (version_ != 2 && version_ != 3) return err("{}: cannot write GGUF version {} (only 2 and 3)", ctx, version_);

    // Validate everything before the first byte is written.
    uint32_t align = kDefaultAlignment;
    std::set<std::string> seen;
    for (size_t k = 0; k < kv_.size(); ++k) {
        const auto& [key, v] = kv_[k];
        if (key.empty()) return err("{}: metadata key #{} is empty", ctx, k);
        if (!utf8::is_valid(key)) return err("{}: metadata key #{} ({}) is not valid UTF-8", ctx, k, quote(key));
        Status s = check_value(v, 0);
        if (!s) return s.with_context(fmt::format("{}: metadata key {}", ctx, quote(key)));
        if (key == "general.alignment") {
            if (v.type != ValueType::U32 || v.u == 0 || !std::has_single_bit(v.u))
                return err("{}: general.alignment must be a u32 power of two (got {} {})", ctx, v.type_string(),
                           v.to_string());
            align = static_cast<uint32_t>(v.u);
        }
    }
    struct Planned {
        uint64_t offset = 0, nbytes = 0;
    };
    std::vector<Planned> plan(tensors_.size());
    uint64_t data_size = 0;
    for (size_t k = 0; k < tensors_.size(); ++k) {
        const PendingTensor& t = tensors_[k];
        const std::string tctx = fmt::format("{}: tensor {} (#{})", ctx, quote(t.name), k);
        if (t.name.empty()) return err("{}: tensor #{} has an empty name", ctx, k);
        if (!utf8::is_valid(t.name)) return err("{}: name is not valid UTF-8", tctx);
        if (!seen.insert(t.name).second) return err("{}: duplicate tensor name", tctx);
        if (t.ne.empty() || t.ne.size() > kMaxDims) return err("{}: {} dims (must be 1..{})", tctx, t.ne.size(), kMaxDims);
        const TypeTraits* tt = type_traits(t.type);
        if (!tt || tt->internal) return err("{}: unknown tensor type {}", tctx, t.type);
        uint64_t n_rows = 1;
        for (size_t d = 0; d < t.ne.size(); ++d) {
            if (t.ne[d] < 1) return err("{}: ne[{}] = {} (must be >= 1)", tctx, d, t.ne[d]);
            if (d > 0 && !checked_mul(n_rows, static_cast<uint64_t>(t.ne[d]), n_rows))
                return err("{}: shape {} overflows", tctx, shape_string(t.ne));
        }
        const auto row = row_bytes(t.type, t.ne[0]);
        if (!row) return err("{}: ne[0] = {} is not a multiple of the {} block size {}", tctx, t.ne[0], tt->name,
                             tt->block_elems);
        uint64_t nbytes = 0, end = 0;
        if (!checked_mul(*row, n_rows, nbytes) || !align_up(data_size, align, plan[k].offset) ||
            !checked_add(plan[k].offset, nbytes, end) || end > kI64Max)
            return err("{}: shape {} is too large", tctx, shape_string(t.ne));
        plan[k].nbytes = nbytes;
        data_size = end;
    }

    Status result;
    try {
        Buf b;
        b.pod(kMagic);
        b.pod(version_);
        b.pod(static_cast<uint64_t>(tensors_.size()));
        b.pod(static_cast<uint64_t>(kv_.size()));
        for (const auto& [key, v] : kv_) {
            b.str(key);
            b.pod(static_cast<uint32_t>(v.type));
            put_value(b, v);
        }
        for (size_t k = 0; k < tensors_.size(); ++k) {
            const PendingTensor& t = tensors_[k];
            b.str(t.name);
            b.pod(static_cast<uint32_t>(t.ne.size()));
            for (int64_t d : t.ne) b.pod(static_cast<uint64_t>(d));
            b.pod(t.type);
            b.pod(plan[k].offset);
        }
        b.data.resize((b.data.size() + align - 1) / align * align, 0);

        TempFile tmp;
        PL_TRY(tmp.create(path).with_context(ctx));
        PL_TRY(write_all(tmp.fd(), b.data.data(), b.data.size(), tmp.path()));
        uint64_t written = 0;  // bytes of the data section so far
        std::vector<uint8_t> buf;
        for (size_t k = 0; k < tensors_.size(); ++k) {
            const PendingTensor& t = tensors_[k];
            const Planned& p = plan[k];
            if (p.offset > written) {
                buf.assign(static_cast<size_t>(p.offset - written), 0);
                PL_TRY(write_all(tmp.fd(), buf.data(), buf.size(), tmp.path()));
            }
            buf.assign(static_cast<size_t>(p.nbytes), 0);
            Status s = t.fill ? t.fill(std::span<uint8_t>(buf)) : err("no fill function");
            if (!s) return s.with_context(fmt::format("{}: tensor {}", ctx, quote(t.name)));
            PL_TRY(write_all(tmp.fd(), buf.data(), buf.size(), tmp.path()));
            written = p.offset + p.nbytes;
            if (progress) progress(written, data_size);
        }
        uint64_t padded = 0;
        align_up(written, align, padded);
        if (padded > written) {
            buf.assign(static_cast<size_t>(padded - written), 0);
            PL_TRY(write_all(tmp.fd(), buf.data(), buf.size(), tmp.path()));
        }
        result = tmp.commit();
    } catch (const std::exception& e) {
        result = err("{}: {}", ctx, e.what());
    }
    return result;
}

}  // namespace pl::gguf
