// Grouped LoRA and the fused RoPE op (docs/design.md §2.7) on the cpu backend:
//  - op counts per training step at SmolLM2-135M's shape, counted through the OpHook, equal the
//    counts derived below from the per-projection and the grouped algorithms (before / after);
//  - the grouped path equals the per-projection path (LlamaModel::set_lora_grouping(false))
//    within fp32 reordering, for LoRA on all seven projections and on q, v only;
//  - with LoRA dropout the step runs per projection (each draws its own mask) whatever the
//    switch says: identical results, bit for bit (cpu does not fuse the masks:
//    Backend::fuses_lora_dropout() is false there).
// tests/model_device/lora_grouping_vs_cpu_test.cpp runs the grouped path on cuda-emu, and with
// dropout the fused down-projection (lora_down_forward / _backward) with its op counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>

#include "model_test_util.h"

namespace smol::test {
namespace {

const std::vector<Projection> kAllProjections{Projection::Q,   Projection::K,    Projection::V,
                                              Projection::O,   Projection::Gate, Projection::Up,
                                              Projection::Down};

LoraSettings lora_on(std::vector<Projection> targets, double dropout = 0.0) {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = dropout;
  lora.targets = std::move(targets);
  return lora;
}

// The matmuls the model calls in one LoRA training step (forward + backward, no LoRA dropout),
// derived from the algorithms (model/lora_linear.cpp; llama_model.cpp project_group):
//  per projection: forward x·Wᵀ, plus u = x·Aᵀ and y += s·u·Bᵀ with an adapter; backward
//  dx = dy·W when dx is needed, plus dB, g = dy·B, dA, and dx += s·g·A (when dx is needed)
//  with an adapter. dx is needed everywhere except below layer 0's q, k, v (the embedding is
//  frozen in LoRA mode).
//  grouped: a group (q,k,v or gate,up) with n ≥ 2 adapters runs one stacked u matmul, one
//  stacked dA and one stacked dx matmul: n − 1 fewer of each.
//  gate and up (equal shapes, one input) run their base x·Wᵀ as one matmul_batched
//  (docs/design.md §2.9), not two matmuls, whether grouped or not; q, k, v do not (SmolLM2's k and
//  v are narrower than q). In LoRA mode no W trains, so the backward has no batched dW. When
//  neither gate nor up has an adapter, their dx is one GEMM against [W_gate; W_up] (K = 2F) over
//  the concatenated SwiGLU gradient instead of one per projection.
int64_t expected_matmul_batched(int64_t layers) {
  return layers;  // one gate/up forward per layer
}
int64_t expected_matmuls(int64_t layers, const std::vector<Projection>& targets, bool grouped) {
  auto adapted = [&](Projection p) {
    return std::find(targets.begin(), targets.end(), p) != targets.end();
  };
  int64_t count = 0;
  for (int64_t l = 0; l < layers; ++l) {
    for (Projection p : kAllProjections) {
      const bool qkv = p == Projection::Q || p == Projection::K || p == Projection::V;
      const bool mlp_in = p == Projection::Gate || p == Projection::Up;  // base: matmul_batched
      const bool need_dx = l > 0 || !qkv;
      count += (mlp_in ? 0 : 1) + (adapted(p) ? 2 : 0);                       // forward
      count += (need_dx ? 1 : 0) + (adapted(p) ? 3 + (need_dx ? 1 : 0) : 0);  // backward
    }
    if (!adapted(Projection::Gate) && !adapted(Projection::Up)) count -= 1;  // one dx GEMM
    if (!grouped) continue;
    const int64_t n_qkv = adapted(Projection::Q) + adapted(Projection::K) + adapted(Projection::V);
    const int64_t n_mlp = adapted(Projection::Gate) + adapted(Projection::Up);
    if (n_qkv >= 2) count -= (n_qkv - 1) * (l > 0 ? 3 : 2);
    if (n_mlp >= 2) count -= (n_mlp - 1) * 3;
  }
  return count;
}

struct Step {
  ForwardResult forward;
  std::vector<float> logits;
  std::vector<std::pair<std::string, std::vector<float>>> grads;
};

Step run_step(LlamaModel& model, uint64_t dropout_seed = 1) {
  const std::vector<TokenRow> rows = golden_train_rows();
  Step out;
  model.zero_grads();
  const ForwardResult probe = model.forward_logits(rows, &out.logits);
  out.forward = model.forward_backward(rows, 1.0f / static_cast<float>(probe.supervised),
                                       dropout_seed, /*training=*/true);
  for (const TrainableParam& p : model.trainable_params()) {
    std::vector<float> g(p.grad.numel());
    model.backend().download(g.data(), p.grad);
    out.grads.emplace_back(p.name, std::move(g));
  }
  return out;
}

TEST(LoraGrouping, OpCountsPerStepAtSmolLm2Shape) {
  auto cpu = make_cpu_backend();
  const LlamaConfig config = smollm2_135m_config();
  const std::vector<TokenRow> rows{{{1, 2, 3, 4, 5, 6, 7, 8}, {-100, 2, 3, 4, 5, 6, 7, 8}}};
  for (const auto& [label, targets] : std::vector<std::pair<std::string, std::vector<Projection>>>{
           {"q,v", {Projection::Q, Projection::V}}, {"all 7", kAllProjections}}) {
    // Zero weights (the arena is zero-filled): counts do not depend on values, and the step
    // stays finite (rmsnorm of 0 is 0, the loss is ln V).
    LlamaModel model(*cpu, config, TrainMode::Lora, lora_on(targets));
    std::map<bool, OpCounter> counts;
    for (bool grouped : {false, true}) {
      model.set_lora_grouping(grouped);
      OpCounter& counter = counts[grouped];
      cpu->set_op_hook(&counter);
      model.forward_backward(rows, 1.0f / 7, 1, true);
      cpu->set_op_hook(nullptr);
      EXPECT_EQ(counter.ops["matmul"], expected_matmuls(config.num_hidden_layers, targets, grouped))
          << label << (grouped ? " grouped" : " per projection");
      EXPECT_EQ(counter.ops["matmul_batched"], expected_matmul_batched(config.num_hidden_layers))
          << label;
      // RoPE: one fused op per layer forward (q and k), none of its own backward: the attention
      // backward rotates dq and dk (attention_rope_backward, docs/design.md §2.7).
      EXPECT_EQ(counter.ops["rope_qk_forward"], config.num_hidden_layers) << label;
      EXPECT_EQ(counter.ops["attention_rope_backward"], config.num_hidden_layers) << label;
      EXPECT_EQ(counter.ops.count("rope_qk_backward") + counter.ops.count("attention_backward"), 0u)
          << label;
      EXPECT_EQ(counter.ops.count("rope_forward") + counter.ops.count("rope_backward"), 0u);
    }
    // Grouping changes the number of matmuls and nothing else.
    std::map<std::string, int64_t> before = counts[false].ops, after = counts[true].ops;
    before.erase("matmul");
    after.erase("matmul");
    EXPECT_EQ(before, after) << label;
    // Before the fused RoPE the step ran rope_forward on q and k and rope_backward on dq and
    // dk (one op more per layer and direction), and the RoPE backward after the attention
    // backward (one more per layer).
    const int64_t separate_rope = 3 * config.num_hidden_layers;
    std::printf(
        "[ measured ] LoRA %s, SmolLM2-135M shape, one step: matmuls %lld -> %lld; "
        "all ops (per projection, separate q/k RoPE) %lld -> (grouped, fused) %lld\n",
        label.c_str(), static_cast<long long>(counts[false].ops["matmul"]),
        static_cast<long long>(counts[true].ops["matmul"]),
        static_cast<long long>(counts[false].total() + separate_rope),
        static_cast<long long>(counts[true].total()));
  }
}

// Tolerance. Both paths compute the same sums; only their order differs: the stacked matmuls
// (uᵀ = A·xᵀ instead of u = x·Aᵀ, dA and dx over stacked operands) let sgemm sum the same K
// products in another order, and dx adds its 2·n terms in another order. A reordered sum of
// K ≤ max(C, F, T) ≈ 100 products carries ≈ √K·2^-24 ≈ 6e-7 relative error (random-walk
// rounding); a gradient is downstream of ≲ 30 such ops over the 2 layers, forward and backward,
// adding independently: ≈ √30·6e-7 ≈ 3e-6, and ×5 for the cancellation in gradients of random
// weights (Σ|terms| > |Σ terms|): 2e-5 relative L2. Logits and the loss, before the backward:
// 1e-5. A wrong grouping (a member's rows off by one, a missing scale) is O(1).
void expect_same_step(const Step& grouped, const Step& reference, double grad_tolerance) {
  ASSERT_EQ(grouped.forward.supervised, reference.forward.supervised);
  EXPECT_NEAR(grouped.forward.loss_sum, reference.forward.loss_sum,
              1e-5 * std::fabs(reference.forward.loss_sum));
  EXPECT_LT(rel_l2(grouped.logits, reference.logits), 1e-5) << "logits";
  ASSERT_EQ(grouped.grads.size(), reference.grads.size());
  double worst = 0;
  for (size_t i = 0; i < reference.grads.size(); ++i) {
    ASSERT_EQ(grouped.grads[i].first, reference.grads[i].first);
    const double err = rel_l2(grouped.grads[i].second, reference.grads[i].second);
    worst = std::max(worst, err);
    EXPECT_LE(err, grad_tolerance) << reference.grads[i].first;
  }
  std::printf("[ measured ] worst gradient relative L2 difference %.3g over %zu tensors\n", worst,
              reference.grads.size());
}

TEST(LoraGrouping, GroupedEqualsPerProjectionOnCpu) {
  auto cpu = make_cpu_backend();
  for (const std::vector<Projection>& targets :
       {kAllProjections, std::vector<Projection>{Projection::Q, Projection::V}}) {
    auto grouped = load_tiny(*cpu, TrainMode::Lora, lora_on(targets));
    auto reference = load_tiny(*cpu, TrainMode::Lora, lora_on(targets));
    reference->set_lora_grouping(false);
    randomise_lora(*grouped, *reference, 11);
    expect_same_step(run_step(*grouped), run_step(*reference), 2e-5);
  }
}

TEST(LoraGrouping, FullFineTuningWithLoraGroupedEqualsPerProjection) {
  // Base weights train too: dW of every member is computed next to the grouped LoRA terms.
  auto cpu = make_cpu_backend();
  auto grouped = load_tiny(*cpu, TrainMode::Full, lora_on(kAllProjections));
  auto reference = load_tiny(*cpu, TrainMode::Full, lora_on(kAllProjections));
  reference->set_lora_grouping(false);
  randomise_lora(*grouped, *reference, 11);
  expect_same_step(run_step(*grouped), run_step(*reference), 2e-5);
}

TEST(LoraGrouping, DropoutRunsPerProjection) {
  // Each projection draws its own mask over the shared input (docs/seed-behaviour.md §4), so
  // the grouped switch must not change anything: the same ops, the same bits.
  auto cpu = make_cpu_backend();
  auto grouped = load_tiny(*cpu, TrainMode::Lora, lora_on(kAllProjections, 0.1));
  auto reference = load_tiny(*cpu, TrainMode::Lora, lora_on(kAllProjections, 0.1));
  reference->set_lora_grouping(false);
  randomise_lora(*grouped, *reference, 11);
  OpCounter grouped_ops, reference_ops;
  cpu->set_op_hook(&grouped_ops);
  const Step a = run_step(*grouped, 5);
  cpu->set_op_hook(&reference_ops);
  const Step b = run_step(*reference, 5);
  cpu->set_op_hook(nullptr);
  EXPECT_EQ(a.forward.loss_sum, b.forward.loss_sum);
  for (size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_EQ(a.grads[i].second, b.grads[i].second) << a.grads[i].first;
  // forward_logits (no dropout: evaluation) is grouped, the training step is not.
  const int64_t layers = grouped->config().num_hidden_layers;
  EXPECT_EQ(reference_ops.ops["matmul"] - grouped_ops.ops["matmul"], layers * (2 + 1));
}

}  // namespace
}  // namespace smol::test
