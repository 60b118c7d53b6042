// Temperature + top-p sampling as an exact rule that the host and the device both compute
// (docs/design.md §3 "Sampling"): the same logits and the same uniform give the same token on
// cpu, cuda and cuda-emu, bit for bit, whatever order a backend sums in.
//
// How: each token's probability relative to the most probable one, p = exp((logit − max) / T),
// is computed by one fma-only float routine (sampling_exp, below: no libm, no contraction, so
// host and device round identically) and turned into an integer weight w = ⌊p · 2⁴⁰⌋. Every sum
// after that is an integer sum, which is exact and associative. The rule, in the strict order of
// weight descending, then token id ascending:
//   nucleus  the shortest prefix whose weight reaches ⌈top_p · Σw⌉ (HF TopPLogitsWarper's
//            "cumulative probability reaches top_p", at least one token); its mass N;
//   draw     X = ⌊u · N⌋ for the uniform u (a multiple of 2⁻²⁴ from dropout_uniform), and the
//            token whose prefix first exceeds X.
// A token with p < 2⁻⁴⁰ of the most probable one has weight 0 and is never drawn (at most
// V · 2⁻⁴⁰ ≈ 4.5e-8 of the mass at SmolLM2's vocabulary).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SMOL_SAMPLING_HD __host__ __device__
#else
#define SMOL_SAMPLING_HD
#endif

namespace smol {

inline constexpr int kSamplingWeightBits = 40;  // w = ⌊p · 2⁴⁰⌋ ≤ 2⁴⁰
// Vocabularies up to 2²³ keep Σw < 2⁶³.
inline constexpr int64_t kSamplingMaxVocab = int64_t{1} << 23;

// e^z for z ≤ 0 in float, from fmaf and exact steps only: z·log2(e) rounded to an integer n
// (one product, one rint), a two-constant Cody–Waite reduction r = z − n·ln2 by fmaf, a degree-6
// Taylor polynomial of degree 7 for e^r on |r| ≤ ln2/2 by fmaf (Horner; truncation error
// r⁸/8! < 6e-9), and an exact scaling by 2ⁿ. fmaf is correctly rounded on both sides, so the
// result is the same bits on host and device; it is within a few float ulps of e^z, far below
// what sampling can tell apart.
SMOL_SAMPLING_HD inline float sampling_exp(float z) {
  const float n = rintf(z * 1.44269504088896341f);
  float r = fmaf(n, -0.693145751953125f, z);  // ln2's high part: 12 bits, so n·hi is exact
  r = fmaf(n, -1.42860682030941723e-6f, r);   // and its low part
  float p = 1.98412698e-4f;                   // 1/7!, 1/6!, … 1/1!, 1
  p = fmaf(p, r, 1.38888889e-3f);
  p = fmaf(p, r, 8.33333333e-3f);
  p = fmaf(p, r, 4.16666667e-2f);
  p = fmaf(p, r, 1.66666667e-1f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  return ldexpf(p, static_cast<int>(n));
}

// A token's integer weight from its logit, the row's largest logit and 1/T (float, as the
// caller computed it once: 1.0f / temperature). Below z = −28, e^z < 2⁻⁴⁰: weight 0 without
// the exponential (the same answer it would give).
SMOL_SAMPLING_HD inline uint64_t sampling_weight(float logit, float max_logit, float inv_t) {
  const float z = (logit - max_logit) * inv_t;
  if (!(z >= -28.0f)) return 0;
  const float p = sampling_exp(z) * 1099511627776.0f;  // · 2⁴⁰: exact
  return static_cast<uint64_t>(p);
}

// ⌈top_p · total⌉ exactly (top_p ≥ 1 gives total): top_p is m · 2^(e − 24) with an integer m
// < 2²⁴ (frexpf), so the product is an integer times a power of two; 128-bit arithmetic.
SMOL_SAMPLING_HD inline uint64_t nucleus_target(uint64_t total, float top_p) {
  if (top_p >= 1.0f) return total;
  int e = 0;
  const float f = frexpf(top_p, &e);  // top_p = f · 2^e, f in [0.5, 1), e ≤ 0
  const auto m = static_cast<uint64_t>(f * 16777216.0f);
  const unsigned __int128 num = static_cast<unsigned __int128>(m) * total;
  const int shift = 24 - e;  // ≥ 24
  if (num == 0) return 0;
  if (shift >= 128) return 1;
  const unsigned __int128 one = 1;
  return static_cast<uint64_t>((num + (one << shift) - 1) >> shift);
}

// X = ⌊u · nucleus⌋ for u = k · 2⁻²⁴ (dropout_uniform's grid): X < nucleus for u < 1.
SMOL_SAMPLING_HD inline uint64_t draw_target(uint64_t nucleus, float u) {
  const auto k = static_cast<uint64_t>(u * 16777216.0f);
  return static_cast<uint64_t>((static_cast<unsigned __int128>(k) * nucleus) >> 24);
}

// The host implementation of the rule for one row of logits [vocab]: returns the token, or
// −(i + 1) when logits[i] is the first value that is not finite (the caller reports it).
// temperature > 0, top_p in (0, 1], u in [0, 1). kernels/cpu/cpu_sample_tokens.cpp.
int32_t sample_from_logits(const float* logits, int64_t vocab, float temperature, float top_p,
                           float u);

}  // namespace smol
