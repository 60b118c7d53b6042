// Cross-entropy over logits [T, V] (F32 or BF16) against targets I32 [T] (−100 = ignored),
// docs/formats.md §2 "Loss", the same formula as cpu_cross_entropy.cpp:
//   lse_t = m + log Σ_v exp(x_tv − m), m = max_v x_tv;   loss_t = lse_t − x_t,target
//   dlogits = dloss_scale · (softmax − onehot(target)), 0 on ignored rows; may alias logits.
// One 256-thread block per row (llm.c fused_classifier style, simple version): pass 1 the row
// max, pass 2 Σ exp in fp32 (per-thread strided sums, then a fixed-order block tree), then the
// loss, and pass 3 overwrites the row with the gradient. The target logit is read before the
// barrier that precedes pass 3, so aliasing is safe. A target outside [0, V) that is not −100
// is recorded in a flag, read back and reported as smol::Error in the device-checks debug mode
// (GpuContext::device_checks; a host wait per call). The chunked LM head that never holds the
// full logits is Backend::lm_head_cross_entropy over this op.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kIgnoreIndex = -100;

template <typename T>
__global__ void cross_entropy_kernel(float* losses /* [T] */, T* dlogits /* [T, V] or null */,
                                     const T* logits /* [T, V] */, const int* targets /* [T] */,
                                     int* bad_row, int64_t vocab, float dloss_scale) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * vocab;
  T* dx = dlogits ? dlogits + row * vocab : nullptr;
  const int target = targets[row];
  if (target == kIgnoreIndex || target < 0 || target >= vocab) {
    if (target != kIgnoreIndex && threadIdx.x == 0) atomicCAS(bad_row, -1, static_cast<int>(row));
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (dx)
      for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) dx[c] = from_float<T>(0.0f);
    return;  // the whole block leaves: no barrier is skipped by part of it
  }
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) m = fmaxf(m, to_float(x[c]));
  m = block_max(m, scratch);
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) sum += expf(to_float(x[c]) - m);
  sum = block_sum(sum, scratch);
  const float lse = m + logf(sum);
  if (threadIdx.x == 0) losses[row] = lse - to_float(x[target]);
  if (dx == nullptr) return;
  __syncthreads();  // the target logit is read before anyone overwrites the row
  for (int64_t c = threadIdx.x; c < vocab; c += blockDim.x) {
    float g = dloss_scale * expf(to_float(x[c]) - lse);
    if (c == target) g -= dloss_scale;
    dx[c] = from_float<T>(g);
  }
}

}  // namespace

void cross_entropy(GpuContext& ctx, Tensor losses, Tensor* dlogits, const Tensor& logits,
                   const Tensor& targets, float dloss_scale) {
  const char* op = "cross_entropy";
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  if (rows == 0) return;
  int* bad_row = static_cast<int*>(ctx.scratch(sizeof(int)));
  cuda_check(cudaMemsetAsync(bad_row, 0xFF, sizeof(int), ctx.stream()), op);
  dispatch_float(logits.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(cross_entropy_kernel<T>, static_cast<unsigned>(rows), kThreads, 0, ctx.stream(),
           losses.as<float>(), dlogits ? dlogits->as<T>() : static_cast<T*>(nullptr),
           logits.as<T>(), targets.as<int>(), bad_row, vocab, dloss_scale);
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
