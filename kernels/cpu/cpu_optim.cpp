// Optimiser ops: the global squared norm for gradient clipping and the AdamW step.
//
// accumulate_sum: acc += Σ x in double, in index order (a training step's loss, on the device).
//
// sum_of_squares: Σ x² over every tensor, in double. Each tensor is cut into fixed chunks of
// kChunk elements summed in parallel; chunk sums are then added in index order, so the
// result is identical for any thread count and on every call.
//
// adamw_step (docs/design.md §4, docs/seed-behaviour.md §6), in torch.optim.AdamW's own order of
// operations (single-tensor path) so that 5 steps match PyTorch to fp32 rounding:
//   g = grad·grad_scale;  p ← p·(1 − lr·wd)
//   m ← m + (1−β1)(g − m)   (torch's lerp);  v ← β2 v + (1−β2) g²
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
// with the bias corrections computed in double, as Python floats are. With hyper.clip_state the
// clip factor is computed here from the stored Σ grad², in double exactly as the optimizer did on
// the host before clipping moved to the device (kernels/backend.h AdamWHyper), so cpu results are
// unchanged bit for bit.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {
constexpr int64_t kChunk = 16384;
}

double sum_of_squares(std::span<const Tensor> tensors) {
  double total = 0.0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    const float* x = t.as<float>();
    const int64_t n = t.numel();
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (int64_t e = begin; e < end; ++e) acc += static_cast<double>(x[e]) * x[e];
      partial[c] = acc;
    }
    for (double p : partial) total += p;
  }
  return total;
}

void sum_of_squares_into(Tensor out, std::span<const Tensor> tensors) {
  out.as<double>()[0] = sum_of_squares(tensors);
}

void accumulate_sum(Tensor acc, const Tensor& x) {
  const float* in = x.as<float>();
  double total = 0.0;
  for (int64_t i = 0; i < x.numel(); ++i) total += in[i];  // in index order
  float* out = acc.as<float>();
  out[0] = static_cast<float>(static_cast<double>(out[0]) + total);
}

void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) {
  float clip_scale = hyper.grad_scale;
  if (hyper.clip_state.data != nullptr) {
    double* state = hyper.clip_state.as<double>();
    const double norm = std::sqrt(state[0]);
    const bool loss_finite =
        hyper.loss_check.data == nullptr || std::isfinite(hyper.loss_check.as<float>()[0]);
    if (!std::isfinite(norm) || !loss_finite) {  // skip the update; remember the first skip
      if (state[1] == 0) {
        state[1] = static_cast<double>(hyper.step);
        state[2] = state[0];
      }
      return;
    }
    if (state[1] != 0) return;  // an earlier update was skipped: skip every later one
    // torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
    clip_scale = hyper.max_grad_norm > 0
                     ? static_cast<float>(std::min(1.0, hyper.max_grad_norm / (norm + 1e-6)))
                     : 1.0f;
  }
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(hyper.beta1), hyper.step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(hyper.beta2), hyper.step);
  const float step_size = static_cast<float>(hyper.lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float one_minus_beta1 = 1.0f - hyper.beta1, one_minus_beta2 = 1.0f - hyper.beta2;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamWTensor& t = tensors[i];
    float* p = t.param.as<float>();
    const float* g = t.grad.as<float>();
    float* m = t.m.as<float>();
    float* v = t.v.as<float>();
    const float decay =  // torch: param.mul_(1 - lr * weight_decay), a Python float
        static_cast<float>(1.0 - static_cast<double>(hyper.lr) * t.weight_decay);
    const float grad_scale = clip_scale, beta2 = hyper.beta2, eps = hyper.eps;
    const int64_t n = t.param.numel();
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t e = 0; e < n; ++e) {
      const float grad = g[e] * grad_scale;
      const float param = p[e] * decay;
      const float m_new = m[e] + one_minus_beta1 * (grad - m[e]);
      const float v_new = v[e] * beta2 + one_minus_beta2 * grad * grad;
      const float denom = std::sqrt(v_new) / bias_correction2_sqrt + eps;
      m[e] = m_new;
      v[e] = v_new;
      p[e] = param - step_size * (m_new / denom);
    }
  }
}

}  // namespace smol::cpu
