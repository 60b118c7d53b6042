// Grouped LoRA (docs/design.md §2.7) on the device under test (SMOL_TEST_DEVICE, default
// cuda-emu) against the per-projection path on the fp32 cpu backend: one training step of the
// tiny golden Llama, loss, logits and every gradient, for LoRA on all seven projections and on
// q, v only (k without an adapter inside the q,k,v group). Also: the device runs the same ops as
// the cpu with grouping on, except that the device runs the LoRA B products as one
// lora_up_forward / lora_up_backward per group or single projection (docs/design.md §2.7 "LoRA
// up-projections fused") where the cpu runs matmuls.
//
// Tolerances: those of training_step_vs_cpu_test.cpp (bf16 activations, ≈ 20 roundings per
// value through 2 layers: 5e-2 relative L2 per gradient, 2e-2 logits, 1e-2 loss). Grouping only
// reorders fp32 sums (≤ 2e-5, tests/model/lora_grouping_test.cpp) and, on the device, rounds
// dx to bf16 fewer times (it accumulates 2·n terms into one bf16 buffer): both far inside.
#include <gtest/gtest.h>

#include <algorithm>
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
    // The op counts, derived per layer from the algorithms. cpu per projection, per adapted
    // member: forward 2 matmuls (u, y += s·u·Bᵀ), backward 3 (dB, g, dA) and 1 more (g·A) with
    // an input gradient. Device, grouped (≥ 2 adapted members of q,k,v or gate,up): forward 1
    // matmul (uᵀ = A·xᵀ stacked) + lora_up_forward, backward lora_up_backward + 1 matmul (dA)
    // and 1 more (dx) with an input gradient. Device, a projection alone (o, down): forward
    // lora_down_forward + lora_up_forward, backward lora_up_backward + lora_down_backward, no
    // matmul. Layer 0's q, k, v need no input gradient (LoRA: the embedding is frozen).
    EXPECT_EQ(d.ops.at("rope_qk_forward"), on_device->config().num_hidden_layers);
    const auto adapted = [&](Projection p) {
      return std::find(targets.begin(), targets.end(), p) != targets.end();
    };
    int64_t cpu_lora_matmuls = 0, device_lora_matmuls = 0, units = 0, singles = 0;
    for (int64_t l = 0; l < on_device->config().num_hidden_layers; ++l)
      for (const auto& unit : {std::vector<Projection>{Projection::Q, Projection::K, Projection::V},
                               std::vector<Projection>{Projection::O},
                               std::vector<Projection>{Projection::Gate, Projection::Up},
                               std::vector<Projection>{Projection::Down}}) {
        const int64_t dx = l == 0 && unit.front() == Projection::Q ? 0 : 1;
        int64_t n = 0;
        for (Projection p : unit) n += adapted(p);
        cpu_lora_matmuls += n * (5 + dx);
        if (n >= 2) device_lora_matmuls += 2 + dx;
        units += n > 0;
        singles += n == 1;
      }
    const auto count = [](const Step& s, const char* op) {
      const auto it = s.ops.find(op);
      return it == s.ops.end() ? int64_t{0} : it->second;
    };
    const int64_t up = device->fuses_lora_up() ? units : 0;
    EXPECT_EQ(count(d, "lora_up_forward"), up);
    EXPECT_EQ(count(d, "lora_up_backward"), up);
    if (device->fuses_lora_up()) {
      EXPECT_EQ(count(d, "lora_down_forward"), singles);
      EXPECT_EQ(count(d, "lora_down_backward"), singles);
      EXPECT_EQ(count(c, "matmul") - count(d, "matmul"), cpu_lora_matmuls - device_lora_matmuls);
    }
    EXPECT_LT(count(d, "matmul"), count(c, "matmul"));
    std::printf(
        "[ measured ] %zu targets: matmuls cpu %lld, device %lld; lora_up ops %lld + %lld\n",
        targets.size(), static_cast<long long>(count(c, "matmul")),
        static_cast<long long>(count(d, "matmul")),
        static_cast<long long>(count(d, "lora_up_forward")),
        static_cast<long long>(count(d, "lora_up_backward")));
  }
}

TEST(LoraGroupingOnDevice, SameOpsAsCpu) {
  // The op sequence is the model's, not the backend's: cpu and device run the same depth-0 ops,
  // except where the device fuses the B products: per grouped group (q,k,v and gate,up here:
  // 5 adapted members) one lora_up_forward and one lora_up_backward instead of 3 matmuls a
  // member (y += s·u·Bᵀ; dB, gᵀ).
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  auto cpu = make_cpu_backend();
  const LoraSettings lora =
      lora_on({Projection::Q, Projection::K, Projection::V, Projection::Up, Projection::Gate});
  auto on_device = load_tiny(*device, TrainMode::Lora, lora);
  auto on_cpu = load_tiny(*cpu, TrainMode::Lora, lora);
  std::map<std::string, int64_t> want = run_step(*on_cpu).ops;
  if (device->fuses_lora_up()) {
    const int64_t layers = on_device->config().num_hidden_layers, groups = 2 * layers;
    want["matmul"] -= 3 * 5 * layers;
    want["lora_up_forward"] += groups;
    want["lora_up_backward"] += groups;
  }
  EXPECT_EQ(run_step(*on_device).ops, want);
}

// LoRA dropout on the fly (docs/design.md §2.7): with lora_dropout 0.1 a training step on a
// backend that fuses the masks (cuda, cuda-emu) runs every adapted group and projection through
// lora_down_forward / lora_down_backward. Against the per-projection cpu step (the same masks:
// one seed per (layer, projection) on both) loss and every gradient hold the tolerances above;
// against the device's own per-projection path (set_lora_grouping(false)) too, and the op counts
// drop by what the two algorithms predict, derived here per layer:
//   per projection, per adapted member: forward dropout + 2 matmuls (u, y += s·u·Bᵀ); backward
//   3 matmuls (dB, g, dA) + dropout, and with an input gradient matmul + dropout + axpy more;
//   fused, per group or single projection with adapters: one lora_down_forward,
//   lora_up_forward, lora_up_backward and lora_down_backward each, no dropout, no matmul
//   (docs/design.md §2.7 "LoRA up-projections fused").
// Layer 0's q, k, v need no input gradient (LoRA: the embedding is frozen); every other adapted
// projection has one.
TEST(LoraGroupingOnDevice, FusedDropoutMatchesCpuAndPerProjection) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  if (!device->fuses_lora_dropout()) GTEST_SKIP() << device->name() << " does not fuse dropout";
  auto cpu = make_cpu_backend();
  const std::vector<Projection> all{Projection::Q,   Projection::K,    Projection::V,
                                    Projection::O,   Projection::Gate, Projection::Up,
                                    Projection::Down};
  for (const std::vector<Projection>& targets :
       {std::vector<Projection>{Projection::Q, Projection::V}, all}) {
    LoraSettings lora = lora_on(targets);
    lora.dropout = 0.1;
    auto fused = load_tiny(*device, TrainMode::Lora, lora);
    auto per_projection = load_tiny(*device, TrainMode::Lora, lora);
    auto on_cpu = load_tiny(*cpu, TrainMode::Lora, lora);
    per_projection->set_lora_grouping(false);
    randomise_lora(*on_cpu, *fused, 13);
    randomise_lora(*on_cpu, *per_projection, 13);
    const Step f = run_step(*fused), d = run_step(*per_projection), c = run_step(*on_cpu);
    ASSERT_EQ(f.forward.supervised, c.forward.supervised);
    const double loss_f = f.forward.loss_sum / f.forward.supervised;
    const double loss_d = d.forward.loss_sum / d.forward.supervised;
    const double loss_c = c.forward.loss_sum / c.forward.supervised;
    EXPECT_NEAR(loss_f, loss_c, 1e-2 * std::fabs(loss_c));
    EXPECT_NEAR(loss_f, loss_d, 1e-2 * std::fabs(loss_d));
    ASSERT_EQ(f.grads.size(), c.grads.size());
    double worst_cpu = 0, worst_device = 0;
    for (size_t i = 0; i < c.grads.size(); ++i) {
      ASSERT_EQ(f.grads[i].first, c.grads[i].first);
      const double err_cpu = rel_l2(f.grads[i].second, c.grads[i].second);
      const double err_device = rel_l2(f.grads[i].second, d.grads[i].second);
      worst_cpu = std::max(worst_cpu, err_cpu);
      worst_device = std::max(worst_device, err_device);
      EXPECT_LT(err_cpu, 5e-2) << c.grads[i].first << " vs cpu";
      EXPECT_LT(err_device, 5e-2) << c.grads[i].first << " vs the device per projection";
    }
    // The tolerance can see a wrong mask: without dropout some gradient moves by more than it.
    auto cpu_no_dropout = load_tiny(*cpu, TrainMode::Lora, lora_on(targets));
    randomise_lora(*on_cpu, *cpu_no_dropout, 13);
    const Step c0 = run_step(*cpu_no_dropout);
    double mask_effect = 0;
    for (size_t i = 0; i < c.grads.size(); ++i)
      mask_effect = std::max(mask_effect, rel_l2(c0.grads[i].second, c.grads[i].second));
    EXPECT_GT(mask_effect, 5e-2) << "dropout 0.1 changes no gradient beyond the tolerance";
    std::printf("[ measured ] dropout 0.1 vs none on cpu: worst gradient rel L2 %.3g\n",
                mask_effect);
    std::printf(
        "[ measured ] dropout 0.1, %zu targets: loss fused %.7f, per projection %.7f, "
        "cpu %.7f; worst gradient rel L2 vs cpu %.3g, vs per projection %.3g\n",
        targets.size(), loss_f, loss_d, loss_c, worst_cpu, worst_device);

    // The op counts, derived per layer from the algorithms above.
    const int64_t layers = fused->config().num_hidden_layers;
    const auto adapted = [&](Projection p) {
      return std::find(targets.begin(), targets.end(), p) != targets.end();
    };
    int64_t members = 0, members_with_dx = 0, units = 0;
    for (int64_t l = 0; l < layers; ++l) {
      for (const auto& unit : {std::vector<Projection>{Projection::Q, Projection::K, Projection::V},
                               std::vector<Projection>{Projection::O},
                               std::vector<Projection>{Projection::Gate, Projection::Up},
                               std::vector<Projection>{Projection::Down}}) {
        const bool needs_dx = !(l == 0 && unit.front() == Projection::Q);
        int64_t n = 0;
        for (Projection p : unit) n += adapted(p);
        members += n;
        members_with_dx += needs_dx ? n : 0;
        units += n > 0;
      }
    }
    const auto count = [](const Step& s, const char* op) {
      const auto it = s.ops.find(op);
      return it == s.ops.end() ? int64_t{0} : it->second;
    };
    EXPECT_EQ(count(f, "lora_down_forward"), units);
    EXPECT_EQ(count(f, "lora_down_backward"), units);
    EXPECT_EQ(count(f, "dropout"), 0);
    EXPECT_EQ(count(d, "dropout"), 2 * members + members_with_dx);
    EXPECT_EQ(count(f, "lora_up_forward"), units);
    EXPECT_EQ(count(f, "lora_up_backward"), units);
    EXPECT_EQ(count(d, "matmul") - count(f, "matmul"), 5 * members + members_with_dx);
    int64_t total_f = 0, total_d = 0;
    for (const auto& [op, n] : f.ops) total_f += n;
    for (const auto& [op, n] : d.ops) total_d += n;
    EXPECT_EQ(total_d - total_f, 7 * members + 3 * members_with_dx - 4 * units);
    std::printf(
        "[ measured ] dropout 0.1, %zu targets: matmuls %lld -> %lld, all ops %lld -> "
        "%lld (%lld layers)\n",
        targets.size(), static_cast<long long>(count(d, "matmul")),
        static_cast<long long>(count(f, "matmul")), static_cast<long long>(total_d),
        static_cast<long long>(total_f), static_cast<long long>(layers));
  }
}

}  // namespace
}  // namespace smol::test
