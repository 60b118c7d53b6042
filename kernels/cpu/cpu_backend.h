// The cpu backend: fp32 reference implementation of every op (docs/design.md §2).
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace smol {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace smol
