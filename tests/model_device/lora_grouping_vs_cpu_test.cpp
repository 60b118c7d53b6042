// Grouped LoRA (docs/design.md §2.7) on the device under test (SMOL_TEST_DEVICE, default
// cuda-emu) against the per-projection path on the fp32 cpu backend: one training step of the
// tiny golden Llama, loss, logits and every gradient, for LoRA on all seven projections and on
// q, v only (k without an adapter inside the q,k,v group). Also: the device runs the same ops as
// the cpu with grouping on (the fused RoPE is one op there too).
//
// Tolerances: those of training_step_vs_cpu_test.cpp (bf16 activations, ≈ 20 roundings per
// value through 2 layers: 5e-2 relative L2 per gradient, 2e-2 logits, 1e-2 loss). Grouping only
// reorders fp32 sums (≤ 2e-5, tests/model/lora_grouping_test.cpp) and, on the device, rounds
// dx to bf16 fewer times (it accumulates 2·n terms into one bf16 buffer): both far inside.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "device_test_util.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

LoraSettings lora_on(std::vector<Projection> targets) {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets = std::move(targets);
  return lora;
}

class DepthZeroOps final : public OpHook {
 public:
  std::map<std::string, int64_t> ops;
  void before_op(Backend&, const char* op, int depth) override {
    if (depth == 0) ++ops[op];
  }
  void after_op(Backend&, const char*, int) override {}
};

struct Step {
  ForwardResult forward;
  std::vector<float> logits;
  std::vector<std::pair<std::string, std::vector<float>>> grads;
  std::map<std::string, int64_t> ops;  // of the training step (forward_backward)
};

Step run_step(LlamaModel& model) {
  const std::vector<TokenRow> rows = golden_train_rows();
  Step out;
  model.zero_grads();
  const ForwardResult probe = model.forward_logits(rows, &out.logits);
  DepthZeroOps counter;
  model.backend().set_op_hook(&counter);
  out.forward = model.forward_backward(rows, 1.0f / static_cast<float>(probe.supervised), 1, true);
  model.backend().set_op_hook(nullptr);
  out.ops = counter.ops;
  for (const TrainableParam& p : model.trainable_params()) {
    std::vector<float> g(p.grad.numel());
    model.backend().download(g.data(), p.grad);
    out.grads.emplace_back(p.name, std::move(g));
  }
  return out;
}

TEST(LoraGroupingOnDevice, GroupedMatchesPerProjectionOnCpu) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  const std::vector<Projection> all{Projection::Q,   Projection::K,    Projection::V,
                                    Projection::O,   Projection::Gate, Projection::Up,
                                    Projection::Down};
  for (const std::vector<Projection>& targets :
       {all, std::vector<Projection>{Projection::Q, Projection::V}}) {
    auto on_device = load_tiny(*device, TrainMode::Lora, lora_on(targets));
    auto on_cpu = load_tiny(*cpu, TrainMode::Lora, lora_on(targets));
    ASSERT_TRUE(on_device->lora_grouping());
    on_cpu->set_lora_grouping(false);
    randomise_lora(*on_cpu, *on_device, 13);
    const Step d = run_step(*on_device), c = run_step(*on_cpu);
    ASSERT_EQ(d.forward.supervised, c.forward.supervised);
    const double loss_d = d.forward.loss_sum / d.forward.supervised;
    const double loss_c = c.forward.loss_sum / c.forward.supervised;
    EXPECT_NEAR(loss_d, loss_c, 1e-2 * std::fabs(loss_c));
    EXPECT_LT(rel_l2(d.logits, c.logits), 2e-2) << "logits";
    ASSERT_EQ(d.grads.size(), c.grads.size());
    double worst = 0;
    for (size_t i = 0; i < c.grads.size(); ++i) {
      ASSERT_EQ(d.grads[i].first, c.grads[i].first);
      const double err = rel_l2(d.grads[i].second, c.grads[i].second);
      worst = std::max(worst, err);
      EXPECT_LT(err, 5e-2) << c.grads[i].first;
    }
    std::printf("[ measured ] %zu targets: loss %.7f vs %.7f; worst gradient rel L2 %.3g\n",
                targets.size(), loss_d, loss_c, worst);
    // The grouped step on the device calls fewer matmuls than the per-projection one on cpu.
    EXPECT_LT(d.ops.at("matmul"), c.ops.at("matmul"));
    EXPECT_EQ(d.ops.at("rope_qk_forward"), on_device->config().num_hidden_layers);
  }
}

TEST(LoraGroupingOnDevice, SameOpsAsCpu) {
  // The op sequence is the model's, not the backend's: cpu and device run the same depth-0 ops.
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  const LoraSettings lora =
      lora_on({Projection::Q, Projection::K, Projection::V, Projection::Up, Projection::Gate});
  auto on_device = load_tiny(*device, TrainMode::Lora, lora);
  auto on_cpu = load_tiny(*cpu, TrainMode::Lora, lora);
  EXPECT_EQ(run_step(*on_device).ops, run_step(*on_cpu).ops);
}

}  // namespace
}  // namespace smol::test
