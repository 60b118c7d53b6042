// SplitMix64 (Steele, Lea & Flood 2014; the finaliser of Java's SplittableRandom): the one
// integer mixer of the engine. It seeds the initialisers' xoshiro generators
// (model/random_init.cpp), draws the counter-based dropout masks shared by every backend
// (kernels/backend.h dropout_uniform) and derives per-step / per-layer seeds. Device code
// calls the same functions, so the cuda kernels draw the masks the cpu draws.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SMOL_SPLITMIX_HD __host__ __device__
#else
#define SMOL_SPLITMIX_HD
#endif

namespace smol {

inline constexpr uint64_t kSplitMixGamma = 0x9E3779B97F4A7C15ull;

// The SplitMix64 output function applied to z.
SMOL_SPLITMIX_HD inline uint64_t splitmix64_finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Element `index` of the SplitMix64 stream that starts at `seed` (counter-based: no state).
SMOL_SPLITMIX_HD inline uint64_t splitmix64_at(uint64_t seed, uint64_t index) {
  return splitmix64_finalize(seed + kSplitMixGamma * (index + 1));
}

// The next output of a stateful SplitMix64 generator whose state is `state`.
SMOL_SPLITMIX_HD inline uint64_t splitmix64_next(uint64_t& state) {
  state += kSplitMixGamma;
  return splitmix64_finalize(state);
}

}  // namespace smol
