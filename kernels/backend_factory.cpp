// make_backend: the run-time choice of backend (DESIGN.md §2, `--device`).
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#if SMOL_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#if SMOL_HAVE_EMU
#include "kernels/emu/emu_backend.h"
#endif

namespace smol {

std::vector<std::string> available_devices() {
  std::vector<std::string> names{"auto", "cpu"};
#if SMOL_HAVE_CUDA
  names.push_back("cuda");
#endif
#if SMOL_HAVE_EMU
  names.push_back("cuda-emu");
#endif
  return names;
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
#if SMOL_HAVE_CUDA
  if (device == "cuda") return make_cuda_backend();  // throws when no GPU/driver is present
  if (device == "auto" && cuda_device_available()) return make_cuda_backend();
#endif
#if SMOL_HAVE_EMU
  if (device == "cuda-emu") return make_cuda_emu_backend();
#endif
  if (device == "auto") return make_cpu_backend();
  std::string known;
  for (const auto& n : available_devices()) known += (known.empty() ? "" : ", ") + n;
  throw_error("unknown or unavailable device '", device, "' (this build has: ", known, ")");
}

}  // namespace smol
