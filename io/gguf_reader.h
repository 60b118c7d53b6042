// GgufFile: a parser for GGUF v2/v3 files (docs/formats.md §3): header, metadata of every value
// type (nested arrays included), tensor infos and the aligned data section.
//
// The file is memory-mapped; every count, length, offset and size is validated against the
// file size before it is used, so a truncated, corrupted or hostile file ends in a smol::Error
// naming the file and the problem, never in a crash or an unbounded allocation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.h"

namespace smol {

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType type);

// ggml tensor types, numbered as in ggml.h. Only the ones this engine meets by name; every id
// of ggml's table is known to ggml_type_traits() so sizes of any valid file can be checked.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct GgmlTypeTraits {
  const char* name = nullptr;  // nullptr: the id is not a ggml type
  int64_t block_elems = 0;     // elements per block
  int64_t block_bytes = 0;     // bytes per block
};
// Traits of a ggml type id; name == nullptr for ids ggml does not define.
GgmlTypeTraits ggml_type_traits(uint32_t type_id);
const char* ggml_type_name(GgmlType type);

// One metadata value. Scalars live in the scalar fields; arrays keep their element type and
// count, with numeric/bool payloads as raw little-endian bytes (so a huge u8 array costs its
// size once), strings as strings, and nested arrays as values.
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t uint_value = 0;  // U8, U16, U32, U64, Bool
  int64_t int_value = 0;    // I8, I16, I32, I64
  double float_value = 0;   // F32, F64
  std::string string_value;

  GgufType element_type = GgufType::U8;  // arrays only
  uint64_t count = 0;                    // arrays only
  std::vector<uint8_t> raw;              // numeric/bool arrays: count * element size bytes
  std::vector<std::string> strings;      // string arrays
  std::vector<GgufValue> arrays;         // arrays of arrays

  bool is_integer() const;  // any of the eight integer types (not bool)
  bool is_float() const;    // F32 or F64
  // Element i of a numeric array as int64 / double; throws if not integer / not numeric.
  int64_t int_at(uint64_t i) const;
  double float_at(uint64_t i) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the contiguous dimension (docs/formats.md §3)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;            // relative to the data section
  uint64_t size_bytes = 0;        // ne[0]/block · block_bytes · ne[1] · ...
  const uint8_t* data = nullptr;  // inside the mapping; valid while the GgufFile lives

  int64_t numel() const;
};

class GgufFile {
 public:
  // Maps and parses `path`; throws smol::Error naming the file on any malformation.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  uint64_t file_size() const { return file_->size(); }

  // ---- metadata ---------------------------------------------------------------------------
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw smol::Error naming the file and key when absent or of the wrong type.
  // Integer getters accept every integer type and check the value fits.
  int64_t get_int(const std::string& key) const;
  std::optional<int64_t> get_int_opt(const std::string& key) const;
  double get_float(const std::string& key) const;  // F32/F64, or an integer
  std::optional<double> get_float_opt(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::optional<bool> get_bool_opt(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::optional<std::string> get_string_opt(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  // ---- tensors ----------------------------------------------------------------------------
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
  const GgufTensorInfo& tensor(const std::string& name) const;       // throws when absent

 private:
  GgufFile() = default;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace smol
