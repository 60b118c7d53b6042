// One optimizer step with gradient accumulation and global token normalisation
// (see train_step.h).
#include "engine/train_step.h"

#include <algorithm>
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

namespace {

// The trainer's step (loss deferred, no per-micro-batch hook) as one recorded piece of device
// work (docs/design.md §2.8 "The training step as one graph"): zero the gradients, forward and
// backward of every micro-batch, clip + AdamW with the device loss check, the loss into its
// StepLosses slot, zero the gradients again — the same ops in the same order as the eager step
// below, inside Backend::run_as_graph, which records them into one CUDA graph where the backend
// has graphs enabled and otherwise runs them directly. What a capture cannot hold happens first,
// on the host: the activation arena is sized for the step's largest micro-batch (an allocation
// cannot be captured; the arena's size changes no result: an LM-head chunk is min(T,
// lm_head_chunk_rows) rows whatever the capacity), the StepLosses slot is freed (its download, once
// per `capacity` steps), and the learning rate is taken. The work may run twice on the host (a
// capture abandoned for an eager run when a scratch area must grow: NeedsEagerRun), so it first
// puts back the one piece of host state it changes, the optimizer's step count; every per-step
// value (lr, step count for the bias correction, dropout seeds, layouts, chunk plan) is an argument
// recorded at each step.
TrainStepResult recorded_train_step(LlamaModel& model, AdamW& optimizer, const LrSchedule& schedule,
                                    const std::vector<std::vector<TokenRow>>& micro_batches,
                                    uint64_t dropout_seed, StepLosses& losses) {
  int64_t largest = 0;
  for (const auto& batch : micro_batches) {
    int64_t tokens = 0;
    for (const TokenRow& row : batch) tokens += static_cast<int64_t>(row.input_ids.size());
    largest = std::max(largest, tokens);
  }
  if (largest > 0) model.plan_activations(largest, /*training=*/true);
  losses.make_room();
  const int64_t steps_before = optimizer.steps_done();
  const double lr = schedule.lr(steps_before);
  TrainStepResult result;
  model.backend().run_as_graph(model.step_graph(), [&] {
    optimizer.restore_steps_done(steps_before);
    model.zero_grads();
    result = accumulate_gradients(model, micro_batches, dropout_seed, nullptr, nullptr, nullptr,
                                  /*read_loss=*/false);
    result.optimizer = optimizer.step(lr, model.loss_accumulator());
    losses.copy_to_slot(model);
    model.zero_grads();
  });
  losses.commit(result.optimizer.step, result.supervised);
  return result;
}

}  // namespace

TrainStepResult train_step(LlamaModel& model, AdamW& optimizer, const LrSchedule& schedule,
                           const std::vector<std::vector<TokenRow>>& micro_batches,
                           uint64_t dropout_seed, const MicroBatchHook& after_backward,
                           StepLosses* deferred_losses) {
  // A hook between micro-batches runs host work (the legacy refactor's linear algebra, with host
  // waits) in the middle of the step, and the synchronous loss read is a host wait before the
  // update: both steps run eagerly, op by op.
  if (deferred_losses != nullptr && !after_backward)
    return recorded_train_step(model, optimizer, schedule, micro_batches, dropout_seed,
                               *deferred_losses);
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
