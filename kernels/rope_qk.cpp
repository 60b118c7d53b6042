// The default body of the composite op rope_qk_forward / rope_qk_backward (kernels/backend.h):
// the primitive rope op on q, then on k. A backend whose RoPE is one kernel launch per tensor
// replaces it with one launch over both (the cuda backend, kernels/cuda/rope.cu); the cpu backend
// keeps this body, so its results are exactly those of the two primitives.
#include "kernels/backend.h"

namespace smol {

void Backend::do_rope_qk(Tensor q, Tensor k, const Tensor& positions, float theta, bool backward) {
  if (backward) {
    rope_backward(q, positions, theta);
    rope_backward(k, positions, theta);
  } else {
    rope_forward(q, positions, theta);
    rope_forward(k, positions, theta);
  }
}

}  // namespace smol
