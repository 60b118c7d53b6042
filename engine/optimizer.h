// AdamW over a model's trainable parameters with global grad-norm clipping
// (docs/design.md §4, docs/seed-behaviour.md §6).
//
// One update, given the lr of this step:
//   norm  = sqrt(Σ_params Σ grad²)                      (logged as grad_norm, HF)
//   clip  = min(1, max_grad_norm / (norm + 1e-6))       (torch.nn.utils.clip_grad_norm_)
//   AdamW on every tensor with grads scaled by clip     (Backend::adamw_step, bias-corrected,
//                                                        decoupled decay p ← p(1 − lr·wd))
// all enqueued on the device without a host wait (docs/design.md §2, §4): Σ grad² goes into a
// device clip state (Backend::sum_of_squares_into) and adamw_step computes clip from it there.
// The host learns the norm only when it asks (read_step_stats: at logging steps, evaluations,
// checkpoints, the end of a run).
//
// A non-finite norm: the update is skipped on the device (parameters and moments unchanged) and
// the clip state records that step; every later update is skipped too, so the parameters stay
// those before the first bad step until the host reads the state and stops the run. The step
// counter (steps_done, the bias correction's t) still advances for a skipped update: the host
// cannot know without a wait, and a run never continues past one (the trainer checks before
// every checkpoint, so no state after a skipped update is ever saved).
//
// Precision: Σ grad² and the clip factor are computed in double exactly as before clipping
// moved to the device, so the cpu backend's results are unchanged bit for bit.
// State m, v is fp32, zero at the start, held in two flat arenas laid out by a FlatIndex over
// the trainable tensors (engine/train/flat_index.h): one buffer each, so a checkpoint, an
// all-reduce or a ZeRO-1 shard addresses them as one range. The decay set is
// configurable: by default every trainable tensor decays (the seed's LoRA A/B); tensors whose
// name contains one of `no_decay_substrings` get weight decay 0.
//
// ZeRO-1 (docs/design.md §8): constructed with a ZeroLayout, m and v hold only this rank's
// pieces, laid out like its gradient shard, and step_shard updates only those elements; the
// caller reduce-scatters the gradients before and all-gathers the parameters after.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/dist/zero_layout.h"
#include "engine/train/flat_index.h"
#include "io/host_tensor.h"
#include "kernels/backend.h"
#include "kernels/communicator.h"
#include "model/llama_model.h"

namespace smol {

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;                    // <= 0: no clipping (the norm is still measured)
  std::vector<std::string> no_decay_substrings;  // empty: every trainable tensor decays
};

struct OptimizerStepStats {
  // Before clipping, and the factor applied to every gradient: NaN in what step() returns (they
  // live on the device); read_step_stats() fills them for the last update.
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  double clip_scale = std::numeric_limits<double>::quiet_NaN();
  double lr = 0;
  int64_t step = 0;  // 1-based count of updates done, including this one
  // read_step_stats(): the first update skipped because its gradient norm or its loss was not
  // finite (0: none), and that norm (NaN or inf when the norm was the cause, finite when the
  // loss was).
  int64_t first_skipped_step = 0;
  double first_skipped_grad_norm = 0;
};

// AdamW's moments as host tensors by parameter name (what a checkpoint stores).
struct HostMoments {
  HostTensorMap exp_avg, exp_avg_sq;
};

// The trainer's stop for a skipped update (see above): throws an Error naming the first skipped
// step of `max_steps` and its norm (today's message for a non-finite gradient norm) when
// `stats` (from read_step_stats) records one; `noticed_after` is the step the host read it at.
void throw_if_update_skipped(const OptimizerStepStats& stats, int64_t max_steps,
                             int64_t noticed_after);

class AdamW {
 public:
  // Allocates m and v for every parameter of `params` (their grads must be F32, same shape), or
  // with `shard` only for this rank's ZeRO-1 pieces.
  AdamW(Backend& backend, std::vector<TrainableParam> params, AdamWSettings settings,
        const ZeroLayout* shard = nullptr);

  // One update with learning rate `lr` from the gradients currently in the params, enqueued
  // without a host wait (grad_norm and clip_scale of the result are NaN: read_step_stats()).
  // loss_check (optional, F32 [1] on the device): the step's loss; a value that is not finite
  // skips the update like a non-finite norm (kernels/backend.h AdamWHyper::loss_check), so the
  // host may read the loss after the update without letting a diverged step through.
  OptimizerStepStats step(double lr, const Tensor& loss_check = {});
  // ZeRO-1: one update of this rank's pieces from `gradient_shard` ([shard_size] F32, the
  // reduce-scattered gradients), clipped with the norm over all ranks: each rank's Σ shard² is
  // all-reduced on the device through `comm` (an F64 [1] all_reduce; no host wait).
  OptimizerStepStats step_shard(double lr, const Tensor& gradient_shard, Communicator& comm,
                                const Tensor& loss_check = {});
  // The last update's stats with grad_norm and clip_scale, and the first skipped update (one host
  // wait: the device clip state is downloaded). Before any update: grad_norm 0.
  OptimizerStepStats read_step_stats() const;
  // Global L2 norm of the current gradients (double accumulation, fixed order).
  double grad_norm() const;
  bool sharded() const { return sharded_; }

  int64_t steps_done() const { return steps_done_; }
  const std::vector<TrainableParam>& params() const { return params_; }
  const AdamWSettings& settings() const { return settings_; }
  // The moment tensors of parameter i (for checkpoints and the spectral refactor); not sharded.
  Tensor first_moment(size_t i) const;
  Tensor second_moment(size_t i) const;
  // Sets parameter i's moments from host values of its full shape (sharded: only this rank's
  // pieces of them are kept).
  void load_moments(size_t i, const float* m, const float* v);
  // ZeRO-1: this rank's pieces (empty when not sharded).
  const std::vector<ZeroPiece>& pieces() const { return pieces_; }
  double weight_decay_of(size_t i) const { return decay_[i]; }
  // The whole m and v arenas, [index().size()] F32, laid out by index() (sharded: [shard size],
  // laid out like the shard).
  const FlatIndex& index() const { return index_; }
  Tensor first_moments() const { return m_flat_; }
  Tensor second_moments() const { return v_flat_; }
  // Resuming from a checkpoint: the number of updates already done (bias correction uses it).
  void restore_steps_done(int64_t steps) { steps_done_ = steps; }

 private:
  Backend& backend_;
  std::vector<TrainableParam> params_;
  AdamWSettings settings_;
  FlatIndex index_;
  Buffer state_;            // m arena then v arena
  Tensor m_flat_, v_flat_;  // [index_.size()] each
  std::vector<Tensor> m_, v_;
  std::vector<double> decay_;
  int64_t steps_done_ = 0;
  bool sharded_ = false;
  std::vector<ZeroPiece> pieces_;
  // F64 [3] on the device: Σ grad² of the last update, the first skipped update's step (0: none),
  // its Σ grad² (kernels/backend.h AdamWHyper::clip_state).
  Buffer clip_buffer_;
  Tensor clip_state_;
  double last_lr_ = 0;

  OptimizerStepStats update(double lr, std::vector<AdamWTensor>& tensors, const Tensor& loss_check);
};

}  // namespace smol
