// Helpers shared by the weights tests: byte-level builders for GGUF and safetensors files, and
// a per-test temporary directory. Files are built by hand here (not by the code under test)
// so that the reader is checked against the format as docs/formats.md §3/§4 write it.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace smol::test {

using Bytes = std::vector<uint8_t>;

template <typename T>
void put(Bytes& out, T value) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}
inline void put_string(Bytes& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// A fresh directory per test (removed by the destructor).
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("smol_weights_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const Bytes& bytes) const {
    const std::string p = file(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string write_text(const std::string& name, const std::string& text) const {
    return write(name, Bytes(text.begin(), text.end()));
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ---- GGUF ---------------------------------------------------------------------------------
// Value type ids (docs/formats.md §3).
enum : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

struct GgufTensorSpec {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  Bytes data;
  std::optional<uint64_t> offset_override;  // for malformed files
};

class GgufBuilder {
 public:
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  uint64_t alignment = 32;  // used for layout; written as general.alignment only if set via kv
  std::optional<uint64_t> tensor_count_override, kv_count_override;

  // A kv whose value bytes (after the type id) are given raw.
  void kv_raw(const std::string& key, uint32_t type, const Bytes& value) {
    put_string(kvs_, key);
    put<uint32_t>(kvs_, type);
    kvs_.insert(kvs_.end(), value.begin(), value.end());
    ++kv_count_;
  }
  template <typename T>
  void kv(const std::string& key, uint32_t type, T value) {
    Bytes b;
    put<T>(b, value);
    kv_raw(key, type, b);
  }
  void kv_u32(const std::string& key, uint32_t v) { kv<uint32_t>(key, kU32, v); }
  void kv_f32(const std::string& key, float v) { kv<float>(key, kF32, v); }
  void kv_string(const std::string& key, const std::string& v) {
    Bytes b;
    put_string(b, v);
    kv_raw(key, kString, b);
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& v) {
    Bytes b;
    put<uint32_t>(b, kString);
    put<uint64_t>(b, v.size());
    for (const std::string& s : v) put_string(b, s);
    kv_raw(key, kArray, b);
  }
  void kv_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    Bytes b;
    put<uint32_t>(b, kI32);
    put<uint64_t>(b, v.size());
    for (int32_t x : v) put<int32_t>(b, x);
    kv_raw(key, kArray, b);
  }
  void tensor(GgufTensorSpec spec) { tensors_.push_back(std::move(spec)); }

  Bytes build() const {
    Bytes out;
    put<uint32_t>(out, magic);
    put<uint32_t>(out, version);
    put<uint64_t>(out, tensor_count_override.value_or(tensors_.size()));
    put<uint64_t>(out, kv_count_override.value_or(kv_count_));
    out.insert(out.end(), kvs_.begin(), kvs_.end());
    std::vector<uint64_t> offsets;
    uint64_t offset = 0;
    for (const GgufTensorSpec& t : tensors_) {
      offsets.push_back(offset);
      offset += t.data.size();
      offset += (alignment - offset % alignment) % alignment;
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const GgufTensorSpec& t = tensors_[i];
      put_string(out, t.name);
      put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) put<uint64_t>(out, d);
      put<uint32_t>(out, t.type);
      put<uint64_t>(out, t.offset_override.value_or(offsets[i]));
    }
    while (out.size() % alignment != 0) out.push_back(0);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
      while ((out.size()) % alignment != 0 && i + 1 < tensors_.size()) out.push_back(0);
    }
    return out;
  }

 private:
  Bytes kvs_;
  uint64_t kv_count_ = 0;
  std::vector<GgufTensorSpec> tensors_;
};

inline Bytes f32_bytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// ---- safetensors --------------------------------------------------------------------------
// A file from a literal JSON header and a data buffer: u64 length, header, buffer.
inline Bytes safetensors_bytes(const std::string& header, const Bytes& buffer) {
  Bytes out;
  put<uint64_t>(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

}  // namespace smol::test
