// One whole training step of the tiny golden Llama (tests/golden/model/tiny) on the device
// under test (SMOL_TEST_DEVICE, default cuda-emu) against the fp32 cpu backend: loss, logits
// and every trainable gradient, for LoRA on all seven projections and for full fine-tuning.
//
// Tolerances. The device keeps activations and frozen weights in bf16 (2^-9 relative rounding
// each) and accumulates in fp32. A value passes through ~10 bf16 roundings per layer (norm,
// q/k/v, rope, attention, o, norm, gate/up, swiglu, down), 2 layers, so activations carry
// ≈ 20·2^-9 ≈ 4% worst-case, ≈ sqrt(20)·2^-9 ≈ 1% typical (independent roundings) relative
// error. Gradients are products of such activations: we allow 5e-2 relative L2 per gradient
// tensor. The loss is an average over many tokens, so its errors mostly cancel: 1e-2 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "device_test_util.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

LoraSettings all_projections() {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets = {Projection::Q,    Projection::K,  Projection::V,   Projection::O,
                  Projection::Gate, Projection::Up, Projection::Down};
  return lora;
}

struct StepResult {
  ForwardResult forward;
  std::vector<float> logits;
  std::vector<std::pair<std::string, std::vector<float>>> grads;
};

StepResult run_step(LlamaModel& model) {
  const std::vector<TokenRow> rows = golden_train_rows();
  StepResult out;
  model.zero_grads();
  const ForwardResult probe = model.forward_logits(rows, &out.logits);
  out.forward = model.forward_backward(rows, 1.0f / static_cast<float>(probe.supervised),
                                       /*dropout_seed=*/1, /*training=*/true);
  Backend& backend = model.backend();
  for (const TrainableParam& p : model.trainable_params()) {
    std::vector<float> g(p.grad.numel());
    backend.download(g.data(), p.grad);
    out.grads.emplace_back(p.name, std::move(g));
  }
  return out;
}

void compare_steps(const StepResult& device, const StepResult& cpu) {
  ASSERT_EQ(device.forward.supervised, cpu.forward.supervised);
  const double loss_device = device.forward.loss_sum / device.forward.supervised;
  const double loss_cpu = cpu.forward.loss_sum / cpu.forward.supervised;
  EXPECT_NEAR(loss_device, loss_cpu, 1e-2 * std::fabs(loss_cpu));
  EXPECT_LT(rel_l2(device.logits, cpu.logits), 2e-2) << "logits";
  ASSERT_EQ(device.grads.size(), cpu.grads.size());
  double worst = 0;
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    ASSERT_EQ(device.grads[i].first, cpu.grads[i].first);
    const double err = rel_l2(device.grads[i].second, cpu.grads[i].second);
    worst = std::max(worst, err);
    EXPECT_LT(err, 5e-2) << cpu.grads[i].first;
  }
  std::printf("[ measured ] loss %.7f vs %.7f; worst gradient relative L2 error %.3g over %zu\n",
              loss_device, loss_cpu, worst, cpu.grads.size());
}

TEST(TrainingStepOnDevice, LoraAllProjectionsMatchesCpu) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  auto on_device = load_tiny(*device, TrainMode::Lora, all_projections());
  auto on_cpu = load_tiny(*cpu, TrainMode::Lora, all_projections());
  randomise_lora(*on_cpu, *on_device, 7);
  compare_steps(run_step(*on_device), run_step(*on_cpu));
}

// The residual adds inside the o_proj / down_proj GEMMs (docs/design.md §2.9) against the
// unfused path (projection to a scratch tensor, then add_rmsnorm) and cpu, for LoRA on q, v
// only — where no backward reads the SwiGLU output act or gate/up's input ln2, so every layer
// shares one buffer of each — and for full fine-tuning (gate/up's dW as one batched matmul).
// Fusing removes one bf16 rounding per residual add (the projection's own), so the bounds above
// hold for both paths; both measured errors are printed.
void compare_fused_and_unfused(TrainMode mode, const std::optional<LoraSettings>& lora) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  auto on_device = load_tiny(*device, mode, lora);
  auto on_cpu = load_tiny(*cpu, mode, lora);
  if (lora) randomise_lora(*on_cpu, *on_device, 11);
  on_device->set_fusion(true);  // the default (unless SMOL_FUSION=0)
  const StepResult cpu_step = run_step(*on_cpu);
  std::printf("fused residual adds (default):\n");
  compare_steps(run_step(*on_device), cpu_step);
  on_device->set_fusion(false);
  std::printf("unfused (projection, then add_rmsnorm):\n");
  compare_steps(run_step(*on_device), cpu_step);
}

TEST(TrainingStepOnDevice, FusedResidualMatchesUnfusedAndCpuLoraQv) {
  LoraSettings qv = all_projections();
  qv.targets = {Projection::Q, Projection::V};
  compare_fused_and_unfused(TrainMode::Lora, qv);
}

TEST(TrainingStepOnDevice, FusedResidualMatchesUnfusedAndCpuFullFineTuning) {
  compare_fused_and_unfused(TrainMode::Full, std::nullopt);
}

TEST(TrainingStepOnDevice, FullFineTuningMatchesCpu) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  auto on_device = load_tiny(*device, TrainMode::Full);
  auto on_cpu = load_tiny(*cpu, TrainMode::Full);
  compare_steps(run_step(*on_device), run_step(*on_cpu));
}

}  // namespace
}  // namespace smol::test
