// A kernel argument's per-member arrays (the LoRA kernels' groups of at most three adapters,
// kernels/cuda/lora_down.cu and lora_up.cu) read by member index.
#pragma once

#include "kernels/cuda/cuda_compat.h"

namespace smol::SMOL_GPU_NS {

// Element i of a three-member array by selects, not by a dynamic index: a kernel parameter
// indexed at run time is copied to the stack (local memory) first; selects keep it in the
// parameter bank.
template <typename T>
__device__ __forceinline__ T pick(const T (&v)[3], int i) {
  return i == 0 ? v[0] : i == 1 ? v[1] : v[2];
}

}  // namespace smol::SMOL_GPU_NS
