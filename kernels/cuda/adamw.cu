// Multi-tensor AdamW (docs/design.md §4, docs/seed-behaviour.md §6) with decoupled weight decay,
// fp32 parameters, gradients and state, in torch.optim.AdamW's order of operations (the same as
// cpu_optim.cpp, so both backends agree to fp32 rounding):
//   g = grad·grad_scale;  p ← p·(1 − lr·wd)
//   m ← m + (1−β1)(g − m);  v ← β2 v + (1−β2) g²
//   p ← p − (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + eps)
// One launch updates every tensor (llm.c adamw_kernel3 with a 2-D grid): blockIdx.y picks the
// tensor from a descriptor array in device scratch, blocks along x stride over its elements.
// With a clip state (kernels/backend.h AdamWHyper) every thread derives grad_scale from the
// device's Σ grad² itself, in double as torch.nn.utils.clip_grad_norm_ and cpu_optim.cpp do
// (sqrt and division are correctly rounded in double on both compilers, so the factor is the
// host's bit for bit), and a non-finite norm (or loss, AdamWHyper::loss_check) skips the whole
// update: no host wait in a step
// (docs/design.md §2, §4).
#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocksPerTensor = 1024;

struct AdamWSlot {
  float* param;
  const float* grad;
  float* m;
  float* v;
  int64_t n;
  float decay;  // 1 − lr·wd, computed in double on the host as torch does
};

struct AdamWScalars {
  float grad_scale, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps;
  double max_grad_norm;
  int64_t step;
};

__global__ void adamw_kernel(
    const AdamWSlot* slots /* [tensors] */, AdamWScalars s,
    double* clip /* [3] or nullptr: Σ g², first skipped step, its Σ g² */,
    const float* loss /* [1] or nullptr: the step's loss, skip when not finite */) {
  float grad_scale = s.grad_scale;
  if (clip != nullptr) {
    const double norm2 = clip[0];
    // Not finite (NaN or +inf; a sum of squares is never negative): skip. The comparisons are
    // false for NaN, which is why they are not written as norm2 > DBL_MAX.
    const bool loss_finite = loss == nullptr || fabsf(*loss) <= 3.4028234663852886e38f;
    if (!(norm2 <= 1.7976931348623157e308) || !loss_finite) {
      if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0 && clip[1] == 0.0) {
        clip[1] = static_cast<double>(s.step);
        clip[2] = norm2;
      }
      return;
    }
    if (clip[1] != 0.0) return;  // an earlier update was skipped: skip every later one
    if (s.max_grad_norm > 0) {
      const double coef = s.max_grad_norm / (sqrt(norm2) + 1e-6);
      grad_scale = static_cast<float>(coef < 1.0 ? coef : 1.0);
    } else {
      grad_scale = 1.0f;
    }
  }
  const AdamWSlot slot = slots[blockIdx.y];
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < slot.n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const float grad = slot.grad[e] * grad_scale;
    const float param = slot.param[e] * slot.decay;
    const float m_old = slot.m[e];
    const float m_new = m_old + s.one_minus_beta1 * (grad - m_old);
    const float v_new = slot.v[e] * s.beta2 + s.one_minus_beta2 * grad * grad;
    const float denom = sqrtf(v_new) / s.bias_correction2_sqrt + s.eps;
    slot.m[e] = m_new;
    slot.v[e] = v_new;
    slot.param[e] = param - s.step_size * (m_new / denom);
  }
}

}  // namespace

void adamw_step(GpuContext& ctx, std::span<AdamWTensor> tensors, const AdamWHyper& hyper) {
  std::vector<AdamWSlot> slots;
  int64_t max_n = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamWTensor& t = tensors[i];
    if (t.param.numel() == 0) continue;
    const float decay = static_cast<float>(1.0 - static_cast<double>(hyper.lr) * t.weight_decay);
    slots.push_back({t.param.as<float>(), t.grad.as<float>(), t.m.as<float>(), t.v.as<float>(),
                     t.param.numel(), decay});
    max_n = std::max(max_n, t.param.numel());
  }
  // A shard without elements still records a skipped step (one block, no element to touch).
  if (slots.empty() && hyper.clip_state.data == nullptr) return;
  if (slots.empty()) slots.push_back({nullptr, nullptr, nullptr, nullptr, 0, 1.0f});
  SMOL_CHECK(slots.size() <= 65535, "adamw_step: ", slots.size(),
             " tensors exceed one launch's grid (65535)");
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(hyper.beta1), hyper.step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(hyper.beta2), hyper.step);
  const AdamWScalars scalars{hyper.grad_scale,
                             1.0f - hyper.beta1,
                             hyper.beta2,
                             1.0f - hyper.beta2,
                             static_cast<float>(hyper.lr / bias_correction1),
                             static_cast<float>(std::sqrt(bias_correction2)),
                             hyper.eps,
                             hyper.max_grad_norm,
                             hyper.step};
  auto* device_slots = static_cast<AdamWSlot*>(ctx.scratch(slots.size() * sizeof(AdamWSlot)));
  ctx.upload(device_slots, slots.data(), slots.size() * sizeof(AdamWSlot));  // staged, no wait
  const unsigned blocks_x = static_cast<unsigned>(std::max<int64_t>(
      1, std::min<int64_t>(kMaxBlocksPerTensor, (max_n + kThreads - 1) / kThreads)));
  launch(adamw_kernel, dim3(blocks_x, static_cast<unsigned>(slots.size())), kThreads, 0,
         ctx.stream(), static_cast<const AdamWSlot*>(device_slots), scalars,
         static_cast<double*>(hyper.clip_state.data),
         static_cast<const float*>(hyper.loss_check.data));
}

}  // namespace smol::SMOL_GPU_NS
