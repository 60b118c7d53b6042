// DataParallel: one optimizer step over a global batch shared by world_size ranks
// (docs/design.md §8, HF Trainer / torch DDP semantics).
//
//   global batch     per_device_train_batch_size · gradient_accumulation_steps · world_size
//   rows             every rank reads the same global micro-batches (b · world rows, cut from the
//                    epoch's deterministic order exactly as one process with batch b · world
//                    would) and keeps rows [rank · b, (rank + 1) · b) of each; a short last
//                    micro-batch leaves later ranks fewer rows or none (no sample is repeated,
//                    unlike accelerate's even_batches padding)
//   loss scale       1 / N, N = supervised tokens of the whole global step: every rank counts
//                    them from the global rows, so no collective is needed; the ranks' gradient
//                    sums then add up to exactly ∂loss/∂θ of the one-process step
//   LoRA             replicated: one all-reduce (sum) of the whole gradient arena after the last
//                    micro-batch (LoRA gradients are small), then the same clip + AdamW on every
//                    rank, which keeps the replicas bit-identical
//   full fine-tune   ZeRO-1 (engine/dist/zero_layout.h): during the last micro-batch's backward
//                    each layer's gradients are reduce-scattered as soon as that layer is done,
//                    overlapped with the backward of the layers below; each rank clips with the
//                    global norm (its Σ shard² all-reduced on the device, F64) and runs AdamW on
//                    its shard (m and v exist only for it); the updated parameters are
//                    all-gathered
//   loss             each rank's part Σ_local CE / N, summed over ranks (one host all-reduce)
// With one rank every call is the plain single-process step (engine/train_step.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/dist/zero_layout.h"
#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train_step.h"
#include "io/host_tensor.h"
#include "kernels/communicator.h"
#include "model/llama_model.h"

namespace smol {

class DataParallel {
 public:
  // `micro_batch_size`: per_device_train_batch_size (each rank's share of a micro-batch).
  DataParallel(Communicator& comm, LlamaModel& model, int64_t micro_batch_size);

  int rank() const { return comm_.rank(); }
  int world_size() const { return comm_.world_size(); }
  bool is_main() const { return comm_.rank() == 0; }  // the rank that writes outputs
  Communicator& communicator() { return comm_; }
  // The ZeRO-1 layout for AdamW (full fine-tuning on several ranks), else nullptr.
  const ZeroLayout* zero_layout() const { return zero_ ? &*zero_ : nullptr; }

  // This rank's rows of a global update (micro-batches of micro_batch_size · world_size rows).
  std::vector<std::vector<TokenRow>> local_share(
      const std::vector<std::vector<TokenRow>>& global_update) const;

  // One optimizer step over a global update (train_step's semantics for the whole global batch):
  // zero grads, forward + backward of this rank's rows, gradient reduction, clip + AdamW at
  // lr(optimizer.steps_done()), parameter all-gather (ZeRO-1), zero grads. The result's loss,
  // supervised and tokens are those of the whole global step. after_backward and
  // deferred_losses as in train_step; deferred, the ranks' loss parts are summed by a device
  // all-reduce of the model's loss accumulator (no host wait), so every rank records the step's
  // whole loss and every rank's update checks the same value.
  TrainStepResult train_step(AdamW& optimizer, const LrSchedule& schedule,
                             const std::vector<std::vector<TokenRow>>& global_update,
                             uint64_t dropout_seed, const MicroBatchHook& after_backward = nullptr,
                             StepLosses* deferred_losses = nullptr);

  // The optimizer's moments for a checkpoint, on every rank (a collective under ZeRO-1: every
  // rank must call it).
  HostMoments gather_moments(const AdamW& optimizer);

 private:
  void reduce_bucket(size_t bucket);
  void gather_parameters();

  Communicator& comm_;
  LlamaModel& model_;
  Backend& backend_;
  int64_t micro_batch_size_;
  std::vector<TrainableParam> params_;
  std::optional<ZeroLayout> zero_;
  std::vector<size_t> bucket_order_;     // the order buckets are reduced in (backward order)
  std::vector<size_t> bucket_of_layer_;  // layer → its bucket
  std::vector<bool> bucket_reduced_;
  Buffer zero_buffers_;
  Tensor staging_, gradient_shard_;
};

}  // namespace smol
