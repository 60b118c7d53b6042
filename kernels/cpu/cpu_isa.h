// Internal to the cpu backend: whether the hand-written AVX-512 fp32 kernels (attention's block
// product) may run (docs/cpu-speed.md "Instruction sets"). The build stays baseline x86-64; a
// kernel compiled for AVX-512 runs only where the CPU has it. The backend decides once, when it
// is built, and passes the answer to the kernels. SMOL_CPU_ISA, read then, is shared with the
// quantised matmul (cpu_quant_matmul.h) and the bf16 GEMM (cpu_bf16_gemm.h): "generic" or "avx2"
// force the portable paths (what the tests use to check both), "avx512", "native" or unset take
// the widest path the CPU supports.
#pragma once

#include <cstdlib>
#include <string>

namespace smol::cpu {

inline bool detect_avx512_fp32() {
  if (const char* forced = std::getenv("SMOL_CPU_ISA")) {
    const std::string value = forced;
    if (value == "generic" || value == "avx2") return false;
  }
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

}  // namespace smol::cpu
