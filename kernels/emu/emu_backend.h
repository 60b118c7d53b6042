// cuda-emu: the cuda backend's own sources (kernels/cuda/*.cu) compiled by the host compiler
// against kernels/emu/ and run on the CPU — a test device, not a product path (docs/design.md §2).
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace smol {

std::unique_ptr<Backend> make_cuda_emu_backend();

}  // namespace smol
