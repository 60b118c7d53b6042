// make_linalg: the LinalgBackend (kernels/linalg_backend.h) matching a Backend, chosen by the
// backend's name like make_backend chooses the backend (docs/design.md §2).
#include "kernels/cpu/cpu_linalg.h"
#include "kernels/linalg_backend.h"

namespace smol {

std::unique_ptr<LinalgBackend> make_linalg(Backend& backend) {
  const std::string name = backend.name();
  if (name == "cpu") return make_cpu_linalg();
  throw_error("make_linalg: this build has no linear algebra for the '", name, "' backend");
}

}  // namespace smol
