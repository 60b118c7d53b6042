// The AVX2 quantised matmul kernel (cpu_quant_simd.inc): u8·s8 products by vpmaddubsw (pairs to
// int16; |w|·|x| ≤ 128·127, so a pair sum ≤ 32512 never saturates) and vpmaddwd with ones (pairs
// of pairs to int32) — the same 8 lanes of 4 products as vpdpbusd, exactly.
#include "kernels/cpu/cpu_quant_matmul.h"

#define SMOL_QUANT_TARGET "avx2,fma,f16c"
#define SMOL_QUANT_KERNEL quant_rows_avx2

#include <immintrin.h>

namespace smol::cpu {
namespace {
__attribute__((target(SMOL_QUANT_TARGET), always_inline)) inline __m256i smol_dot_lanes(__m256i u,
                                                                                        __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
}  // namespace
}  // namespace smol::cpu

#include "kernels/cpu/cpu_quant_simd.inc"
