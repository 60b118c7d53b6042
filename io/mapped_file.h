// MappedFile: a whole file mapped read-only into memory (POSIX mmap), so that multi-hundred-MB
// weight files are paged in lazily and never copied. Readers (GGUF, safetensors) validate every
// offset against size() before touching bytes(): the mapping itself is never trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace smol {

class MappedFile {
 public:
  // Throws smol::Error naming `path` if it is missing, not a regular file, or unreadable.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* bytes() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;  // nullptr for an empty file
  size_t size_ = 0;
};

}  // namespace smol
