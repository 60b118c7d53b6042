// Helpers shared by the eval tests: reading the goldens of tests/golden/eval/.
#pragma once

#include <bit>
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace smol::test {

inline nlohmann::json read_eval_golden(const std::string& file) {
  const std::string path = std::string(SMOL_SOURCE_DIR) + "/tests/golden/eval/" + file;
  std::ifstream in(path);
  SMOL_CHECK(in.good(), "cannot open golden ", path);
  return nlohmann::json::parse(in);
}

// A double from its IEEE-754 bits written as 16 hex digits (how the goldens store them, so
// that no decimal conversion stands between Python and us).
inline double double_from_hex_bits(const std::string& hex) {
  return std::bit_cast<double>(static_cast<uint64_t>(std::stoull(hex, nullptr, 16)));
}

}  // namespace smol::test
