// A LinalgBackend on any backend through the host: every call downloads its operands,
// factorises each matrix in double with LAPACKE (linalg/decompositions.h), applies the
// interface's sign conventions (kernels/linalg_backend.h: r_ii >= 0; the largest-magnitude
// entry of each column of u positive) and uploads the fp32 result. Host-bound on purpose: the
// double-precision reference the spectral refactor's tests compare against, independent of
// the product implementations behind make_linalg (docs/design.md §2).
#pragma once

#include <memory>

#include "kernels/linalg_backend.h"

namespace smol {

std::unique_ptr<LinalgBackend> make_host_reference_linalg(Backend& backend);

}  // namespace smol
