// SwiGLU (formats.md §2): out = silu(gate) ⊙ up, silu(z) = z·σ(z), σ(z) = 1/(1+e^−z); all [T, F].
// Backward (overwrites): dup = dout ⊙ silu(gate),
//                        dgate = dout ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))).
// Element-wise, so any output may alias an input. exp is exp_approx (≤ 2 ulp, vectorises).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_checks.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {

namespace {
SMOL_CPU_MULTIVERSION void swiglu_forward_loop(float* o, const float* g, const float* u,
                                               int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
}
}  // namespace

void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) {
  check_f32("swiglu_forward", "out", out);
  check_f32("swiglu_forward", "gate", gate);
  check_f32("swiglu_forward", "up", up);
  check_same_shape("swiglu_forward", "gate", gate, "up", up);
  check_same_shape("swiglu_forward", "out", out, "gate", gate);
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  float* o = out.as<float>();
  const int64_t n = out.numel();
  // Chunks of whole cache lines per thread; the vector loop is the multiversioned helper.
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t begin = 0; begin < n; begin += kChunk)
    swiglu_forward_loop(o + begin, g + begin, u + begin, std::min(kChunk, n - begin));
}

void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  const char* op = "swiglu_backward";
  check_f32(op, "dgate", dgate);
  check_f32(op, "dup", dup);
  check_f32(op, "dout", dout);
  check_f32(op, "gate", gate);
  check_f32(op, "up", up);
  check_same_shape(op, "gate", gate, "up", up);
  check_same_shape(op, "dout", dout, "gate", gate);
  check_same_shape(op, "dgate", dgate, "gate", gate);
  check_same_shape(op, "dup", dup, "up", up);
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  const float* dy = dout.as<float>();
  float* dg = dgate.as<float>();
  float* du = dup.as<float>();
  const int64_t n = dout.numel();
#pragma omp parallel for simd schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    const float z = g[i], y = u[i], grad = dy[i];
    const float sig = 1.0f / (1.0f + exp_approx(-z));
    dg[i] = grad * y * sig * (1.0f + z * (1.0f - sig));
    du[i] = grad * z * sig;
  }
}

}  // namespace smol::cpu
