// Embedding lookup and its gradient.
//
// Forward: out[t, :] = table[ids[t], :]. One thread per 8 channels of one token, 16-byte
// accesses when rows are 16-byte aligned. A token id outside [0, V) is recorded (first bad
// position wins, atomicCAS on a flag) and, in the device-checks debug mode, read back and
// reported as smol::Error after the launch.
//
// Backward: dtable[ids[t], :] += dout[t, :], deterministic without atomics: thread c owns
// channel c and walks the tokens in order t = 0..T−1, so every dtable element receives its
// contributions in a fixed order and no two threads ever touch the same element. (llm.c
// buckets tokens on the CPU to parallelise further; part 1 keeps the simple exact scheme.)
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void record_bad_id(int* bad_position, int t) {
  atomicCAS(bad_position, -1, t);
}

template <typename Tout, typename Ttab>
__global__ void embedding_forward_kernel(Tout* out /* [T, C] */, const int* ids /* [T] */,
                                         const Ttab* table /* [V, C] */, int* bad_position,
                                         int64_t tokens, int64_t channels, int64_t vocab,
                                         bool vec) {
  const int64_t groups = (channels + 7) / 8;
  const int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (g >= tokens * groups) return;
  const int64_t t = g / groups, c = (g % groups) * 8;
  const int id = ids[t];
  if (id < 0 || id >= vocab) {
    record_bad_id(bad_position, static_cast<int>(t));
    return;
  }
  float v[8];
  load8(v, table + id * channels, c, channels, vec);
  store8(out + t * channels, v, c, channels, vec);
}

template <typename Tgrad, typename Tdout>
__global__ void embedding_backward_kernel(Tgrad* dtable /* [V, C] */,
                                          const Tdout* dout /* [T, C] */, const int* ids /* [T] */,
                                          int* bad_position, int64_t tokens, int64_t channels,
                                          int64_t vocab) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  for (int64_t t = 0; t < tokens; ++t) {
    const int id = ids[t];
    if (id < 0 || id >= vocab) {
      record_bad_id(bad_position, static_cast<int>(t));
      continue;
    }
    Tgrad* slot = dtable + id * channels + c;
    *slot = from_float<Tgrad>(to_float(*slot) + to_float(dout[t * channels + c]));
  }
}

// Reads back the flag the kernels set (in the device-checks debug mode, GpuContext); throws
// naming the first bad token.
void check_ids(GpuContext& ctx, const char* op, const int* bad_position_device, const Tensor& ids,
               int64_t vocab) {
  if (!ctx.device_checks()) return;  // debug mode only: the host checked the batch
  int bad_position = -1;
  ctx.download(&bad_position, bad_position_device, sizeof(int));
  if (bad_position < 0) return;
  int id = 0;
  cuda_check(cudaMemcpy(&id, ids.as<int>() + bad_position, sizeof(int), cudaMemcpyDeviceToHost),
             op);
  throw_error(op, ": token id ", id, " at position ", bad_position,
              " is outside the vocabulary [0, ", vocab, ")");
}

int* reset_flag(GpuContext& ctx, const char* op) {
  int* flag = static_cast<int*>(ctx.scratch(sizeof(int)));
  cuda_check(cudaMemsetAsync(flag, 0xFF, sizeof(int), ctx.stream()), op);  // -1: no bad id
  return flag;
}

}  // namespace

void embedding_forward(GpuContext& ctx, Tensor out, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding_forward";
  const int64_t tokens = ids.numel(), channels = table.shape.cols(), vocab = table.shape.rows();
  if (tokens == 0) return;
  int* flag = reset_flag(ctx, op);
  const bool vec = channels % 8 == 0 && aligned16(out.data) && aligned16(table.data) &&
                   (channels * static_cast<int64_t>(dtype_size(table.dtype))) % 16 == 0;
  dispatch_float(out.dtype, op, [&](auto out_tag) {
    dispatch_float(table.dtype, op, [&](auto tab_tag) {
      using Tout = decltype(out_tag);
      using Ttab = decltype(tab_tag);
      launch(embedding_forward_kernel<Tout, Ttab>,
             ceil_div(tokens * ((channels + 7) / 8), kThreads), kThreads, 0, ctx.stream(),
             out.as<Tout>(), ids.as<int>(), table.as<Ttab>(), flag, tokens, channels, vocab, vec);
    });
  });
  check_ids(ctx, op, flag, ids, vocab);
}

void embedding_backward(GpuContext& ctx, Tensor dtable, const Tensor& dout, const Tensor& ids) {
  const char* op = "embedding_backward";
  const int64_t tokens = ids.numel(), channels = dtable.shape.cols(), vocab = dtable.shape.rows();
  if (tokens == 0) return;
  int* flag = reset_flag(ctx, op);
  dispatch_float(dtable.dtype, op, [&](auto grad_tag) {
    dispatch_float(dout.dtype, op, [&](auto dout_tag) {
      using Tgrad = decltype(grad_tag);
      using Tdout = decltype(dout_tag);
      launch(embedding_backward_kernel<Tgrad, Tdout>, ceil_div(channels, kThreads), kThreads, 0,
             ctx.stream(), dtable.as<Tgrad>(), dout.as<Tdout>(), ids.as<int>(), flag, tokens,
             channels, vocab);
    });
  });
  check_ids(ctx, op, flag, ids, vocab);
}

}  // namespace smol::SMOL_GPU_NS
