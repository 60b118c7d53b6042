// GGUF v2/v3 parser (docs/formats.md §3). A bounds-checked cursor walks the header, the metadata
// and the tensor infos; every count is compared with the bytes left before anything is reserved,
// and every tensor's byte range is checked against the data section and the other tensors.
#include "io/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace smol {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxDims = 4;
constexpr uint64_t kMaxTensorNameBytes = 4096;  // spec says 64; accept longer, but bounded
constexpr int kMaxArrayDepth = 8;

// Smallest encoding of a kv pair (empty key, type, 1-byte value) and of a tensor info (empty
// name, n_dims, one dim, type, offset): bounds on how many can fit in the bytes left.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

size_t scalar_size(GgufType type) {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    default:
      return 0;  // string, array: variable
  }
}

bool known_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::F64);
}

// Reads little-endian fields from the mapping; every read is checked against the end.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t bytes, const char* what) const {
    if (bytes > remaining())
      throw_error(path_, ": truncated GGUF: ", what, " needs ", bytes, " bytes at offset ", pos_,
                  " but the file has ", remaining(), " left (file size ", size_, ")");
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, base_ + pos_, sizeof(T));  // the host is little-endian like the file
    pos_ += sizeof(T);
    return value;
  }
  const uint8_t* take(uint64_t bytes, const char* what) {
    need(bytes, what);
    const uint8_t* p = base_ + pos_;
    pos_ += bytes;
    return p;
  }
  std::string read_string(const char* what, uint64_t max_bytes) {
    const uint64_t length = read<uint64_t>(what);
    if (length > max_bytes)
      throw_error(path_, ": ", what, " at offset ", pos_ - 8, " claims ", length, " bytes (limit ",
                  max_bytes, ")");
    const uint8_t* p = take(length, what);
    return std::string(reinterpret_cast<const char*>(p), length);
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

GgufValue read_value(Cursor& in, GgufType type, const std::string& key, const std::string& path,
                     int depth);

GgufValue read_array(Cursor& in, const std::string& key, const std::string& path, int depth) {
  if (depth >= kMaxArrayDepth)
    throw_error(path, ": metadata key '", key, "': arrays nested deeper than ", kMaxArrayDepth);
  GgufValue value;
  value.type = GgufType::Array;
  const uint32_t element_type = in.read<uint32_t>("array element type");
  if (!known_value_type(element_type))
    throw_error(path, ": metadata key '", key, "': unknown array element type ", element_type);
  value.element_type = static_cast<GgufType>(element_type);
  value.count = in.read<uint64_t>("array length");
  const size_t element_size = scalar_size(value.element_type);
  // Each element takes at least this many bytes, so the count is bounded by what is left.
  const uint64_t min_element_bytes = element_size != 0                        ? element_size
                                     : value.element_type == GgufType::String ? 8
                                                                              : 12;
  if (value.count > in.remaining() / min_element_bytes)
    throw_error(path, ": metadata key '", key, "': array of ", value.count, " ",
                gguf_type_name(value.element_type), " elements cannot fit in the ", in.remaining(),
                " bytes left");
  if (element_size != 0) {
    const uint8_t* p = in.take(value.count * element_size, "array data");
    value.raw.assign(p, p + value.count * element_size);
  } else if (value.element_type == GgufType::String) {
    value.strings.reserve(value.count);
    for (uint64_t i = 0; i < value.count; ++i)
      value.strings.push_back(in.read_string("array string", in.remaining()));
  } else {
    // No reserve: a GgufValue is ~150 bytes, so reserving a count of 12-byte nested arrays at
    // every level would cost >10x the file; growth follows the elements actually parsed.
    for (uint64_t i = 0; i < value.count; ++i)
      value.arrays.push_back(read_value(in, GgufType::Array, key, path, depth + 1));
  }
  return value;
}

GgufValue read_value(Cursor& in, GgufType type, const std::string& key, const std::string& path,
                     int depth) {
  GgufValue value;
  value.type = type;
  switch (type) {
    case GgufType::U8:
      value.uint_value = in.read<uint8_t>("u8 value");
      break;
    case GgufType::U16:
      value.uint_value = in.read<uint16_t>("u16 value");
      break;
    case GgufType::U32:
      value.uint_value = in.read<uint32_t>("u32 value");
      break;
    case GgufType::U64:
      value.uint_value = in.read<uint64_t>("u64 value");
      break;
    case GgufType::Bool:
      value.uint_value = in.read<uint8_t>("bool value") != 0;
      break;
    case GgufType::I8:
      value.int_value = in.read<int8_t>("i8 value");
      break;
    case GgufType::I16:
      value.int_value = in.read<int16_t>("i16 value");
      break;
    case GgufType::I32:
      value.int_value = in.read<int32_t>("i32 value");
      break;
    case GgufType::I64:
      value.int_value = in.read<int64_t>("i64 value");
      break;
    case GgufType::F32:
      value.float_value = in.read<float>("f32 value");
      break;
    case GgufType::F64:
      value.float_value = in.read<double>("f64 value");
      break;
    case GgufType::String:
      value.string_value = in.read_string("string value", in.remaining());
      break;
    case GgufType::Array:
      return read_array(in, key, path, depth);
  }
  return value;
}

bool is_power_of_two(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

uint64_t align_up(uint64_t v, uint64_t alignment) {
  return v + (alignment - v % alignment) % alignment;
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::U8:
      return "u8";
    case GgufType::I8:
      return "i8";
    case GgufType::U16:
      return "u16";
    case GgufType::I16:
      return "i16";
    case GgufType::U32:
      return "u32";
    case GgufType::I32:
      return "i32";
    case GgufType::F32:
      return "f32";
    case GgufType::Bool:
      return "bool";
    case GgufType::String:
      return "string";
    case GgufType::Array:
      return "array";
    case GgufType::U64:
      return "u64";
    case GgufType::I64:
      return "i64";
    case GgufType::F64:
      return "f64";
  }
  return "?";
}

GgmlTypeTraits ggml_type_traits(uint32_t id) {
  // ggml.h / ggml-common.h block sizes (checked against gguf-py GGML_QUANT_SIZES).
  switch (id) {
    case 0:
      return {"F32", 1, 4};
    case 1:
      return {"F16", 1, 2};
    case 2:
      return {"Q4_0", 32, 18};
    case 3:
      return {"Q4_1", 32, 20};
    case 6:
      return {"Q5_0", 32, 22};
    case 7:
      return {"Q5_1", 32, 24};
    case 8:
      return {"Q8_0", 32, 34};
    case 9:
      return {"Q8_1", 32, 40};
    case 10:
      return {"Q2_K", 256, 84};
    case 11:
      return {"Q3_K", 256, 110};
    case 12:
      return {"Q4_K", 256, 144};
    case 13:
      return {"Q5_K", 256, 176};
    case 14:
      return {"Q6_K", 256, 210};
    case 15:
      return {"Q8_K", 256, 292};
    case 16:
      return {"IQ2_XXS", 256, 66};
    case 17:
      return {"IQ2_XS", 256, 74};
    case 18:
      return {"IQ3_XXS", 256, 98};
    case 19:
      return {"IQ1_S", 256, 50};
    case 20:
      return {"IQ4_NL", 32, 18};
    case 21:
      return {"IQ3_S", 256, 110};
    case 22:
      return {"IQ2_S", 256, 82};
    case 23:
      return {"IQ4_XS", 256, 136};
    case 24:
      return {"I8", 1, 1};
    case 25:
      return {"I16", 1, 2};
    case 26:
      return {"I32", 1, 4};
    case 27:
      return {"I64", 1, 8};
    case 28:
      return {"F64", 1, 8};
    case 29:
      return {"IQ1_M", 256, 56};
    case 30:
      return {"BF16", 1, 2};
    case 34:
      return {"TQ1_0", 256, 54};
    case 35:
      return {"TQ2_0", 256, 66};
    case 39:
      return {"MXFP4", 32, 17};
    default:
      return {};
  }
}

const char* ggml_type_name(GgmlType type) {
  const char* name = ggml_type_traits(static_cast<uint32_t>(type)).name;
  return name ? name : "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufType::F32 || type == GgufType::F64;
}

int64_t GgufValue::int_at(uint64_t i) const {
  SMOL_CHECK(type == GgufType::Array && i < count, "GGUF array index ", i, " out of range ", count);
  const uint8_t* p = raw.data() + i * scalar_size(element_type);
  auto load = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (element_type) {
    case GgufType::U8:
      return load(uint8_t{});
    case GgufType::I8:
      return load(int8_t{});
    case GgufType::U16:
      return load(uint16_t{});
    case GgufType::I16:
      return load(int16_t{});
    case GgufType::U32:
      return load(uint32_t{});
    case GgufType::I32:
      return load(int32_t{});
    case GgufType::I64:
      return load(int64_t{});
    case GgufType::U64: {
      const uint64_t v = load(uint64_t{});
      SMOL_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                 "GGUF u64 array element ", v, " does not fit int64");
      return static_cast<int64_t>(v);
    }
    default:
      throw_error("GGUF array of ", gguf_type_name(element_type), " is not integer");
  }
}

double GgufValue::float_at(uint64_t i) const {
  SMOL_CHECK(type == GgufType::Array && i < count, "GGUF array index ", i, " out of range ", count);
  const uint8_t* p = raw.data() + i * scalar_size(element_type);
  if (element_type == GgufType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (element_type == GgufType::F64) {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  return static_cast<double>(int_at(i));
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // bounded at parse time
  return n;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile gguf;
  gguf.file_ = std::make_shared<MappedFile>(path);
  const uint64_t file_size = gguf.file_->size();
  Cursor in(gguf.file_->bytes(), file_size, path);

  // ---- header --------------------------------------------------------------------------
  if (file_size < 4) throw_error(path, ": not a GGUF file (only ", file_size, " bytes)");
  const uint32_t magic = in.read<uint32_t>("magic");
  if (magic != kGgufMagic) throw_error(path, ": not a GGUF file (bad magic; expected 'GGUF')");
  gguf.version_ = in.read<uint32_t>("version");
  if (gguf.version_ == 0x03000000 || gguf.version_ == 0x02000000)
    throw_error(path, ": big-endian GGUF files are not supported");
  if (gguf.version_ != 2 && gguf.version_ != 3)
    throw_error(path, ": unsupported GGUF version ", gguf.version_, " (supported: 2, 3)");
  const uint64_t tensor_count = in.read<uint64_t>("tensor count");
  const uint64_t kv_count = in.read<uint64_t>("metadata kv count");
  if (kv_count > in.remaining() / kMinKvBytes)
    throw_error(path, ": absurd metadata kv count ", kv_count, " for a file of ", file_size,
                " bytes");
  if (tensor_count > in.remaining() / kMinTensorInfoBytes)
    throw_error(path, ": absurd tensor count ", tensor_count, " for a file of ", file_size,
                " bytes");

  // ---- metadata --------------------------------------------------------------------------
  // Reserves are capped: a kv pair in memory is ~14x its smallest encoding, and a count is only
  // bounded by the bytes left (docs/design.md §9.1: memory a small multiple of the file).
  gguf.metadata_.reserve(std::min<uint64_t>(kv_count, 1024));
  for (uint64_t k = 0; k < kv_count; ++k) {
    std::string key = in.read_string("metadata key", in.remaining());
    const uint32_t type = in.read<uint32_t>("metadata value type");
    if (!known_value_type(type))
      throw_error(path, ": metadata key '", key, "' has unknown value type ", type);
    GgufValue value = read_value(in, static_cast<GgufType>(type), key, path, 0);
    if (gguf.metadata_index_.count(key)) throw_error(path, ": duplicate metadata key '", key, "'");
    gguf.metadata_index_[key] = gguf.metadata_.size();
    gguf.metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = gguf.find("general.alignment")) {
    if (!a->is_integer())
      throw_error(path, ": general.alignment has type ", gguf_type_name(a->type),
                  ", expected an integer");
    const uint64_t alignment = a->type == GgufType::I8 || a->type == GgufType::I16 ||
                                       a->type == GgufType::I32 || a->type == GgufType::I64
                                   ? static_cast<uint64_t>(a->int_value)
                                   : a->uint_value;
    if (!is_power_of_two(alignment) || alignment > (1u << 30))
      throw_error(path, ": general.alignment ", alignment, " is not a power of two <= 2^30");
    gguf.alignment_ = alignment;
  }

  // ---- tensor infos ----------------------------------------------------------------------
  gguf.tensors_.reserve(std::min<uint64_t>(tensor_count, 4096));
  for (uint64_t t = 0; t < tensor_count; ++t) {
    GgufTensorInfo info;
    info.name = in.read_string("tensor name", kMaxTensorNameBytes);
    const uint32_t n_dims = in.read<uint32_t>("tensor n_dims");
    if (n_dims < 1 || n_dims > kMaxDims)
      throw_error(path, ": tensor '", info.name, "' has n_dims ", n_dims, " (expected 1..",
                  kMaxDims, ")");
    // Bound the element count so numel · bytes can never overflow: 2^60 elements.
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t extent = in.read<uint64_t>("tensor dimension");
      if (extent > (uint64_t{1} << 60) || (extent != 0 && numel > (uint64_t{1} << 60) / extent))
        throw_error(path, ": tensor '", info.name, "' has an absurd shape (dimension ", d, " = ",
                    extent, ")");
      numel *= extent;
      info.ne.push_back(static_cast<int64_t>(extent));
    }
    const uint32_t type_id = in.read<uint32_t>("tensor type");
    const GgmlTypeTraits traits = ggml_type_traits(type_id);
    if (traits.name == nullptr)
      throw_error(path, ": tensor '", info.name, "' has unknown ggml type ", type_id);
    info.type = static_cast<GgmlType>(type_id);
    if (info.ne[0] % traits.block_elems != 0)
      throw_error(path, ": tensor '", info.name, "' of type ", traits.name,
                  " has ne[0] = ", info.ne[0], ", not a multiple of its block size ",
                  traits.block_elems);
    info.size_bytes = numel / traits.block_elems * traits.block_bytes;
    info.offset = in.read<uint64_t>("tensor offset");
    if (info.offset % gguf.alignment_ != 0)
      throw_error(path, ": tensor '", info.name, "' offset ", info.offset,
                  " is not a multiple of the alignment ", gguf.alignment_);
    if (gguf.tensor_index_.count(info.name))
      throw_error(path, ": duplicate tensor name '", info.name, "'");
    gguf.tensor_index_[info.name] = gguf.tensors_.size();
    gguf.tensors_.push_back(std::move(info));
  }

  // ---- data section ----------------------------------------------------------------------
  gguf.data_offset_ = align_up(in.position(), gguf.alignment_);
  const uint64_t data_bytes = gguf.data_offset_ <= file_size ? file_size - gguf.data_offset_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& info : gguf.tensors_) {
    if (info.offset > data_bytes || info.size_bytes > data_bytes - info.offset)
      throw_error(path, ": tensor '", info.name, "' data [", info.offset, ", ",
                  info.offset + info.size_bytes, ") lies past the end of the data section (",
                  data_bytes, " bytes from offset ", gguf.data_offset_, "): truncated file?");
    info.data = gguf.file_->bytes() + gguf.data_offset_ + info.offset;
    by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1];
    if (prev.offset + prev.size_bytes > by_offset[i]->offset && prev.size_bytes != 0 &&
        by_offset[i]->size_bytes != 0)
      throw_error(path, ": tensors '", prev.name, "' and '", by_offset[i]->name,
                  "' overlap in the data section");
  }
  return gguf;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {
const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) throw_error(f.path(), ": missing metadata key '", key, "'");
  return *v;
}

[[noreturn]] void wrong_type(const GgufFile& f, const std::string& key, const GgufValue& v,
                             const char* expected) {
  throw_error(f.path(), ": metadata key '", key, "' has type ", gguf_type_name(v.type),
              ", expected ", expected);
}
}  // namespace

std::optional<int64_t> GgufFile::get_int_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_integer()) wrong_type(*this, key, *v, "an integer");
  switch (v->type) {
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      return v->int_value;
    default:
      if (v->uint_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw_error(path(), ": metadata key '", key, "' value ", v->uint_value,
                    " does not fit int64");
      return static_cast<int64_t>(v->uint_value);
  }
}

int64_t GgufFile::get_int(const std::string& key) const {
  require(*this, key);
  return *get_int_opt(key);
}

std::optional<double> GgufFile::get_float_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_float()) return v->float_value;
  if (v->is_integer()) return static_cast<double>(*get_int_opt(key));
  wrong_type(*this, key, *v, "a number");
}

double GgufFile::get_float(const std::string& key) const {
  require(*this, key);
  return *get_float_opt(key);
}

std::optional<bool> GgufFile::get_bool_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufType::Bool) wrong_type(*this, key, *v, "bool");
  return v->uint_value != 0;
}

bool GgufFile::get_bool(const std::string& key) const {
  require(*this, key);
  return *get_bool_opt(key);
}

std::optional<std::string> GgufFile::get_string_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != GgufType::String) wrong_type(*this, key, *v, "string");
  return v->string_value;
}

std::string GgufFile::get_string(const std::string& key) const {
  require(*this, key);
  return *get_string_opt(key);
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufType::Array || v.element_type != GgufType::String)
    wrong_type(*this, key, v, "array of string");
  return v.strings;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  GgufValue probe;
  probe.type = v.element_type;
  if (v.type != GgufType::Array || !probe.is_integer())
    wrong_type(*this, key, v, "array of integers");
  std::vector<int64_t> out(v.count);
  for (uint64_t i = 0; i < v.count; ++i) {
    try {
      out[i] = v.int_at(i);
    } catch (const Error& e) {
      throw_error(path(), ": metadata key '", key, "': ", e.what());
    }
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (t == nullptr) throw_error(path(), ": missing tensor '", name, "'");
  return *t;
}

}  // namespace smol
