// Internal to the cpu backend: exp in float as scalar and as an 8-lane GCC vector (Float8), and
// the multiversioning attribute that compiles hot loops for AVX2+FMA as well as for the
// baseline x86-64. The vector form exists because GCC 12 refuses to vectorise loops calling
// the scalar one ("control flow in loop", even under `#pragma omp simd`); vector-extension
// code compiles to ymm ops in the AVX2 clone and to pairs of xmm ops in the baseline one.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

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

// The helpers below pass 32-byte vectors by value; they are always inlined into their callers,
// so the baseline-x86-64 ABI note GCC prints for them does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
// 8 floats / 8 int32 as GCC vector extensions (element-wise operators, vector ?: select).
typedef float Float8 __attribute__((vector_size(32)));
typedef int32_t Int8 __attribute__((vector_size(32)));

[[gnu::always_inline]] inline Float8 broadcast8(float x) {
  return Float8{} + x;
}
[[gnu::always_inline]] inline Float8 load8(const float* p) {
  Float8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store8(float* p, Float8 v) {
  std::memcpy(p, &v, sizeof v);
}
// The first n (0 ≤ n < 8) floats of p, the other lanes `pad`.
[[gnu::always_inline]] inline Float8 load_partial8(const float* p, int64_t n, float pad) {
  float lanes[8] = {pad, pad, pad, pad, pad, pad, pad, pad};
  std::memcpy(lanes, p, n * sizeof(float));
  return load8(lanes);
}
[[gnu::always_inline]] inline void store_partial8(float* p, Float8 v, int64_t n) {
  float lanes[8];
  store8(lanes, v);
  std::memcpy(p, lanes, n * sizeof(float));
}
[[gnu::always_inline]] inline float sum_lanes(Float8 v) {
  float s = 0.0f;
  for (int l = 0; l < 8; ++l) s += v[l];
  return s;
}
[[gnu::always_inline]] inline float max_lanes(Float8 v) {
  float m = v[0];
  for (int l = 1; l < 8; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

// exp_approx lane by lane: the same operations in the same order, so each lane equals the
// scalar result.
[[gnu::always_inline]] inline Float8 exp_approx(Float8 x) {
  const Float8 lo = broadcast8(-87.3f), hi = broadcast8(88.0f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const Float8 magic = broadcast8(12582912.0f);
  const Float8 n = (x * 1.44269504088896341f + magic) - magic;
  const Float8 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  Float8 p = broadcast8(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const Float8 er = p * r * r + r + 1.0f;
  const Int8 bits = (__builtin_convertvector(n, Int8) + 127) << 23;
  return er * std::bit_cast<Float8>(bits);
}

}  // namespace smol::cpu
