// Ops the cuda backend does not run yet (issue 3 scope: part 1). Each throws a smol::Error
// that says so, rather than computing anything approximate.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {

void attention_forward(GpuContext&, Tensor, Tensor, const Tensor&, const Tensor&, const Tensor&,
                       const AttentionLayout&, float) {
  throw_error("attention_forward: not implemented on cuda yet");
}
void attention_backward(GpuContext&, Tensor, Tensor, Tensor, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const AttentionLayout&, float) {
  throw_error("attention_backward: not implemented on cuda yet");
}

}  // namespace smol::SMOL_GPU_NS
