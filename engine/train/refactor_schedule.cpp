// The spectral refactor's trigger, λ schedule and adapter filter (see refactor_schedule.h).
#include "engine/train/refactor_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace smol {

RefactorSchedule::RefactorSchedule(const TrainerSection& trainer, int64_t max_steps)
    : trainer_(trainer), max_steps_(max_steps) {
  SMOL_CHECK(trainer.refactor_every >= 1, "trainer.refactor_every ", trainer.refactor_every,
             ": must be at least 1");
  SMOL_CHECK(
      trainer.balance_lambda_schedule == "constant" || trainer.balance_lambda_schedule == "linear",
      "trainer.balance_lambda_schedule '", trainer.balance_lambda_schedule,
      "': constant or linear");
  SMOL_CHECK(trainer.refactor_mode == "exact" || trainer.refactor_mode == "balanced",
             "trainer.refactor_mode '", trainer.refactor_mode, "': exact or balanced");
  SMOL_CHECK(trainer.refactor_timing == "step" || trainer.refactor_timing == "legacy",
             "trainer.refactor_timing '", trainer.refactor_timing, "': step or legacy");
  SMOL_CHECK(max_steps >= 1, "spectral refactor: max_steps ", max_steps, " must be at least 1");
}

bool RefactorSchedule::due(int64_t k) const {
  const int64_t every = trainer_.refactor_every;
  if (k < every || k % every != 0 || k >= max_steps_) return false;
  if (k < trainer_.warmup_steps) return false;
  if (static_cast<double>(k) < trainer_.warmup_ratio * static_cast<double>(max_steps_))
    return false;
  if (trainer_.cooldown_steps > 0 && k > max_steps_ - trainer_.cooldown_steps) return false;
  return true;
}

double RefactorSchedule::lambda(int64_t k) const {
  const double lambda0 = trainer_.balance_lambda;
  if (trainer_.balance_lambda_schedule == "constant") return lambda0;
  const double progress =
      std::clamp(static_cast<double>(k) / static_cast<double>(max_steps_), 0.0, 1.0);
  return lambda0 + (1.0 - lambda0) * progress;
}

RefactorSettings RefactorSchedule::settings_at(int64_t k) const {
  RefactorSettings s;
  s.balanced = trainer_.refactor_mode == "balanced";
  s.lambda = lambda(k);
  s.damping_eps = trainer_.damping_eps;
  s.clip_min_sigma = trainer_.clip_min_sigma;
  s.preserve_momentum = trainer_.preserve_momentum;
  s.clear_momentum = trainer_.clear_momentum;
  return s;
}

bool RefactorSchedule::selects(const LoraPair& pair) const {
  const auto& keys = trainer_.target_adapter_keys;
  if (!keys.empty() && std::none_of(keys.begin(), keys.end(), [&](const std::string& key) {
        return pair.name.find(key) != std::string::npos;
      }))
    return false;
  if (trainer_.only_large_layers && std::min(pair.out(), pair.in()) < trainer_.large_dim_threshold)
    return false;
  return true;
}

std::vector<LoraPair> RefactorSchedule::select(const std::vector<LoraPair>& pairs) const {
  std::vector<LoraPair> kept;
  for (const LoraPair& p : pairs)
    if (selects(p)) kept.push_back(p);
  return kept;
}

}  // namespace smol
