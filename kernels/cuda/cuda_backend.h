// The cuda backend (DESIGN.md §2): bf16 activations and frozen weights, fp32 master weights,
// LoRA parameters, gradients and optimizer state; hand-written kernels plus cuBLASLt.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace smol {

// Throws smol::Error when no GPU or driver is present.
std::unique_ptr<Backend> make_cuda_backend();
// True when a CUDA device and a driver are usable (false, never a crash, without libcuda).
bool cuda_device_available();

}  // namespace smol
