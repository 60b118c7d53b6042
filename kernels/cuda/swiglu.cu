// SwiGLU: out = silu(gate) ⊙ up with silu(z) = z·sigmoid(z), all [T, F] (backend.h).
// Backward (overwrites): with s = sigmoid(g),
//   dgate = dout · up · s · (1 + g·(1 − s))        (d silu/dz = s + z·s·(1 − s))
//   dup   = dout · silu(g)
// fp32 math, one rounding per output. 8 elements per thread, 16-byte accesses when every
// pointer is 16-byte aligned, scalar tail. dgate/dup may alias dout (read before written).
// The concatenated backward writes row t of dgate_up [T, 2F] as (dgate[t], dup[t]), the operand
// of one GEMM against [W_gate; W_up] (docs/design.md §2.9); same math, same bits.
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float z) {
  return 1.0f / (1.0f + expf(-z));
}

template <typename T>
__global__ void swiglu_forward_kernel(T* out /* [n] */, const T* gate /* [n] */,
                                      const T* up /* [n] */, int64_t n, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float g[8], u[8];
  load8(g, gate, i, n, vec);
  load8(u, up, i, n, vec);
  for (int j = 0; j < 8; ++j) g[j] = g[j] * sigmoid(g[j]) * u[j];
  store8(out, g, i, n, vec);
}

// The SwiGLU gradients of 8 elements from i: dup = d·g·σ(g), dgate = d·u·σ(g)·(1 + g·(1 − σ(g))).
template <typename T>
__device__ __forceinline__ void swiglu_grad8(float (&dg)[8], float (&du)[8], const T* dout,
                                             const T* gate, const T* up, int64_t i, int64_t n,
                                             bool vec) {
  float d[8], g[8], u[8];
  load8(d, dout, i, n, vec);
  load8(g, gate, i, n, vec);
  load8(u, up, i, n, vec);
  for (int j = 0; j < 8; ++j) {
    const float s = sigmoid(g[j]);
    du[j] = d[j] * g[j] * s;
    dg[j] = d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(T* dgate /* [n] */, T* dup /* [n] */,
                                       const T* dout /* [n] */, const T* gate /* [n] */,
                                       const T* up /* [n] */, int64_t n, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float dg[8], du[8];
  swiglu_grad8(dg, du, dout, gate, up, i, n, vec);
  store8(dgate, dg, i, n, vec);
  store8(dup, du, i, n, vec);
}

// dgate_up [T, 2F] from dout, gate, up [T, F] (n = T·F elements). vec: every pointer 16-byte
// aligned and F % 8 == 0, so a thread's 8 elements lie in one row and its stores are 16-byte.
template <typename T>
__global__ void swiglu_backward_concat_kernel(T* dgate_up /* [T, 2F] */, const T* dout /* [n] */,
                                              const T* gate /* [n] */, const T* up /* [n] */,
                                              int64_t n, int64_t F, bool vec) {
  const int64_t i = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  float dg[8], du[8];
  swiglu_grad8(dg, du, dout, gate, up, i, n, vec);
  if (vec) {
    T* row = dgate_up + (i / F) * 2 * F;
    const int64_t f = i % F;
    store8(row, dg, f, F, true);
    store8(row + F, du, f, F, true);
    return;
  }
  for (int j = 0; j < 8 && i + j < n; ++j) {
    T* row = dgate_up + ((i + j) / F) * 2 * F;
    const int64_t f = (i + j) % F;
    row[f] = from_float<T>(dg[j]);
    row[F + f] = from_float<T>(du[j]);
  }
}

}  // namespace

void swiglu_backward_concat(GpuContext& ctx, Tensor dgate_up, const Tensor& dout,
                            const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_backward";
  const int64_t n = gate.numel(), F = gate.shape.cols();
  if (n == 0) return;
  const bool vec = F % 8 == 0 && aligned16(dgate_up.data) && aligned16(dout.data) &&
                   aligned16(gate.data) && aligned16(up.data);
  dispatch_float(gate.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(swiglu_backward_concat_kernel<T>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(),
           dgate_up.as<T>(), dout.as<T>(), gate.as<T>(), up.as<T>(), n, F, vec);
  });
}

void swiglu_forward(GpuContext& ctx, Tensor out, const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_forward";
  const int64_t n = out.numel();
  if (n == 0) return;
  const bool vec = aligned16(out.data) && aligned16(gate.data) && aligned16(up.data);
  dispatch_float(out.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(swiglu_forward_kernel<T>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(),
           out.as<T>(), gate.as<T>(), up.as<T>(), n, vec);
  });
}

void swiglu_backward(GpuContext& ctx, Tensor dgate, Tensor dup, const Tensor& dout,
                     const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_backward";
  const int64_t n = gate.numel();
  if (n == 0) return;
  const bool vec = aligned16(dgate.data) && aligned16(dup.data) && aligned16(dout.data) &&
                   aligned16(gate.data) && aligned16(up.data);
  dispatch_float(gate.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    launch(swiglu_backward_kernel<T>, ceil_div(n, 8 * kThreads), kThreads, 0, ctx.stream(),
           dgate.as<T>(), dup.as<T>(), dout.as<T>(), gate.as<T>(), up.as<T>(), n, vec);
  });
}

}  // namespace smol::SMOL_GPU_NS
