// SeededRng: xoshiro256** + SplitMix64 seeding + Box–Muller normals (see random_init.h).
#include "model/random_init.h"

#include <cmath>
#include <numbers>

#include "common/splitmix64.h"

namespace smol {

namespace {
uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

SeededRng::SeededRng(uint64_t seed) {
  for (uint64_t& s : state_) s = splitmix64_next(seed);
}

uint64_t SeededRng::next_u64() {
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double SeededRng::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

double SeededRng::uniform(double low, double high) {
  return low + (high - low) * uniform();
}

double SeededRng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_normal_;
  }
  // 1 - uniform() lies in (0, 1], so the log is finite.
  const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));
  const double angle = 2.0 * std::numbers::pi * uniform();
  spare_normal_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

uint64_t SeededRng::seed_for(uint64_t seed, const std::string& name) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (unsigned char c : name) hash = (hash ^ c) * 0x100000001B3ull;
  uint64_t mixed = seed ^ hash;
  return splitmix64_next(mixed);
}

}  // namespace smol
