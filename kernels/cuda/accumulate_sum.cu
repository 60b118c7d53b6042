// accumulate_sum: acc[0] += Σ x over an F32 vector, on the device, so a training step can sum
// its micro-batches' token losses without a host wait per micro-batch (read once per step).
// One 256-thread block: each thread sums a strided subset in double, a fixed-order block tree
// (block_sum) combines them, and thread 0 adds the total to acc in double before rounding to
// fp32 — deterministic for a given length.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

__global__ void accumulate_sum_kernel(float* acc /* [1] */, const float* x /* [n] */, int64_t n) {
  __shared__ double scratch[32];
  double partial = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) partial += x[i];
  const double total = block_sum(partial, scratch);
  if (threadIdx.x == 0) acc[0] = static_cast<float>(static_cast<double>(acc[0]) + total);
}

}  // namespace

void accumulate_sum(GpuContext& ctx, Tensor acc, const Tensor& x) {
  if (x.numel() == 0) return;
  launch(accumulate_sum_kernel, 1, kThreads, 0, ctx.stream(), acc.as<float>(),
         static_cast<const float*>(x.as<float>()), x.numel());
}

}  // namespace smol::SMOL_GPU_NS
