// bf16 GEMM of the cpu backend (docs/cpu-speed.md "bf16 on cpu"): the matmul of an F32
// activation by a BF16 frozen weight, c = alpha · op(a) · op(b) + beta · c, with a rounded to
// bf16 (nearest even, torch's rounding) and every product summed in fp32 — the model of
// torch.autocast("cpu", dtype=torch.bfloat16), whose matmuls round both operands to bf16 and
// accumulate in fp32.
//
// Two implementations of the same function, chosen once per backend (detect_bf16_gemm):
//  - Avx512Bf16: a hand-written AVX512-BF16 micro-kernel (vdpbf16ps: two bf16 products per
//    fp32 lane per instruction), a packed in k-pairs, b packed in panels of kNr columns.
//  - Generic: any x86-64: a rounded to bf16 and widened back to fp32, b widened to fp32
//    (exact), then cblas_sgemm. The products are the same exact fp32 values, so the two paths
//    differ only by fp32 summation order: |Δ| ≤ k·2⁻²⁴·Σ|a||b| per element (tests/kernels_cpu).
#pragma once

#include <cstdint>
#include <cstring>

namespace smol::cpu {

enum class Bf16Gemm : uint8_t { Generic, Avx512Bf16 };

// Avx512Bf16 when the CPU has AVX512-F/BW/VL and AVX512_BF16, unless the environment variable
// SMOL_CPU_ISA is "generic" or "avx2" (forces the portable path, as the tests do). Called once,
// in the cpu backend's constructor.
Bf16Gemm detect_bf16_gemm();
const char* bf16_gemm_name(Bf16Gemm path);  // "avx512_bf16" or "generic"

// fp32 → bf16 bits, round to nearest even as torch's .to(torch.bfloat16) (denormals kept,
// NaN stays a quiet NaN); bf16 → fp32 is exact.
inline uint16_t round_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? (bits >> 16) | 0x40u : rounded);
}
inline float widen_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The operands as row-major matrices with their stored row length (leading dimension), as
// BLAS: op(a) is [m, k] (a is [k, m] when a_t), op(b) is [k, n] (b is [n, k] when b_t).
struct Bf16GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  bool a_t = false;
  const uint16_t* b = nullptr;  // bf16 bits
  int64_t ldb = 0;
  bool b_t = false;
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f, beta = 0.0f;  // beta == 0: c is not read (BLAS semantics)
};

// c = alpha · bf16(op(a)) · op(b) + beta · c with fp32 accumulation; m, n, k > 0.
// OpenMP-parallel inside.
void gemm_bf16(Bf16Gemm path, const Bf16GemmArgs& args);

}  // namespace smol::cpu
