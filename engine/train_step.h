// One optimizer step over several micro-batches with gradient accumulation (docs/design.md §4,
// docs/seed-behaviour.md §6).
//
// loss = (Σ token CE over every micro-batch) / N, N = supervised tokens of the WHOLE step
// (transformers ≥ 4.46 num_items_in_batch semantics, not the mean of per-micro-batch means).
// So N is counted on the host first and each micro-batch's backward runs with
// loss_scale = 1/N; the accumulated gradients are then exactly ∂loss/∂θ. Then: global-norm
// clip, AdamW at the schedule's lr for this update index, zero the grads.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train/step_losses.h"
#include "model/llama_model.h"

namespace smol {

// Positions t of a row whose next-token target labels[t+1] is supervised (≠ −100): the
// tokens the causal loss counts (docs/formats.md §2 "Loss").
int64_t count_supervised_targets(const TokenRow& row);
int64_t count_supervised_targets(const std::vector<TokenRow>& rows);

struct TrainStepResult {
  double loss = 0;         // Σ CE / N over the step
  int64_t supervised = 0;  // N
  int64_t tokens = 0;      // all input tokens of the step (padding included)
  OptimizerStepStats optimizer;
};

// N and the token count of a whole data-parallel step (all ranks' rows), which every rank knows
// without communication because every rank reads the same global batches (engine/dist/).
struct StepTotals {
  int64_t supervised = 0;
  int64_t tokens = 0;
};

// Accumulates gradients of loss over `micro_batches` into the model's grads, scaled by
// 1/N of the whole step. Does not zero grads first and does not update. dropout seeds are
// dropout_seed + micro-batch index. Returns loss and N (loss 0 when N = 0).
// after_backward, when set, runs after each micro-batch's backward with its index (the
// seed's per-micro-batch refactor placement, trainer.refactor_timing legacy); before_backward
// before each micro-batch's forward. `totals` (data parallelism): N and tokens of the whole
// global step; the micro-batches are this rank's share (some may be empty, which are skipped),
// and the returned loss is this rank's part Σ_local CE / N (the ranks' parts sum to the loss).
// read_loss false: no host wait; the loss returned is NaN and the step's Σ CE stays in
// model.loss_accumulator() (engine/train/step_losses.h).
using MicroBatchHook = std::function<void(size_t micro_batch)>;
TrainStepResult accumulate_gradients(LlamaModel& model,
                                     const std::vector<std::vector<TokenRow>>& micro_batches,
                                     uint64_t dropout_seed,
                                     const MicroBatchHook& after_backward = nullptr,
                                     const StepTotals* totals = nullptr,
                                     const MicroBatchHook& before_backward = nullptr,
                                     bool read_loss = true);

// A full optimizer step: zero grads, accumulate_gradients, clip + AdamW at lr(k) where
// k = optimizer.steps_done() (0-based index of this update), zero grads again.
// after_backward as in accumulate_gradients: between each micro-batch's backward and the update.
// deferred_losses: the step runs without a host wait — the loss is checked on the device by the
// update (a non-finite loss skips it, AdamW::step) and recorded there for a later read; the
// returned loss is NaN. Without it the loss is read (one wait) and a non-finite one throws
// before the update.
// With deferred_losses and no after_backward, the step's device work is one
// Backend::run_as_graph: one CUDA graph on cuda / cuda-emu with graphs enabled (recorded every
// step, updated in place or instantiated; bit-identical to the eager step), the same ops run
// directly elsewhere (docs/design.md §2.8). The graph lives in model.step_graph().
TrainStepResult train_step(LlamaModel& model, AdamW& optimizer, const LrSchedule& schedule,
                           const std::vector<std::vector<TokenRow>>& micro_batches,
                           uint64_t dropout_seed, const MicroBatchHook& after_backward = nullptr,
                           StepLosses* deferred_losses = nullptr);

}  // namespace smol
