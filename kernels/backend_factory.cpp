// make_backend: the run-time choice of backend (docs/design.md §2, `--device`), with an
// optional device ordinal ("cuda:1").
#include <cctype>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#if SMOL_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#if SMOL_HAVE_EMU
#include "kernels/emu/emu_backend.h"
#endif

namespace smol {

namespace {

struct DeviceName {
  std::string kind;  // "cpu", "cuda", "cuda-emu", "auto", or anything else (unknown)
  int ordinal = 0;
  bool has_ordinal = false;
};

// "kind" or "kind:N" with N a decimal ordinal.
DeviceName parse_device(const std::string& device) {
  DeviceName d;
  const size_t colon = device.find(':');
  d.kind = device.substr(0, colon);
  if (colon == std::string::npos) return d;
  const std::string digits = device.substr(colon + 1);
  bool valid = !digits.empty() && digits.size() <= 6;
  for (char c : digits) valid = valid && std::isdigit(static_cast<unsigned char>(c));
  SMOL_CHECK(valid, "device '", device, "': the ordinal after ':' must be a number, as in '",
             d.kind, ":0'");
  d.ordinal = std::stoi(digits);
  d.has_ordinal = true;
  return d;
}

}  // namespace

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
  const DeviceName d = parse_device(device);
  if (d.kind == "cpu") return make_cpu_backend();  // one host: the ordinal is ignored
#if SMOL_HAVE_CUDA
  if (d.kind == "cuda") return make_cuda_backend(d.ordinal);  // throws without a GPU/driver
  if (d.kind == "auto" && cuda_device_available()) return make_cuda_backend(d.ordinal);
#endif
#if SMOL_HAVE_EMU
  if (d.kind == "cuda-emu") {
    SMOL_CHECK(d.ordinal == 0, "device '", device,
               "': cuda-emu emulates one device, only ordinal 0 exists");
    return make_cuda_emu_backend();
  }
#endif
  if (d.kind == "auto") return make_cpu_backend();
  std::string known;
  for (const auto& n : available_devices()) known += (known.empty() ? "" : ", ") + n;
  throw_error("unknown or unavailable device '", device, "' (this build has: ", known,
              ", each optionally with a device ordinal as in 'cuda:1')");
}

}  // namespace smol
