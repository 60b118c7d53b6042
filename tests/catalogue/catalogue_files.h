// Small valid inputs and the corruptions the bad-input catalogue makes of them
// (docs/bad-inputs.md). Every bad file is written on the fly into the case's own temporary
// directory from a small valid one: the tiny random Llama of tests/golden/model/tiny (its
// config.json and model.safetensors, 320 KB) with a byte-level tokenizer.json made here, the
// first bytes of the real SmolLM2 GGUF (its header and metadata only), and configs/tiny_gsm8k.yaml.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/catalogue/child_process.h"

namespace smol::test {

namespace fs = std::filesystem;

inline const std::string kSourceDir = SMOL_SOURCE_DIR;
inline const std::string kBinary = SMOLENGINE_BINARY;
inline const std::string kTinyModelDir = kSourceDir + "/tests/golden/model/tiny";
inline const std::string kGgufFile = kSourceDir + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
inline const std::string kDataDir = kSourceDir + "/../shared/data";
inline const std::string kTinyConfig = kSourceDir + "/configs/tiny_gsm8k.yaml";

inline void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The first `n` bytes of a file (all of it when shorter).
inline std::string head_of(const fs::path& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

inline void put_u64(std::string& bytes, size_t offset, uint64_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);  // little-endian hosts only
}
inline void put_u32(std::string& bytes, size_t offset, uint32_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the others to U+0100...
inline std::string byte_level_char(int byte) {
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  int code = byte;
  if (!printable(byte)) {
    int n = 0;
    for (int b = 0; b < byte; ++b)
      if (!printable(b)) ++n;
    code = 256 + n;
  }
  std::string utf8;
  if (code < 0x80) {
    utf8 += static_cast<char>(code);
  } else {
    utf8 += static_cast<char>(0xC0 | (code >> 6));
    utf8 += static_cast<char>(0x80 | (code & 0x3F));
  }
  return utf8;
}

// A byte-level BPE tokenizer.json with no merges: ids 0..255 are the bytes, 256 is
// <|endoftext|>, 257..299 special placeholders. Every byte of a prompt is one token, so a prompt's
// length in tokens is its length in bytes — which is how the catalogue writes a prompt longer than
// the tiny model's 128-token context.
inline nlohmann::ordered_json byte_level_tokenizer_json() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(b)] = b;
  nlohmann::ordered_json tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  // <|endoftext|> and <extra_257>..<extra_299>: the vocabulary is the tiny model's 300, so
  // anything the model generates decodes.
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (int id = 256; id < 300; ++id)
    added.push_back(
        {{"id", id},
         {"content", id == 256 ? "<|endoftext|>" : "<extra_" + std::to_string(id) + ">"},
         {"single_word", false},
         {"lstrip", false},
         {"rstrip", false},
         {"normalized", false},
         {"special", true}});
  tok["added_tokens"] = added;
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}};
  tok["post_processor"] = nullptr;
  tok["decoder"] = {{"type", "ByteLevel"}};
  tok["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"vocab", vocab},
                  {"merges", nlohmann::ordered_json::array()}};
  return tok;
}

// A copy of the tiny model directory (config.json, generation_config.json, model.safetensors)
// plus the byte-level tokenizer.json, at `dir`.
inline void copy_tiny_model(const fs::path& dir) {
  fs::create_directories(dir);
  for (const char* name : {"config.json", "generation_config.json", "model.safetensors"})
    fs::copy_file(fs::path(kTinyModelDir) / name, dir / name, fs::copy_options::overwrite_existing);
  write_file(dir / "tokenizer.json", byte_level_tokenizer_json().dump());
}

// A safetensors file split into its JSON header and its data bytes, to corrupt and re-write.
struct SafetensorsParts {
  nlohmann::ordered_json header;
  std::string data;
};

inline SafetensorsParts read_safetensors_parts(const fs::path& path) {
  const std::string bytes = slurp(path.string());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof n);
  return {nlohmann::ordered_json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

inline std::string safetensors_bytes(const std::string& header_text, const std::string& data) {
  std::string bytes(8, '\0');
  put_u64(bytes, 0, header_text.size());
  return bytes + header_text + data;
}

inline std::string safetensors_bytes(const SafetensorsParts& parts) {
  return safetensors_bytes(parts.header.dump(), parts.data);
}

}  // namespace smol::test
