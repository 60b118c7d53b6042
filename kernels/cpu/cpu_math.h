// Internal to the cpu backend: scalar math written so that `#pragma omp simd` loops calling it
// vectorise (libm's expf is an opaque call that blocks vectorisation), and the multiversioning
// attribute that compiles hot loops for AVX2+FMA as well as for the baseline x86-64.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace smol::cpu {

// Hot loops get an x86-64-v3 (AVX2, FMA) clone chosen at load time; the build itself stays
// baseline x86-64, so the library still runs on any x86-64 CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SMOL_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SMOL_CPU_MULTIVERSION
#endif

// e^x in float, within 2 ulp of the correctly rounded result on [−87.3, 88] (Cephes expf:
// x = n·ln2 + r with |r| ≤ ln2/2, a degree-7 polynomial for e^r, then the exponent field
// gets n). Inputs are clamped to that range: below it the result is ~1e-38 instead of a
// denormal or 0, above it e^88 ≈ 1.65e38 instead of inf — both immaterial for softmax
// (arguments ≤ 0) and sigmoid. Tested against std::exp in kernels_cpu_tests.
inline float exp_approx(float x) {
  // Ternaries, not std::min/max: they if-convert to vector min/max inside simd loops.
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;
  // n = round(x / ln2) by the 1.5·2²³ trick (vectorises without SSE4.1 rounding).
  constexpr float kRoundMagic = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRoundMagic) - kRoundMagic;
  // r = x − n·ln2 with ln2 split in two for an exact first product.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [−126, 127]
  return er * std::bit_cast<float>(bits);
}

}  // namespace smol::cpu
