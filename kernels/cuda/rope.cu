// RoPE, rotate-half layout (docs/formats.md §2), in place on x [T, H, D]: for i < D/2 the pair
// (x[i], x[i + D/2]) of every head rotates by angle = float(positions[t]) · inv_freq[i].
// inv_freq[i] = 1 / theta^(float(2i)/D) is computed on the host exactly as the cpu backend
// (and HF, in float32) computes it, so both backends rotate by bit-identical angles; cos/sin
// are taken in fp32 and each output is rounded once. The backward is the transposed rotation
// (angle negated). One thread per (token, head, pair).
//
// rope_qk rotates a layer's queries and keys in one launch (docs/design.md §2.7): the threads
// cover q's pairs, then k's; each pair is rotated by the same code as rope's, so the results are
// bit-identical to two rope launches.
#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

// Rotates pair g (of tokens · heads · half, in [T, H, D/2] order) of x [T, H, D].
template <typename T>
__device__ __forceinline__ void rotate_pair(T* x, const int* positions, const float* inv_freq,
                                            int64_t g, int64_t heads, int64_t half,
                                            float direction) {
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

template <typename T>
__global__ void rope_kernel(T* x /* [T, H, D] */, const int* positions /* [T] */,
                            const float* inv_freq /* [D/2] */, int64_t tokens, int64_t heads,
                            int64_t half, float direction) {
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (g >= tokens * heads * half) return;
  rotate_pair(x, positions, inv_freq, g, heads, half, direction);
}

template <typename T>
__global__ void rope_qk_kernel(T* q /* [T, Hq, D] */, T* k /* [T, Hkv, D] */,
                               const int* positions /* [T] */, const float* inv_freq /* [D/2] */,
                               int64_t tokens, int64_t q_heads, int64_t k_heads, int64_t half,
                               float direction) {
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t q_pairs = tokens * q_heads * half;
  if (g < q_pairs)
    rotate_pair(q, positions, inv_freq, g, q_heads, half, direction);
  else if (g - q_pairs < tokens * k_heads * half)
    rotate_pair(k, positions, inv_freq, g - q_pairs, k_heads, half, direction);
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

void rope_qk(GpuContext& ctx, Tensor q, Tensor k, const Tensor& positions, float theta,
             bool inverse) {
  if (q.dtype != k.dtype) {  // one kernel needs one element type
    rope(ctx, q, positions, theta, inverse);
    rope(ctx, k, positions, theta, inverse);
    return;
  }
  const char* op = inverse ? "rope_qk_backward" : "rope_qk_forward";
  const int64_t tokens = q.shape[0], q_heads = q.shape[1], k_heads = k.shape[1];
  const int64_t half = q.shape[2] / 2;
  const int64_t pairs = tokens * (q_heads + k_heads) * half;
  if (pairs == 0) return;
  const float* table = ctx.rope_inv_freq(theta, q.shape[2]);
  dispatch_float(q.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(rope_qk_kernel<T>, ceil_div(pairs, kThreads), kThreads, 0, ctx.stream(), q.as<T>(),
           k.as<T>(), positions.as<int>(), static_cast<const float*>(table), tokens, q_heads,
           k_heads, half, inverse ? -1.0f : 1.0f);
  });
}

}  // namespace smol::SMOL_GPU_NS
