// RMSNorm (docs/formats.md §2), fused with the residual add, and its backward.
//
// Forward: one warp per row of x [T, C]. Pass 1 reads the row (8 channels per lane per step,
// 16-byte loads when C % 8 == 0 and pointers are aligned), accumulates Σx² in fp32 and — when
// fused — first forms sum = a + b, rounds it to the activation type and stores it, so the norm
// and the backward see exactly the stored residual. rstd = 1/sqrt(Σx²/C + eps) (fp32, saved
// for the backward). Pass 2 re-reads the row (L1/L2 hit) and writes out = w ⊙ (x · rstd),
// rounded once. `sum` may alias `a`: every element is read, then written, by the same lane.
//
// Backward, with g = dout ⊙ w and r = rstd (cpu_rmsnorm.cpp derives it):
//   dx      += r·g − x · r³/C · Σ_c g·x                       (accumulates, one warp per row)
//   dweight += Σ_t dout ⊙ x · r                                (accumulates)
// dweight is deterministic without atomics (llm.c layernorm_backward, two-stage): each warp
// keeps its own fp32 row of partial sums in shared memory; at the end of the block the warps'
// rows are added in warp order into a per-block partial [G, C] in global scratch, and a second
// kernel adds the G partials in block order into dweight.
#include <algorithm>
#include <initializer_list>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

template <typename T, typename Tw, bool kFusedAdd>
__global__ void rmsnorm_forward_kernel(T* out /* [T, C] */, float* rstd /* [T] */,
                                       T* sum /* [T, C], fused only; may alias a */,
                                       const T* a /* [T, C]: x, or the residual */,
                                       const T* b /* [T, C], fused only */,
                                       const Tw* weight /* [C] */, int64_t rows, int64_t channels,
                                       float eps, bool vec) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t{blockIdx.x} * kWarps + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together, so shuffles stay complete
  const int64_t base = row * channels;
  const T* x = kFusedAdd ? sum : a;

  float sum_sq = 0.0f;
  for (int64_t c = lane * 8; c < channels; c += 32 * 8) {
    float v[8];
    load8(v, a + base, c, channels, vec);
    if constexpr (kFusedAdd) {
      float w[8];
      load8(w, b + base, c, channels, vec);
      for (int j = 0; j < 8; ++j) v[j] = to_float(from_float<T>(v[j] + w[j]));
      store8(sum + base, v, c, channels, vec);
    }
    for (int j = 0; j < 8; ++j) sum_sq += v[j] * v[j];  // missing tail elements are 0
  }
  sum_sq = warp_sum(sum_sq);
  const float r = 1.0f / sqrtf(sum_sq / static_cast<float>(channels) + eps);
  if (lane == 0) rstd[row] = r;

  for (int64_t c = lane * 8; c < channels; c += 32 * 8) {
    float v[8], w[8];
    load8(v, x + base, c, channels, vec);
    load8(w, weight, c, channels, vec);
    for (int j = 0; j < 8; ++j) v[j] = w[j] * (v[j] * r);
    store8(out + base, v, c, channels, vec);
  }
}

template <typename T, typename Tw, typename Tdx>
__global__ void rmsnorm_backward_kernel(Tdx* dx /* [T, C] */, float* dweight_partial /* [G, C] */,
                                        const T* dout /* [T, C] */, const T* x /* [T, C] */,
                                        const Tw* weight /* [C] */, const float* rstd /* [T] */,
                                        int64_t rows, int64_t channels, int64_t rows_per_block,
                                        bool vec) {
  float* warp_dweight = dynamic_shared<float>();  // [kWarps, C]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* my_dweight = warp_dweight + warp * channels;
  for (int64_t c = lane; c < channels; c += 32) my_dweight[c] = 0.0f;
  __syncwarp();  // lanes zero other lanes' channels: order the zeroing before accumulation
  const int64_t row_begin = int64_t{blockIdx.x} * rows_per_block;
  const int64_t row_end = row_begin + rows_per_block < rows ? row_begin + rows_per_block : rows;
  for (int64_t row = row_begin + warp; row < row_end; row += kWarps) {
    const int64_t base = row * channels;
    const float r = rstd[row];
    float g_dot_x = 0.0f;
    for (int64_t c = lane * 8; c < channels; c += 32 * 8) {
      float g[8], xv[8], w[8];
      load8(g, dout + base, c, channels, vec);
      load8(xv, x + base, c, channels, vec);
      load8(w, weight, c, channels, vec);
      for (int j = 0; j < 8; ++j) g_dot_x += g[j] * w[j] * xv[j];
    }
    g_dot_x = warp_sum(g_dot_x);
    const float coeff = g_dot_x * r * r * r / static_cast<float>(channels);
    for (int64_t c = lane * 8; c < channels; c += 32 * 8) {
      float g[8], xv[8], w[8], d[8];
      load8(g, dout + base, c, channels, vec);
      load8(xv, x + base, c, channels, vec);
      load8(w, weight, c, channels, vec);
      load8(d, dx + base, c, channels, vec);
      for (int j = 0; j < 8; ++j) {
        d[j] += r * g[j] * w[j] - xv[j] * coeff;
        if (c + j < channels) my_dweight[c + j] += g[j] * xv[j] * r;
      }
      store8(dx + base, d, c, channels, vec);
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    float total = 0.0f;
    for (int w = 0; w < kWarps; ++w) total += warp_dweight[w * channels + c];
    dweight_partial[int64_t{blockIdx.x} * channels + c] = total;
  }
}

__global__ void reduce_dweight_kernel(float* dweight /* [C] */,
                                      const float* dweight_partial /* [G, C] */, int blocks,
                                      int64_t channels) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float total = 0.0f;
  for (int b = 0; b < blocks; ++b) total += dweight_partial[b * channels + c];
  dweight[c] += total;
}

bool rows_vectorisable(int64_t channels, std::initializer_list<const void*> pointers) {
  if (channels % 8 != 0) return false;
  for (const void* p : pointers)
    if (!aligned16(p)) return false;
  return true;
}

template <bool kFusedAdd>
void forward(GpuContext& ctx, const char* op, Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
             const Tensor& b, const Tensor& weight, float eps) {
  const int64_t rows = a.shape.rows(), channels = a.shape.cols();
  if (rows == 0) return;
  const bool vec = rows_vectorisable(channels, {out.data, a.data, weight.data, b.data, sum.data});
  dispatch_float(a.dtype, op, [&](auto act_tag) {
    dispatch_float(weight.dtype, op, [&](auto w_tag) {
      using T = decltype(act_tag);
      using Tw = decltype(w_tag);
      launch(rmsnorm_forward_kernel<T, Tw, kFusedAdd>, ceil_div(rows, kWarps), kThreads, 0,
             ctx.stream(), out.as<T>(), rstd.as<float>(), sum.as<T>(), a.as<T>(), b.as<T>(),
             weight.as<Tw>(), rows, channels, eps, vec);
    });
  });
}

}  // namespace

void rmsnorm_forward(GpuContext& ctx, Tensor out, Tensor rstd, const Tensor& x,
                     const Tensor& weight, float eps) {
  forward<false>(ctx, "rmsnorm_forward", Tensor{}, out, rstd, x, Tensor{}, weight, eps);
}

void add_rmsnorm_forward(GpuContext& ctx, Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                         const Tensor& b, const Tensor& weight, float eps) {
  const char* op = "add_rmsnorm_forward";
  forward<true>(ctx, op, sum, out, rstd, a, b, weight, eps);
}

void rmsnorm_backward(GpuContext& ctx, Tensor dx, Tensor dweight, const Tensor& dout,
                      const Tensor& x, const Tensor& weight, const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  const int64_t rows = x.shape.rows(), channels = x.shape.cols();
  if (rows == 0) return;
  const size_t shared_bytes = sizeof(float) * kWarps * static_cast<size_t>(channels);
  SMOL_CHECK(shared_bytes <= 227 * 1024, op, ": width ", channels,
             " needs more shared memory than a block has");
  // Fixed for a given (rows, device): the dweight summation order is reproducible.
  const int64_t blocks = std::min<int64_t>(ceil_div(rows, kWarps), 2 * ctx.sm_count());
  const int64_t rows_per_block = (rows + blocks - 1) / blocks;
  float* partial = static_cast<float*>(ctx.scratch(sizeof(float) * blocks * channels));
  const bool vec = rows_vectorisable(channels, {dx.data, dout.data, x.data, weight.data});
  dispatch_float(x.dtype, op, [&](auto act_tag) {
    dispatch_float(weight.dtype, op, [&](auto w_tag) {
      dispatch_float(dx.dtype, op, [&](auto dx_tag) {
        using T = decltype(act_tag);
        using Tw = decltype(w_tag);
        using Tdx = decltype(dx_tag);
        auto* kernel = rmsnorm_backward_kernel<T, Tw, Tdx>;
        if (shared_bytes > 48 * 1024)
          cuda_check(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(shared_bytes)),
                     "rmsnorm_backward shared memory");
        launch(kernel, static_cast<unsigned>(blocks), kThreads, shared_bytes, ctx.stream(),
               dx.as<Tdx>(), partial, dout.as<T>(), x.as<T>(), weight.as<Tw>(), rstd.as<float>(),
               rows, channels, rows_per_block, vec);
      });
    });
  });
  launch(reduce_dweight_kernel, ceil_div(channels, 256), 256, 0, ctx.stream(), dweight.as<float>(),
         static_cast<const float*>(partial), static_cast<int>(blocks), channels);
}

}  // namespace smol::SMOL_GPU_NS
