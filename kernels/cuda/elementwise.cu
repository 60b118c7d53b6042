// axpy (y += alpha·x) and scale (x *= alpha) over flattened tensors of F32 or BF16, in fp32
// with one rounding to the destination type. 8 elements per thread, 16-byte accesses when all
// pointers are 16-byte aligned, scalar tail.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

template <typename Ty, typename Tx>
__global__ void axpy_kernel(Ty* y /* [n] */, const Tx* x /* [n] */, float alpha, int64_t n,
                            bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float yv[8], xv[8];
  load8(yv, y, i, n, vec);
  load8(xv, x, i, n, vec);
  for (int j = 0; j < 8; ++j) yv[j] += alpha * xv[j];
  store8(y, yv, i, n, vec);
}

template <typename T>
__global__ void scale_kernel(T* x /* [n] */, float alpha, int64_t n, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float v[8];
  load8(v, x, i, n, vec);
  for (int j = 0; j < 8; ++j) v[j] *= alpha;
  store8(x, v, i, n, vec);
}

}  // namespace

void axpy(GpuContext& ctx, Tensor y, const Tensor& x, float alpha) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const bool vec = aligned16(y.data) && aligned16(x.data);
  dispatch_float(y.dtype, "axpy y", [&](auto y_tag) {
    dispatch_float(x.dtype, "axpy x", [&](auto x_tag) {
      using Ty = decltype(y_tag);
      using Tx = decltype(x_tag);
      launch(axpy_kernel<Ty, Tx>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(), y.as<Ty>(),
             x.as<Tx>(), alpha, n, vec);
    });
  });
}

void scale(GpuContext& ctx, Tensor x, float alpha) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_float(x.dtype, "scale x", [&](auto tag) {
    using T = decltype(tag);
    launch(scale_kernel<T>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(), x.as<T>(), alpha,
           n, aligned16(x.data));
  });
}

}  // namespace smol::SMOL_GPU_NS
