// Helpers shared by the data pipeline tests: paths, temporary files, a character-level fake
// tokenizer (one id per byte, so truncation and masking can be checked id by id), the real
// SmolLM2 tokenizer when the GGUF has been fetched.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace smol::test {

inline std::filesystem::path source_dir() {
  return SMOL_SOURCE_DIR;
}
inline std::filesystem::path shared_data_dir() {
  return source_dir() / "../shared/data";
}
inline std::filesystem::path gsm8k_train() {
  return shared_data_dir() / "gsm8k/train.jsonl";
}
inline std::filesystem::path gguf_path() {
  return source_dir() / "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// A fresh directory under the system temp dir, one per test name.
inline std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("smol_data_tests_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

// Byte b -> id b + 3; ids 0, 1, 2 are the specials <eos>, <bos>, <pad> (each -1 when the
// constructor says the tokenizer lacks it). "<eos>" etc. in text become their ids.
class ByteTokenizer : public Tokenizer {
 public:
  ByteTokenizer(bool has_bos = true, bool has_eos = true, bool has_pad = false)
      : bos_(has_bos ? 1 : -1), eos_(has_eos ? 0 : -1), pad_(has_pad ? 2 : -1) {}

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size(); ++i) {
      bool matched = false;
      if (parse_special)
        for (int32_t id = 0; id < 3; ++id)
          if (text.substr(i, kNames[id].size()) == kNames[id]) {
            ids.push_back(id);
            i += kNames[id].size() - 1;
            matched = true;
            break;
          }
      if (!matched) ids.push_back(static_cast<unsigned char>(text[i]) + 3);
    }
    return ids;
  }
  int32_t vocab_size() const override { return 259; }
  std::string id_to_token(int32_t id) const override {
    return id < 3 ? std::string(kNames[id]) : std::string(1, static_cast<char>(id - 3));
  }
  int32_t token_to_id(std::string_view token) const override {
    for (int32_t id = 0; id < 3; ++id)
      if (token == kNames[id]) return id;
    return token.size() == 1 ? static_cast<unsigned char>(token[0]) + 3 : -1;
  }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  int32_t pad_id() const override { return pad_; }
  bool is_special(int32_t id) const override { return id < 3; }
  std::string token_bytes(int32_t id, bool skip_special, bool) const override {
    if (id < 3) return skip_special ? "" : id_to_token(id);
    return id_to_token(id);
  }

  // ids of plain text (no specials), for expectations.
  static std::vector<int32_t> ids(const std::string& text) {
    std::vector<int32_t> out;
    for (unsigned char c : text) out.push_back(c + 3);
    return out;
  }

 private:
  static constexpr std::string_view kNames[3] = {"<eos>", "<bos>", "<pad>"};
  int32_t bos_, eos_, pad_;
};

}  // namespace smol::test
