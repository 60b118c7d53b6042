// cuda-emu: the cuda backend's own sources (kernels/cuda/*.cu) compiled by the host compiler
// against kernels/emu/ and run on the CPU — a test device, not a product path (docs/design.md §2).
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "kernels/linalg_backend.h"

namespace smol {

std::unique_ptr<Backend> make_cuda_emu_backend();
// The linear algebra of `backend` when it is the cuda-emu backend (kernels/cuda/linalg.cu
// over kernels/emu/emu_cusolver.cpp), else nullptr; make_linalg is the public way in.
std::unique_ptr<LinalgBackend> make_cuda_emu_linalg(Backend& backend);

}  // namespace smol
