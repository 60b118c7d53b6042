// The refactor's trigger, λ schedule and adapter filter (engine/train/refactor_schedule.h),
// against the seed's rules (docs/seed-behaviour.md §5.2–5.3).
#include "engine/train/refactor_schedule.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace smol {
namespace {

std::vector<int64_t> due_steps(const RefactorSchedule& schedule, int64_t max_steps) {
  std::vector<int64_t> steps;
  for (int64_t k = 0; k <= max_steps; ++k)
    if (schedule.due(k)) steps.push_back(k);
  return steps;
}

TEST(RefactorSchedule, ModuloWarmupCooldownAndNothingAfterTheLastUpdate) {
  TrainerSection t;
  t.refactor_every = 3;
  EXPECT_EQ(due_steps(RefactorSchedule(t, 12), 12), (std::vector<int64_t>{3, 6, 9}));
  t.warmup_steps = 5;
  EXPECT_EQ(due_steps(RefactorSchedule(t, 12), 12), (std::vector<int64_t>{6, 9}));
  t.warmup_steps = 0;
  t.warmup_ratio = 0.5;  // k < 0.5·12 = 6 skipped
  EXPECT_EQ(due_steps(RefactorSchedule(t, 12), 12), (std::vector<int64_t>{6, 9}));
  t.warmup_ratio = 0;
  t.cooldown_steps = 4;  // k > 12 − 4 skipped
  EXPECT_EQ(due_steps(RefactorSchedule(t, 12), 12), (std::vector<int64_t>{3, 6}));
  // The seed's S1 MetaMath run: R 100, warmup 100, 5000 steps → k = 100 … 4900, 49 refactors.
  TrainerSection seed;
  seed.refactor_every = 100;
  seed.warmup_steps = 100;
  const std::vector<int64_t> s1 = due_steps(RefactorSchedule(seed, 5000), 5000);
  ASSERT_EQ(s1.size(), 49u);
  EXPECT_EQ(s1.front(), 100);
  EXPECT_EQ(s1.back(), 4900);
}

TEST(RefactorSchedule, LambdaConstantOrTheSeedsLinearRise) {
  TrainerSection t;
  t.balance_lambda = 0.8;
  EXPECT_DOUBLE_EQ(RefactorSchedule(t, 5000).lambda(2500), 0.8);
  t.balance_lambda_schedule = "linear";
  const RefactorSchedule linear(t, 5000);
  EXPECT_DOUBLE_EQ(linear.lambda(0), 0.8);
  EXPECT_DOUBLE_EQ(linear.lambda(2500), 0.9);
  EXPECT_NEAR(linear.lambda(100), 0.804, 1e-12);   // S1's first refactor
  EXPECT_NEAR(linear.lambda(4900), 0.996, 1e-12);  // and its last
  EXPECT_DOUBLE_EQ(linear.settings_at(2500).lambda, 0.9);
  t.balance_lambda_schedule = "cubic";
  EXPECT_THROW(RefactorSchedule(t, 10), Error);
}

TEST(RefactorSchedule, AdapterFilter) {
  LoraPair q, down;
  q.name = "model.layers.0.self_attn.q_proj";
  q.a.shape = Shape{8, 576};
  q.b.shape = Shape{576, 8};
  down.name = "model.layers.0.mlp.down_proj";
  down.a.shape = Shape{8, 1536};
  down.b.shape = Shape{576, 8};
  TrainerSection t;
  EXPECT_TRUE(RefactorSchedule(t, 10).selects(q));
  t.target_adapter_keys = {"mlp"};
  EXPECT_FALSE(RefactorSchedule(t, 10).selects(q));
  EXPECT_TRUE(RefactorSchedule(t, 10).selects(down));
  t.target_adapter_keys = {};
  t.only_large_layers = true;
  t.large_dim_threshold = 600;  // min(out, in): 576 for both
  EXPECT_FALSE(RefactorSchedule(t, 10).selects(down));
  t.large_dim_threshold = 576;
  EXPECT_EQ(RefactorSchedule(t, 10).select({q, down}).size(), 2u);
}

}  // namespace
}  // namespace smol
