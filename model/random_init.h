// SeededRng: a small, portable random generator for initialisers (LoRA A/B, sketches).
//
// xoshiro256** seeded through SplitMix64; normals by Box–Muller in double. std::normal_distribution
// is implementation-defined, so it is not used: the same seed must give the same adapter on
// every platform and compiler. seed_for(seed, name) derives an independent stream per tensor so
// results do not depend on the order tensors are initialised in.
#pragma once

#include <cstdint>
#include <string>

namespace smol {

class SeededRng {
 public:
  explicit SeededRng(uint64_t seed);
  uint64_t next_u64();
  double uniform();                         // [0, 1), 53 bits
  double uniform(double low, double high);  // [low, high)
  double normal();                          // N(0, 1)

  // A seed for tensor `name` under the global `seed` (FNV-1a of the name mixed in).
  static uint64_t seed_for(uint64_t seed, const std::string& name);

 private:
  uint64_t state_[4];
  double spare_normal_ = 0;
  bool has_spare_ = false;
};

}  // namespace smol
