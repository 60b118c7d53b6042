// Shared by the model benchmarks (model_bench, decode_bench): wall time since a point, and a
// fixed pseudo-random token sequence (ids in [17, 49017), inside SmolLM2's vocabulary).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace smol::bench {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline std::vector<int32_t> tokens(size_t n, uint32_t salt) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i)
    ids[i] = static_cast<int32_t>((i * 2654435761u + salt) % 49000) + 17;
  return ids;
}

}  // namespace smol::bench
