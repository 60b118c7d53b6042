// When the spectral refactor runs, with which λ, on which adapters (docs/seed-behaviour.md
// §5.2–5.3, docs/design.md §4).
//
// k = completed optimizer steps. A refactor is due at k iff
//   k >= R and k mod R = 0                        (R = refactor_every, the seed's modulo rule)
//   k >= warmup_steps and k >= warmup_ratio·T     (the seed's warmup gate; cd92e2d's ratio form)
//   k <= T − cooldown_steps when cooldown_steps > 0  (2f6c923)
//   k < T                                          (nothing refactors the final adapter: the seed
//                                                   never ran a training_step after the last one)
// λ_k = λ₀ (constant) or λ₀ + (1 − λ₀)·k/T (linear, the seed's S1 rise to 1), T = max_steps.
// Adapters: those whose projection name contains one of target_adapter_keys (all when empty),
// and with only_large_layers those with min(out, in) >= large_dim_threshold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/config/run_config.h"
#include "engine/train/spectral_refactor.h"

namespace smol {

class RefactorSchedule {
 public:
  // Error when refactor_every < 1 or the λ schedule is neither constant nor linear.
  RefactorSchedule(const TrainerSection& trainer, int64_t max_steps);

  bool due(int64_t completed_steps) const;
  double lambda(int64_t completed_steps) const;
  // The settings of the refactor at `completed_steps` (mode, λ_k, damping, momentum).
  RefactorSettings settings_at(int64_t completed_steps) const;
  bool selects(const LoraPair& pair) const;
  std::vector<LoraPair> select(const std::vector<LoraPair>& pairs) const;
  // "step" timing: after the update; "legacy": after each micro-batch's backward.
  bool legacy_timing() const { return trainer_.refactor_timing == "legacy"; }

 private:
  TrainerSection trainer_;
  int64_t max_steps_;
};

}  // namespace smol
