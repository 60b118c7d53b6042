// INTERIM — delete when the `linalg` branch (LAPACKE / cuSOLVER LinalgBackend) is merged: it
// defines make_linalg itself, and the two definitions would collide at link time.
//
// Until then make_linalg answers with the host reference (host_reference_linalg.h): correct on
// every backend, in double, but with a download / upload per call, so on cuda each refactor
// waits for the host (docs/design.md §4 wants none per layer; the batched calls keep it to one
// round-trip per shape group and factorisation).
#include "engine/train/host_reference_linalg.h"

namespace smol {

std::unique_ptr<LinalgBackend> make_linalg(Backend& backend) {
  return make_host_reference_linalg(backend);
}

}  // namespace smol
