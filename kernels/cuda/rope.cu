// RoPE, rotate-half layout (docs/formats.md §2), in place on x [T, H, D]: for i < D/2 the pair
// (x[i], x[i + D/2]) of every head rotates by angle = float(positions[t]) · inv_freq[i].
// inv_freq[i] = 1 / theta^(float(2i)/D) is computed on the host exactly as the cpu backend
// (and HF, in float32) computes it, so both backends rotate by bit-identical angles; cos/sin
// are taken in fp32 and each output is rounded once. The backward is the transposed rotation
// (angle negated). One thread per (token, head, pair).
#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rope_kernel(T* x /* [T, H, D] */, const int* positions /* [T] */,
                            const float* inv_freq /* [D/2] */, int64_t tokens, int64_t heads,
                            int64_t half, float direction) {
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (g >= tokens * heads * half) return;
  const int64_t i = g % half, th = g / half, t = th / heads;
  const float angle = static_cast<float>(positions[t]) * inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  s *= direction;
  T* head = x + th * 2 * half;
  const float x0 = to_float(head[i]), x1 = to_float(head[i + half]);
  head[i] = from_float<T>(x0 * c - x1 * s);
  head[i + half] = from_float<T>(x1 * c + x0 * s);
}

}  // namespace

void rope(GpuContext& ctx, Tensor x, const Tensor& positions, float theta, bool inverse) {
  const char* op = inverse ? "rope_backward" : "rope_forward";
  const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2];
  const int64_t half = head_dim / 2;
  if (tokens == 0 || heads == 0 || half == 0) return;
  // Uploaded once per (theta, D): no host copy per call.
  const float* table = ctx.rope_inv_freq(theta, head_dim);
  dispatch_float(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(rope_kernel<T>, ceil_div(tokens * heads * half, kThreads), kThreads, 0, ctx.stream(),
           x.as<T>(), positions.as<int>(), static_cast<const float*>(table), tokens, heads, half,
           inverse ? -1.0f : 1.0f);
  });
}

}  // namespace smol::SMOL_GPU_NS
