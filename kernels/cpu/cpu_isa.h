// Internal to the cpu backend: which instruction-set extensions the hand-written kernels may use,
// decided once per process (docs/cpu-speed.md "Instruction sets"). The build stays baseline
// x86-64; kernels compiled for AVX-512 run only where the CPU has it. SMOL_CPU_ISA=generic
// forces the portable paths (what the tests use to check both); any other value, or none, lets
// every kernel take the widest path the CPU supports.
#pragma once

#include <cstdlib>
#include <cstring>

namespace smol::cpu {

struct CpuIsa {
  bool avx512 = false;  // AVX-512 F, BW, VL, DQ (x86-64-v4)
};

inline CpuIsa detect_cpu_isa() {
  CpuIsa isa;
  const char* forced = std::getenv("SMOL_CPU_ISA");
  if (forced && std::strcmp(forced, "generic") == 0) return isa;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  isa.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
  return isa;
}

// The process's answer: computed on first use, constant afterwards.
inline const CpuIsa& cpu_isa() {
  static const CpuIsa isa = detect_cpu_isa();
  return isa;
}

}  // namespace smol::cpu
