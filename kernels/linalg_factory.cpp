// make_linalg: the LinalgBackend (kernels/linalg_backend.h) of a Backend — each backend kind's
// maker recognises its own backends (docs/design.md §2).
#include "kernels/cpu/cpu_linalg.h"
#include "kernels/linalg_backend.h"
#if SMOL_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#if SMOL_HAVE_EMU
#include "kernels/emu/emu_backend.h"
#endif

namespace smol {

std::unique_ptr<LinalgBackend> make_linalg(Backend& backend) {
  if (backend.name() == "cpu") return make_cpu_linalg();
#if SMOL_HAVE_CUDA
  if (auto linalg = make_cuda_linalg(backend)) return linalg;
#endif
#if SMOL_HAVE_EMU
  if (auto linalg = make_cuda_emu_linalg(backend)) return linalg;
#endif
  throw_error("make_linalg: this build has no linear algebra for the '", backend.name(),
              "' backend");
}

}  // namespace smol
