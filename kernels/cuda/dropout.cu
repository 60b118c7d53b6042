// dropout: out[e] = in[e] / (1 − p) when dropout_uniform(seed, e) ≥ p, else 0 (backend.h).
// The mask comes from the same counter-based hash the cpu backend uses (kernels/backend.h,
// callable from device code), so both backends drop the same elements; the backward is this
// same call on the gradient. out may alias in: each element is read before it is written by
// the same thread. 8 elements per thread, 16-byte accesses when aligned.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

template <typename Tout, typename Tin>
__global__ void dropout_kernel(Tout* out /* [n] */, const Tin* in /* [n] */, int64_t n, float p,
                               float keep_scale, uint64_t seed, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float v[8];
  load8(v, in, i, n, vec);
  for (int j = 0; j < 8; ++j)
    v[j] = dropout_uniform(seed, static_cast<uint64_t>(i + j)) >= p ? v[j] * keep_scale : 0.0f;
  store8(out, v, i, n, vec);
}

}  // namespace

void dropout(GpuContext& ctx, Tensor out, const Tensor& in, float p, uint64_t seed) {
  const int64_t n = in.numel();
  if (n == 0) return;
  // p = 1 drops everything (no uniform in [0, 1) reaches 1); keep_scale is then unused.
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const bool vec = aligned16(out.data) && aligned16(in.data);
  dispatch_float(out.dtype, "dropout out", [&](auto out_tag) {
    dispatch_float(in.dtype, "dropout in", [&](auto in_tag) {
      using Tout = decltype(out_tag);
      using Tin = decltype(in_tag);
      launch(dropout_kernel<Tout, Tin>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(),
             out.as<Tout>(), in.as<Tin>(), n, p, keep_scale, seed, vec);
    });
  });
}

}  // namespace smol::SMOL_GPU_NS
