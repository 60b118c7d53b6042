// Shared helpers of the tokenizer tests: fixture paths, the real SmolLM2 tokenizer from the
// fetched GGUF (tests skip loudly without it), FNV-1a of id sequences.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_spec.h"
#include "data/bpe_tokenizer.h"

namespace smol::test {

inline std::filesystem::path source_dir() {
  return SMOL_SOURCE_DIR;
}
inline std::filesystem::path golden_dir() {
  return source_dir() / "tests/golden/tokenizer";
}
inline std::filesystem::path gguf_path() {
  return source_dir() / "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}
inline std::filesystem::path gsm8k_dir() {
  return source_dir() / "../shared/data/gsm8k";
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_text(path));
}

// FNV-1a 64 over each id's little-endian int32 bytes (as make_golden.py computes it).
inline uint64_t fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int shift = 0; shift < 32; shift += 8) {
      h ^= (u >> shift) & 0xFF;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

// The SmolLM2 BpeSpec from the GGUF (null when the model has not been fetched).
const BpeSpec* smollm_spec();
// A tokenizer over it, shared by the tests of this binary (its cache warms up across tests).
const BpeTokenizer* smollm_tokenizer();

#define SMOL_REQUIRE_SMOLLM()                                                                 \
  do {                                                                                        \
    if (::smol::test::smollm_tokenizer() == nullptr) {                                        \
      GTEST_SKIP() << "\n*** SKIPPED: " << ::smol::test::gguf_path()                          \
                   << " is missing; run scripts/fetch-model.sh to test tokenizer parity ***"; \
    }                                                                                         \
  } while (0)

}  // namespace smol::test
