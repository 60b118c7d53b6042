// Cross-entropy over logits [T, V] (F32 or BF16) against targets I32 [T] (−100 = ignored),
// docs/formats.md §2 "Loss", the same formula as cpu_cross_entropy.cpp:
//   lse_t = m + log Σ_v exp(x_tv − m), m = max_v x_tv;   loss_t = lse_t − x_t,target
//   dlogits = dloss_scale · (softmax − onehot(target)), 0 on ignored rows; may alias logits;
//   argmax_t (optional) = the first index of the row's maximum, ignored rows included.
// One 256-thread block per row, two passes over the row (the LM head's chunk of logits is the
// largest tensor of a step, so passes are what costs, docs/design.md §2):
//   pass 1  online softmax: each thread keeps (m, s = Σ exp(x − m)) over its strided elements,
//           rescaling s when m grows (Milakov & Gimelshein), and its (value, first index)
//           maximum; a fixed-order shared-memory tree merges the threads' pairs
//           (m, s) ⊕ (m', s') = (M, s·e^(m−M) + s'·e^(m'−M)), M = max(m, m'), so the result
//           does not depend on timing; lse = m + log s; the loss
//   pass 2  overwrites the row with the gradient.
// The target logit is read before the barrier that precedes pass 2, so aliasing is safe. A
// target outside [0, V) that is not −100 is recorded in a flag, read back and reported as
// smol::Error in the device-checks debug mode (GpuContext::device_checks; a host wait per
// call). The chunked LM head that never holds the full logits is Backend::lm_head_cross_entropy
// over this op.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kIgnoreIndex = -100;

// Σ exp(x − m) carried from maximum m to maximum to ≥ m; an empty sum (m = −∞) stays 0.
__device__ __forceinline__ float rescaled(float sum, float m, float to) {
  return m == -INFINITY ? 0.0f : sum * expf(m - to);
}

__device__ __forceinline__ bool better(float v, int i, float best_v, int best_i) {
  return v > best_v || (v == best_v && i < best_i);
}

template <typename T>
__global__ void cross_entropy_kernel(float* losses /* [T] */, T* dlogits /* [T, V] or null */,
                                     int* argmax /* [T] or null */, const T* logits /* [T, V] */,
                                     const int* targets /* [T] */, int* bad_row, int64_t vocab,
                                     float dloss_scale) {
  __shared__ float tree_m[kThreads], tree_s[kThreads], tree_v[kThreads];
  __shared__ int tree_i[kThreads];
  const int64_t row = blockIdx.x;
  const int tid = threadIdx.x;
  const T* x = logits + row * vocab;
  T* dx = dlogits ? dlogits + row * vocab : nullptr;
  const int target = targets[row];
  const bool ignored = target == kIgnoreIndex || target < 0 || target >= vocab;
  if (ignored && target != kIgnoreIndex && tid == 0) atomicCAS(bad_row, -1, static_cast<int>(row));
  if (ignored && argmax == nullptr) {
    if (tid == 0) losses[row] = 0.0f;
    if (dx)
      for (int64_t c = tid; c < vocab; c += blockDim.x) dx[c] = from_float<T>(0.0f);
    return;  // the whole block leaves: no barrier is skipped by part of it
  }
  // Pass 1: online (max, Σ exp) and the first maximum, per thread, then a fixed-order tree.
  float m = -INFINITY, s = 0.0f, best_v = -INFINITY;
  int best_i = static_cast<int>(vocab);  // loses every tie against a real index
  for (int64_t c = tid; c < vocab; c += blockDim.x) {
    const float v = to_float(x[c]);
    if (v > m) {
      s = rescaled(s, m, v) + 1.0f;
      m = v;
    } else {
      s += rescaled(1.0f, v, m);  // exp(v − m); 0 for v = −∞ (never ∞ − ∞)
    }
    if (better(v, static_cast<int>(c), best_v, best_i)) best_v = v, best_i = static_cast<int>(c);
  }
  tree_m[tid] = m, tree_s[tid] = s, tree_v[tid] = best_v, tree_i[tid] = best_i;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (tid < stride) {
      const float m2 = tree_m[tid + stride], mm = fmaxf(tree_m[tid], m2);
      tree_s[tid] = rescaled(tree_s[tid], tree_m[tid], mm) + rescaled(tree_s[tid + stride], m2, mm);
      tree_m[tid] = mm;
      if (better(tree_v[tid + stride], tree_i[tid + stride], tree_v[tid], tree_i[tid]))
        tree_v[tid] = tree_v[tid + stride], tree_i[tid] = tree_i[tid + stride];
    }
    __syncthreads();
  }
  if (argmax && tid == 0) argmax[row] = tree_i[0];
  if (ignored) {
    if (tid == 0) losses[row] = 0.0f;
    if (dx)
      for (int64_t c = tid; c < vocab; c += blockDim.x) dx[c] = from_float<T>(0.0f);
    return;
  }
  const float lse = tree_m[0] + logf(tree_s[0]);
  if (tid == 0) losses[row] = lse - to_float(x[target]);
  if (dx == nullptr) return;
  __syncthreads();  // the target logit is read before anyone overwrites the row
  for (int64_t c = tid; c < vocab; c += blockDim.x) {
    float g = dloss_scale * expf(to_float(x[c]) - lse);
    if (c == target) g -= dloss_scale;
    dx[c] = from_float<T>(g);
  }
}

}  // namespace

void cross_entropy(GpuContext& ctx, Tensor losses, Tensor* dlogits, const Tensor& logits,
                   const Tensor& targets, float dloss_scale, Tensor argmax) {
  const char* op = "cross_entropy";
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  if (rows == 0) return;
  int* bad_row = static_cast<int*>(ctx.scratch(sizeof(int)));
  cuda_check(cudaMemsetAsync(bad_row, 0xFF, sizeof(int), ctx.stream()), op);
  dispatch_float(logits.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(cross_entropy_kernel<T>, static_cast<unsigned>(rows), kThreads, 0, ctx.stream(),
           losses.as<float>(), dlogits ? dlogits->as<T>() : static_cast<T*>(nullptr),
           argmax.data ? argmax.as<int>() : static_cast<int*>(nullptr), logits.as<T>(),
           targets.as<int>(), bad_row, vocab, dloss_scale);
  });
  if (!ctx.device_checks()) return;  // debug mode only: the host checked the batch's labels
  int host_bad_row = -1;
  ctx.download(&host_bad_row, bad_row, sizeof(int));
  if (host_bad_row >= 0) {
    int target = 0;
    cuda_check(
        cudaMemcpy(&target, targets.as<int>() + host_bad_row, sizeof(int), cudaMemcpyDeviceToHost),
        op);
    throw_error(op, ": target ", target, " at row ", host_bad_row,
                " is outside the vocabulary of logits ", logits.shape.str(),
                " (and is not the ignore index -100)");
  }
}

}  // namespace smol::SMOL_GPU_NS
