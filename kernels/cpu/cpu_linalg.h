// The cpu backend's LinalgBackend (kernels/linalg_backend.h): LAPACKE and cblas in fp32.
#pragma once

#include <memory>

#include "kernels/linalg_backend.h"

namespace smol {

std::unique_ptr<LinalgBackend> make_cpu_linalg();

}  // namespace smol
