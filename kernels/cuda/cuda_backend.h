// The cuda backend (docs/design.md §2): bf16 activations and frozen weights, fp32 master weights,
// LoRA parameters, gradients and optimizer state; hand-written kernels plus cuBLASLt.
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "kernels/linalg_backend.h"

namespace smol {

// The backend on GPU `device` (made current for this process: one device per process, the
// data-parallel design of docs/design.md §8). Throws smol::Error when no GPU or driver is
// present or the ordinal is out of range.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);
// The linear algebra of `backend` when it is a cuda backend (kernels/cuda/linalg.cu), else
// nullptr; make_linalg (kernels/linalg_factory.cpp) is the public way in.
std::unique_ptr<LinalgBackend> make_cuda_linalg(Backend& backend);
// Number of CUDA devices (0 without a driver).
int cuda_device_count();
// True when a CUDA device and a driver are usable (false, never a crash, without libcuda).
bool cuda_device_available();

}  // namespace smol
