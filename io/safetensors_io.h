// safetensors reading and atomic writing (docs/formats.md §4).
//
// SafetensorsFile maps a file, parses and checks its header completely (bounded length, JSON,
// known dtypes, shape × dtype size == byte range, entries contiguous from 0 with no holes or
// overlap, last end == buffer size) before anything reads tensor bytes.
// write_safetensors writes path + ".tmp" and renames it over path, so readers never see a
// half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/host_tensor.h"
#include "io/mapped_file.h"

namespace smol {

// Element size of a safetensors dtype name ("F32" → 4), 0 if the name is not a dtype.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsEntry {
  std::string name;
  std::string dtype;              // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;     // [] for a scalar
  uint64_t begin = 0, end = 0;    // byte range relative to the data buffer
  const uint8_t* data = nullptr;  // inside the mapping; valid while the file lives

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the safetensors crate

  // Throws smol::Error naming the file on any malformation.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // sorted by name
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;   // nullptr when absent
  const SafetensorsEntry& entry(const std::string& name) const;  // throws when absent

  // F32 / F16 / BF16 entries as fp32 (stored_dtype = the file's dtype; rank ≤ 4).
  HostTensor read_f32(const std::string& name) const;
  // Integer entries (I8..I64, U8..U32, BOOL) widened; throws for floats and for I64/U64
  // values outside the target type.
  std::vector<int32_t> read_i32(const std::string& name) const;
  std::vector<int64_t> read_i64(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write. The builders copy (or convert) the values into `bytes`.
struct SafetensorsWriteEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16" or "I32"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  static SafetensorsWriteEntry f32(std::string name, std::vector<int64_t> shape,
                                   const float* values);
  // fp32 values rounded to bf16 (nearest even), as torch's .to(torch.bfloat16).
  static SafetensorsWriteEntry bf16(std::string name, std::vector<int64_t> shape,
                                    const float* values);
  static SafetensorsWriteEntry i32(std::string name, std::vector<int64_t> shape,
                                   const int32_t* values);
  static SafetensorsWriteEntry from_host(std::string name, const HostTensor& tensor);
};

// Writes entries (any order; stored sorted by name) with __metadata__ = {"format": "pt"} plus
// `metadata`; header space-padded to a multiple of 8. Atomic: path + ".tmp", then rename.
// Throws smol::Error naming the path on duplicate names, inconsistent sizes or IO failure.
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace smol
