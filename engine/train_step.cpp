// One optimizer step with gradient accumulation and global token normalisation
// (see train_step.h).
#include "engine/train_step.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace smol {

int64_t count_supervised_targets(const TokenRow& row) {
  if (row.labels.empty()) return 0;
  SMOL_CHECK(row.labels.size() == row.input_ids.size(), "a row has ", row.input_ids.size(),
             " input_ids but ", row.labels.size(), " labels");
  int64_t count = 0;
  for (size_t t = 1; t < row.labels.size(); ++t) count += row.labels[t] != -100;
  return count;
}

int64_t count_supervised_targets(const std::vector<TokenRow>& rows) {
  int64_t count = 0;
  for (const TokenRow& row : rows) count += count_supervised_targets(row);
  return count;
}

TrainStepResult accumulate_gradients(LlamaModel& model,
                                     const std::vector<std::vector<TokenRow>>& micro_batches,
                                     uint64_t dropout_seed, const MicroBatchHook& after_backward,
                                     const StepTotals* totals,
                                     const MicroBatchHook& before_backward, bool read_loss) {
  TrainStepResult result;
  int64_t local_supervised = 0;
  for (const auto& batch : micro_batches) {
    local_supervised += count_supervised_targets(batch);
    for (const TokenRow& row : batch) result.tokens += static_cast<int64_t>(row.input_ids.size());
  }
  result.supervised = local_supervised;
  if (totals != nullptr) {
    result.supervised = totals->supervised;
    result.tokens = totals->tokens;
  }
  // With no supervised token the step has zero loss and zero gradient (scale 0 keeps the
  // backward well-defined instead of dividing by zero).
  const float loss_scale = result.supervised > 0
                               ? static_cast<float>(1.0 / static_cast<double>(result.supervised))
                               : 0.0f;
  // The loss stays on the device across micro-batches and is read once per optimizer step
  // (no host wait per micro-batch on cuda; docs/design.md §2).
  int64_t counted = 0;
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    if (before_backward) before_backward(i);
    if (!micro_batches[i].empty())
      counted +=
          model.forward_backward_accumulate(micro_batches[i], loss_scale, dropout_seed + i, true);
    if (after_backward) after_backward(i);
  }
  SMOL_CHECK(counted == local_supervised, "train step: the model counted ", counted,
             " supervised tokens but the batch has ", local_supervised);
  if (!read_loss) {  // the Σ stays in the model's accumulator (step_losses.h)
    result.loss = std::numeric_limits<double>::quiet_NaN();
    return result;
  }
  const double loss_sum = model.read_loss();
  result.loss = result.supervised > 0 ? loss_sum / static_cast<double>(result.supervised) : 0.0;
  SMOL_CHECK(std::isfinite(result.loss), "train step: the loss is not finite (", result.loss, ")");
  return result;
}

TrainStepResult train_step(LlamaModel& model, AdamW& optimizer, const LrSchedule& schedule,
                           const std::vector<std::vector<TokenRow>>& micro_batches,
                           uint64_t dropout_seed, const MicroBatchHook& after_backward,
                           StepLosses* deferred_losses) {
  model.zero_grads();
  const bool defer = deferred_losses != nullptr;
  TrainStepResult result = accumulate_gradients(model, micro_batches, dropout_seed, after_backward,
                                                nullptr, nullptr, /*read_loss=*/!defer);
  const double lr = schedule.lr(optimizer.steps_done());
  if (defer) {
    // The update checks the loss on the device (skips itself when it is not finite), then the
    // loss moves into its slot: no host wait in the step.
    result.optimizer = optimizer.step(lr, model.loss_accumulator());
    deferred_losses->record(model, result.optimizer.step, result.supervised);
  } else {
    result.optimizer = optimizer.step(lr);
  }
  model.zero_grads();
  return result;
}

}  // namespace smol
