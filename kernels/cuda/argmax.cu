// argmax: out[t] = index of the largest element of row t of x [T, V] (first maximum wins),
// used by greedy decoding. One 256-thread block per row: each thread scans a strided subset
// keeping (value, first index), then a shared-memory tree picks the larger value, the smaller
// index on ties, so the result is the first maximum whatever the reduction order.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ bool better(float v, int i, float best_v, int best_i) {
  return v > best_v || (v == best_v && i < best_i);
}

template <typename T>
__global__ void argmax_kernel(int* out /* [T] */, const T* x /* [T, V] */, int64_t vocab) {
  __shared__ float best_values[kThreads];
  __shared__ int best_indices[kThreads];
  const T* row = x + int64_t{blockIdx.x} * vocab;
  float best_v = -INFINITY;
  int best_i = static_cast<int>(vocab);  // loses every tie against a real index
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = to_float(row[i]);
    if (better(v, static_cast<int>(i), best_v, best_i)) best_v = v, best_i = static_cast<int>(i);
  }
  best_values[threadIdx.x] = best_v;
  best_indices[threadIdx.x] = best_i;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float v = best_values[threadIdx.x + stride];
      const int i = best_indices[threadIdx.x + stride];
      if (better(v, i, best_values[threadIdx.x], best_indices[threadIdx.x])) {
        best_values[threadIdx.x] = v;
        best_indices[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = best_indices[0] < vocab ? best_indices[0] : 0;
}

}  // namespace

void argmax(GpuContext& ctx, Tensor out, const Tensor& x) {
  const int64_t rows = x.shape.rows(), vocab = x.shape.cols();
  if (rows == 0) return;
  SMOL_CHECK(rows <= 0x7fffffff, "argmax: too many rows (", rows, ")");
  dispatch_float(x.dtype, "argmax x", [&](auto tag) {
    using T = decltype(tag);
    launch(argmax_kernel<T>, static_cast<unsigned>(rows), kThreads, 0, ctx.stream(), out.as<int>(),
           x.as<T>(), vocab);
  });
}

}  // namespace smol::SMOL_GPU_NS
