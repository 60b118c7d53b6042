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
//
// rope_append_kv is decode's RoPE and KV-cache append in one launch (docs/design.md §2.7): the
// threads cover q's pairs, k's pairs, then v's pairs; a k pair is rotated as rope_qk rotates it,
// written back to k and to its cache row index[t], a v pair copied bit for bit to its cache row,
// so the result is that of rope_qk then scatter_rows, bit for bit. The per-pair math lives in
// rope_math.h, which the flash attention backward shares.
#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rope_math.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

// Rotates pair g (of tokens · heads · half, in [T, H, D/2] order) of x [T, H, D].
template <typename T>
__device__ __forceinline__ void rotate_pair(T* x, const int* positions, const float* inv_freq,
                                            int64_t g, int64_t heads, int64_t half,
                                            float direction) {
  const int64_t i = g % half, th = g / half, t = th / heads;
  float s, c;
  rope_sin_cos(positions[t], inv_freq[i], direction, s, c);
  T* head = x + th * 2 * half;
  float y0, y1;
  rope_rotate(to_float(head[i]), to_float(head[i + half]), s, c, y0, y1);
  head[i] = from_float<T>(y0);
  head[i + half] = from_float<T>(y1);
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

// q [T, Hq, D] and k [T, Hkv, D] rotated in place (forward), k's rows also written to k_cache
// row index[t] and v's rows to v_cache row index[t] (caches [R, Hkv, D]). An index outside
// [0, R) writes no cache row (scatter_rows' rule); with `bad`, the first such t is recorded.
template <typename T>
__global__ void rope_append_kv_kernel(T* q, T* k, const T* v, T* k_cache, T* v_cache,
                                      const int* index, const int* positions, const float* inv_freq,
                                      int64_t tokens, int64_t q_heads, int64_t kv_heads,
                                      int64_t half, int64_t cache_rows, int* bad) {
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t q_pairs = tokens * q_heads * half, kv_pairs = tokens * kv_heads * half;
  if (g < q_pairs) {
    rotate_pair(q, positions, inv_freq, g, q_heads, half, 1.0f);
    return;
  }
  const bool is_k = g - q_pairs < kv_pairs;
  const int64_t p = is_k ? g - q_pairs : g - q_pairs - kv_pairs;
  if (p >= kv_pairs) return;
  const int64_t i = p % half, th = p / half, t = th / kv_heads, h = th % kv_heads;
  const int row = index[t];
  const bool in_range = row >= 0 && row < cache_rows;
  if (!in_range && bad != nullptr) atomicCAS(bad, -1, static_cast<int>(t));
  // Element offsets of the pair's first element in the source and in the cache row.
  const int64_t src = th * 2 * half + i, dst = (int64_t{row} * kv_heads + h) * 2 * half + i;
  if (is_k) {
    rotate_pair(k, positions, inv_freq, p, kv_heads, half, 1.0f);
    if (!in_range) return;
    k_cache[dst] = k[src];  // the rounded values this thread just stored
    k_cache[dst + half] = k[src + half];
  } else {
    if (!in_range) return;
    v_cache[dst] = v[src];
    v_cache[dst + half] = v[src + half];
  }
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

void rope_append_kv(GpuContext& ctx, Tensor q, Tensor k, const Tensor& v, Tensor k_cache,
                    Tensor v_cache, const Tensor& index, const Tensor& positions, float theta) {
  const char* op = "rope_append_kv";
  const int64_t tokens = q.shape[0], q_heads = q.shape[1], kv_heads = k.shape[1];
  const int64_t half = q.shape[2] / 2, cache_rows = k_cache.shape[0];
  const int64_t threads = tokens * (q_heads + 2 * kv_heads) * half;
  if (threads == 0) return;
  SMOL_CHECK(tokens < (int64_t{1} << 31), op, ": ", tokens, " tokens exceed an int index");
  const float* table = ctx.rope_inv_freq(theta, q.shape[2]);
  int* bad = nullptr;
  if (ctx.device_checks()) {  // debug mode (Backend::set_device_checks): a flag and a host wait
    bad = static_cast<int*>(ctx.scratch(sizeof(int)));
    cuda_check(cudaMemsetAsync(bad, 0xFF, sizeof(int), ctx.stream()), op);  // -1: all in range
  }
  dispatch_float(q.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(rope_append_kv_kernel<T>, ceil_div(threads, kThreads), kThreads, 0, ctx.stream(),
           q.as<T>(), k.as<T>(), static_cast<const T*>(v.as<T>()), k_cache.as<T>(), v_cache.as<T>(),
           static_cast<const int*>(index.as<int>()), static_cast<const int*>(positions.as<int>()),
           static_cast<const float*>(table), tokens, q_heads, kv_heads, half, cache_rows, bad);
  });
  if (bad == nullptr) return;
  int bad_token = -1;
  ctx.download(&bad_token, bad, sizeof(int));
  if (bad_token < 0) return;
  int value = 0;
  ctx.download(&value, index.as<int>() + bad_token, sizeof(int));
  throw_error(op, ": index[", bad_token, "] = ", value, " is outside [0, ", cache_rows, ")");
}

}  // namespace smol::SMOL_GPU_NS
