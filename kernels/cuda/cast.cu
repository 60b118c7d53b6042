// copy_cast: dst = src elementwise, converting between F32 and BF16 (round-to-nearest-even
// once), or a plain device copy when the dtypes agree (I32 too).
// Each thread handles 8 consecutive elements with 16-byte loads/stores when both pointers are
// 16-byte aligned; the last group (n not a multiple of 8) falls back to scalar accesses.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

template <typename Tout, typename Tin>
__global__ void cast_kernel(Tout* out /* [n] */, const Tin* in /* [n] */, int64_t n, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float v[8];
  load8(v, in, i, n, vec);
  store8(out, v, i, n, vec);
}

}  // namespace

void copy_cast(GpuContext& ctx, Tensor dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype == src.dtype) {
    cuda_check(
        cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, ctx.stream()),
        "copy");
    return;
  }
  const int64_t n = dst.numel();
  const bool vec = aligned16(dst.data) && aligned16(src.data);
  dispatch_float(dst.dtype, "copy dst", [&](auto out_tag) {
    dispatch_float(src.dtype, "copy src", [&](auto in_tag) {
      using Tout = decltype(out_tag);
      using Tin = decltype(in_tag);
      launch(cast_kernel<Tout, Tin>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(),
             dst.as<Tout>(), src.as<Tin>(), n, vec);
    });
  });
}

}  // namespace smol::SMOL_GPU_NS
