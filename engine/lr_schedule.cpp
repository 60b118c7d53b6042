// Learning-rate schedules, HF semantics (see lr_schedule.h for the formulas).
#include "engine/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"

namespace smol {

LrScheduleKind parse_lr_schedule_kind(const std::string& name, const std::string& where) {
  if (name == "cosine") return LrScheduleKind::Cosine;
  if (name == "linear") return LrScheduleKind::Linear;
  if (name == "constant") return LrScheduleKind::Constant;
  if (name == "constant_with_warmup") return LrScheduleKind::ConstantWithWarmup;
  throw_error(where, ": unknown lr_scheduler_type '", name,
              "' (expected cosine, linear, constant or constant_with_warmup)");
}

const char* lr_schedule_kind_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::Cosine:
      return "cosine";
    case LrScheduleKind::Linear:
      return "linear";
    case LrScheduleKind::Constant:
      return "constant";
    case LrScheduleKind::ConstantWithWarmup:
      return "constant_with_warmup";
  }
  return "?";
}

int64_t resolve_warmup_steps(int64_t total_steps, double warmup_ratio, int64_t warmup_steps) {
  SMOL_CHECK(warmup_steps >= 0, "warmup_steps = ", warmup_steps, " must be >= 0");
  SMOL_CHECK(warmup_ratio >= 0 && warmup_ratio <= 1, "warmup_ratio = ", warmup_ratio,
             " must be in [0, 1]");
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

LrSchedule::LrSchedule(LrScheduleKind kind, double peak_lr, int64_t total_steps,
                       int64_t warmup_steps)
    : kind_(kind), peak_lr_(peak_lr), total_steps_(total_steps), warmup_steps_(warmup_steps) {
  SMOL_CHECK(total_steps > 0, "lr schedule: total steps = ", total_steps, " must be positive");
  SMOL_CHECK(warmup_steps >= 0, "lr schedule: warmup steps = ", warmup_steps, " must be >= 0");
  SMOL_CHECK(std::isfinite(peak_lr) && peak_lr >= 0, "lr schedule: learning_rate = ", peak_lr,
             " must be finite and >= 0");
}

double LrSchedule::factor(int64_t k) const {
  if (kind_ == LrScheduleKind::Constant) return 1.0;
  const double step = static_cast<double>(k);
  const double warmup = static_cast<double>(warmup_steps_);
  const double total = static_cast<double>(total_steps_);
  if (k < warmup_steps_) return step / std::max(1.0, warmup);
  switch (kind_) {
    case LrScheduleKind::Cosine: {
      // transformers' _get_cosine_schedule_with_warmup_lr_lambda with num_cycles = 0.5.
      const double progress = (step - warmup) / std::max(1.0, total - warmup);
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 2.0 * 0.5 * progress)));
    }
    case LrScheduleKind::Linear:
      return std::max(0.0, (total - step) / std::max(1.0, total - warmup));
    case LrScheduleKind::ConstantWithWarmup:
    case LrScheduleKind::Constant:
      return 1.0;
  }
  return 1.0;
}

}  // namespace smol
