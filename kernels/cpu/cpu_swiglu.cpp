// SwiGLU (docs/formats.md §2): out = silu(gate) ⊙ up, silu(z) = z·σ(z), σ(z) = 1/(1+e^−z); all [T,
// F]. Backward (overwrites): dup = dout ⊙ silu(gate),
//                        dgate = dout ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))).
// Element-wise, so any output may alias an input. exp is exp_approx (≤ 2 ulp, vectorises).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {

namespace {
constexpr int64_t kChunk = 4096;  // elements per parallel task (whole cache lines)

SMOL_CPU_MULTIVERSION void swiglu_forward_loop(float* o, const float* g, const float* u,
                                               int64_t n) {
  const Float8 one = broadcast8(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t nl = std::min<int64_t>(8, n - i);
    const Float8 z = nl == 8 ? load8(g + i) : load_partial8(g + i, nl, 0.0f);
    const Float8 y = nl == 8 ? load8(u + i) : load_partial8(u + i, nl, 0.0f);
    const Float8 out = z / (one + exp_approx(-z)) * y;
    if (nl == 8)
      store8(o + i, out);
    else
      store_partial8(o + i, out, nl);
  }
}

SMOL_CPU_MULTIVERSION void swiglu_backward_loop(float* dg, float* du, const float* dy,
                                                const float* g, const float* u, int64_t n) {
  const Float8 one = broadcast8(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t nl = std::min<int64_t>(8, n - i);
    const bool full = nl == 8;
    const Float8 z = full ? load8(g + i) : load_partial8(g + i, nl, 0.0f);
    const Float8 y = full ? load8(u + i) : load_partial8(u + i, nl, 0.0f);
    const Float8 grad = full ? load8(dy + i) : load_partial8(dy + i, nl, 0.0f);
    const Float8 sig = one / (one + exp_approx(-z));
    const Float8 dgate = grad * y * sig * (one + z * (one - sig));
    const Float8 dup = grad * z * sig;
    if (full) {
      store8(dg + i, dgate);
      store8(du + i, dup);
    } else {
      store_partial8(dg + i, dgate, nl);
      store_partial8(du + i, dup, nl);
    }
  }
}
}  // namespace

void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) {
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  float* o = out.as<float>();
  const int64_t n = out.numel();
  // Chunks of whole cache lines per thread; the vector loop is the multiversioned helper.
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t begin = 0; begin < n; begin += kChunk)
    swiglu_forward_loop(o + begin, g + begin, u + begin, std::min(kChunk, n - begin));
}

void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  const float* dy = dout.as<float>();
  float* dg = dgate.as<float>();
  float* du = dup.as<float>();
  const int64_t n = dout.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t begin = 0; begin < n; begin += kChunk)
    swiglu_backward_loop(dg + begin, du + begin, dy + begin, g + begin, u + begin,
                         std::min(kChunk, n - begin));
}

void swiglu_backward_concat(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                            const Tensor& up) {
  const int64_t T = gate.shape[0], F = gate.shape[1];
  float* out = dgate_up.as<float>();
  // Row by row: the same vector loop, dgate to the row's first half and dup to its second.
#pragma omp parallel for schedule(static) if (T * F > 32768)
  for (int64_t t = 0; t < T; ++t)
    swiglu_backward_loop(out + t * 2 * F, out + t * 2 * F + F, dout.as<float>() + t * F,
                         gate.as<float>() + t * F, up.as<float>() + t * F, F);
}

}  // namespace smol::cpu
