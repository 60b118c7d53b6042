// The AVX512-VNNI quantised matmul kernel (cpu_quant_simd.inc): vpdpbusd on 256-bit vectors
// (AVX512-VL), u8·s8 products summed by 4 into int32 lanes in one instruction.
#include <immintrin.h>

#include "kernels/cpu/cpu_quant_matmul.h"

#define SMOL_QUANT_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"
#define SMOL_QUANT_KERNEL quant_rows_vnni

namespace smol::cpu {
namespace {
__attribute__((target(SMOL_QUANT_TARGET), always_inline)) inline __m256i smol_dot_lanes(__m256i u,
                                                                                        __m256i s) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}
}  // namespace
}  // namespace smol::cpu

#include "kernels/cpu/cpu_quant_simd.inc"
