// Activations planned once (LlamaModel::plan_activations, docs/design.md §2.9): after the trainer
// plans for its largest micro-batch, training steps of any size up to it — in any order — never
// re-plan (a re-plan frees and allocates every activation buffer); an evaluation batch larger
// than the plan plans inference buffers for itself, and the next training step returns to the
// planned capacity at once instead of growing again from its own size.
#include <gtest/gtest.h>

#include "model/llama_model.h"
#include "tests/model/model_test_util.h"

namespace smol::test {
namespace {

std::vector<TokenRow> rows_of_length(int32_t rows, int32_t length) {
  std::vector<TokenRow> out;
  for (int32_t r = 0; r < rows; ++r) {
    TokenRow row;
    for (int32_t i = 0; i < length; ++i) row.input_ids.push_back((7 * r + 3 * i + 1) % 50);
    row.labels = row.input_ids;
    row.labels[0] = -100;
    out.push_back(std::move(row));
  }
  return out;
}

TEST(ActivationPlan, TrainingStepsUpToThePlanNeverRePlan) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Full);
  model->plan_activations(24, /*training=*/true);
  EXPECT_EQ(model->activation_plans(), 1);
  const size_t planned_bytes = backend->memory_stats().in_use;
  // Growing sizes, the size of the plan, then smaller: without the plan the buffers would grow
  // at 6 → 10 → 24 tokens.
  for (auto [rows, length] : {std::pair{1, 6}, {2, 5}, {3, 8}, {1, 3}, {4, 6}}) {
    model->forward_backward_accumulate(rows_of_length(rows, length), 1.0f, 0);
    EXPECT_EQ(model->activation_plans(), 1) << rows << " rows of " << length;
  }
  EXPECT_EQ(backend->memory_stats().in_use, planned_bytes);

  // An evaluation batch of 40 tokens plans inference buffers for itself; the next training
  // step plans the training buffers at the reserved 24 tokens (not at its own 6), so the steps
  // after it do not re-plan either.
  model->forward_eval(rows_of_length(5, 8));
  EXPECT_EQ(model->activation_plans(), 2);
  model->forward_backward_accumulate(rows_of_length(1, 6), 1.0f, 0);
  EXPECT_EQ(model->activation_plans(), 3);
  model->forward_backward_accumulate(rows_of_length(3, 8), 1.0f, 0);
  EXPECT_EQ(model->activation_plans(), 3);
  // Smaller evaluation batches use the training buffers.
  model->forward_eval(rows_of_length(2, 8));
  EXPECT_EQ(model->activation_plans(), 3);
}

}  // namespace
}  // namespace smol::test
