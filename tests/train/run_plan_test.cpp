// The run plan against the numbers docs/seed-behaviour.md §6 gives for the seed's two configs,
// and the cadence rules (B21 fixed, eval_steps honoured, epoch strategy, the last step).
#include <gtest/gtest.h>

#include "engine/config/run_config.h"
#include "engine/train/run_plan.h"

namespace smol {
namespace {

RunConfig load(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return load_run_config(std::string(SMOL_SOURCE_DIR) + "/" + path, overrides);
}

TEST(RunPlan, Gsm8kSeedNumbers) {
  // 7473 rows, bs 1 × GA 8, 3 epochs: T = 2802, eval every ⌊2802/30⌋ = 93, warmup ⌈0.06T⌉ = 169.
  const RunPlan plan = plan_run(load("configs/smol/135m_gsm8k.yaml"), 7473, true);
  EXPECT_EQ(plan.max_steps, 2802);
  EXPECT_EQ(plan.warmup_steps, 169);
  EXPECT_EQ(plan.eval_steps, 93);
  EXPECT_EQ(plan.save_steps, 93);
  EXPECT_EQ(plan.micro_batches_per_epoch, 7473);
  EXPECT_EQ(plan.updates_per_epoch, 935);  // 934 full updates + 1 short (HF ≥ 4.46)
  EXPECT_TRUE(plan.eval_at(93));
  EXPECT_FALSE(plan.eval_at(94));
  EXPECT_TRUE(plan.eval_at(2802));  // the last step is evaluated (the seed skipped it)
  EXPECT_TRUE(plan.log_at(50));
  EXPECT_FALSE(plan.log_at(51));
}

TEST(RunPlan, MetaMathSeedNumbers) {
  // train[:10000], bs 2 × GA 1, 1 epoch: T = 5000, eval every 100, warmup 250.
  const RunPlan plan = plan_run(load("configs/smol/135m_metamath.yaml"), 10000, true);
  EXPECT_EQ(plan.max_steps, 5000);
  EXPECT_EQ(plan.eval_steps, 100);
  EXPECT_EQ(plan.warmup_steps, 250);
}

TEST(RunPlan, EvalStepsNeverZeroAndExplicitKeysWin) {
  // max_steps 6 with 30 evaluations: the seed computed eval_steps 0 (B21); we evaluate every step.
  RunPlan plan =
      plan_run(load("configs/smol/135m_gsm8k.yaml", {"training.max_steps=6"}), 7473, true);
  EXPECT_EQ(plan.max_steps, 6);
  EXPECT_EQ(plan.eval_steps, 1);
  plan = plan_run(load("configs/smol/135m_gsm8k.yaml",
                       {"training.max_steps=10", "training.eval_steps=4", "training.save_steps=5"}),
                  7473, true);
  EXPECT_EQ(plan.eval_steps, 4);
  EXPECT_EQ(plan.save_steps, 5);
  EXPECT_TRUE(plan.save_at(10));
  EXPECT_FALSE(plan.save_at(4));
}

TEST(RunPlan, NoEvalSplitMeansNoEvaluation) {
  const RunPlan plan = plan_run(load("configs/smol/135m_gsm8k.yaml"), 7473, false);
  EXPECT_FALSE(plan.evaluates);
  EXPECT_FALSE(plan.eval_at(plan.max_steps));
  EXPECT_TRUE(plan.save_at(plan.max_steps));
}

TEST(RunPlan, EpochStrategyAndFractionalEpochs) {
  const RunPlan plan = plan_run(
      load("configs/tiny_gsm8k.yaml",
           {"training.max_steps=-1", "training.num_train_epochs=2", "training.eval_strategy=epoch",
            "training.save_strategy=epoch", "training.per_device_train_batch_size=10",
            "training.gradient_accumulation_steps=3"}),
      95, true);
  // 10 micro-batches per epoch (the last holds 5), updates of 3: 3 + 3 + 3 + 1 = 4 per epoch.
  EXPECT_EQ(plan.micro_batches_per_epoch, 10);
  EXPECT_EQ(plan.updates_per_epoch, 4);
  EXPECT_EQ(plan.max_steps, 6);  // the seed's formula: ⌊2 · 95 / 30⌋
  EXPECT_TRUE(plan.eval_at(4));
  EXPECT_FALSE(plan.eval_at(3));
  EXPECT_TRUE(plan.save_at(4));
  EXPECT_DOUBLE_EQ(plan.epoch_at(1), 0.3);
  EXPECT_DOUBLE_EQ(plan.epoch_at(4), 1.0);
  EXPECT_DOUBLE_EQ(plan.epoch_at(5), 1.3);
}

TEST(RunPlan, RanksShareGlobalMicroBatches) {
  // 2 ranks × batch 5 step through the same plan as 1 rank × batch 10 (micro-batches are global).
  const std::vector<std::string> common = {"training.max_steps=-1", "training.num_train_epochs=2",
                                           "training.eval_strategy=epoch",
                                           "training.gradient_accumulation_steps=3"};
  std::vector<std::string> two = common, one = common;
  two.push_back("training.per_device_train_batch_size=5");
  one.push_back("training.per_device_train_batch_size=10");
  const RunPlan ranks = plan_run(load("configs/tiny_gsm8k.yaml", two), 95, true, 2);
  const RunPlan single = plan_run(load("configs/tiny_gsm8k.yaml", one), 95, true, 1);
  EXPECT_EQ(ranks.micro_batches_per_epoch, 10);
  EXPECT_EQ(ranks.micro_batches_per_epoch, single.micro_batches_per_epoch);
  EXPECT_EQ(ranks.updates_per_epoch, single.updates_per_epoch);
  EXPECT_EQ(ranks.max_steps, 6);  // the seed's formula: ⌊2 · ⌊95 / 2⌋ / (5 · 3)⌋
  EXPECT_EQ(ranks.processes, 2);
}

TEST(RunPlan, ErrorsNameTheProblem) {
  const RunConfig config = load("configs/tiny_gsm8k.yaml");
  EXPECT_THROW(plan_run(config, 0, true), Error);
  try {
    plan_run(load("configs/tiny_gsm8k.yaml",
                  {"training.max_steps=-1", "training.num_train_epochs=0.001"}),
             10, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_steps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace smol
