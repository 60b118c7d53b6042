// refactor_timing legacy (docs/seed-behaviour.md §5.2): the seed refactored after EVERY
// micro-batch's backward and before the optimizer update, so GA times per trigger, with the
// accumulated gradients still in the old coordinates. train_step's after_backward hook is
// where the trainer puts it; this checks the order of operations on the tiny fixture model.
#include <gtest/gtest.h>

#include <random>

#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train/host_reference_linalg.h"
#include "engine/train/spectral_refactor.h"
#include "engine/train_step.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/training/training_fixtures.h"

namespace smol {
namespace {

TEST(LegacyTiming, RefactorsAfterEachBackwardBeforeTheUpdate) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const LoadedModel& tiny = test::tiny_model();
  LlamaModel model(*backend, tiny.config, TrainMode::Lora, test::fixture_lora());
  model.load_weights(tiny.weights);
  // A random, B = 0 (PEFT's gaussian init; the model starts with both at zero).
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (const TrainableParam& p : model.trainable_params())
    if (p.name.find("lora_A") != std::string::npos) {
      HostTensor a = model.read_tensor(p.name);
      for (float& x : a.data) x = normal(rng);
      model.write_tensor(p.name, a);
    }
  AdamW optimizer(*backend, model.trainable_params(), AdamWSettings{});
  const LrSchedule schedule(LrScheduleKind::Constant, 1e-3, 10, 0);
  const std::vector<std::vector<TokenRow>> micro_batches = {
      test::padded(test::fixture_batch("batch1.jsonl")),
      test::padded(test::fixture_batch("batch2.jsonl"))};
  // One plain step first so B ≠ 0 (PEFT's B starts at zero; a refactor of B = 0 is B·A = 0).
  train_step(model, optimizer, schedule, micro_batches, 11);
  ASSERT_EQ(optimizer.steps_done(), 1);

  std::unique_ptr<LinalgBackend> linalg = make_host_reference_linalg(*backend);
  const std::vector<LoraPair> pairs = lora_pairs_of(model.trainable_params(), &optimizer);
  ASSERT_EQ(pairs.size(), 14u);  // 2 layers × 7 projections
  SpectralRefactor refactor(*backend, *linalg, pairs);
  std::vector<size_t> calls;
  std::vector<double> grad_norms;
  train_step(model, optimizer, schedule, micro_batches, 12, [&](size_t micro_batch) {
    calls.push_back(micro_batch);
    EXPECT_EQ(optimizer.steps_done(), 1) << "the refactor must run before the update";
    grad_norms.push_back(optimizer.grad_norm());
    RefactorSettings settings;
    settings.balanced = true;
    settings.lambda = 0.5;
    refactor.apply(settings);
  });
  EXPECT_EQ(calls, (std::vector<size_t>{0, 1}));  // GA = 2 → twice per trigger
  EXPECT_EQ(optimizer.steps_done(), 2);
  ASSERT_EQ(grad_norms.size(), 2u);
  EXPECT_GT(grad_norms[0], 0.0);            // after the first backward
  EXPECT_NE(grad_norms[1], grad_norms[0]);  // the second backward accumulated into the grads
}

}  // namespace
}  // namespace smol
