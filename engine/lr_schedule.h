// Learning-rate schedules with HF Trainer semantics (docs/seed-behaviour.md §6, docs/design.md §4).
//
// The schedule is a multiplier of the peak lr evaluated at the optimizer-update index k
// (0-based: the first update uses k = 0, so with any warmup it runs at lr 0, as HF does; the
// scheduler steps after each optimizer step). Formulas are transformers' get_*_schedule_*:
//   warmup     k < W:  k / max(1, W)
//   cosine     k ≥ W:  max(0, ½(1 + cos(π·(k−W)/max(1, T−W))))
//   linear     k ≥ W:  max(0, (T−k) / max(1, T−W))
//   constant_with_warmup k ≥ W: 1
//   constant:  1 for every k (HF's "constant" ignores warmup)
// W = warmup_steps if warmup_steps > 0, else ceil(warmup_ratio · T) (transformers'
// TrainingArguments.get_warmup_steps).
#pragma once

#include <cstdint>
#include <string>

namespace smol {

enum class LrScheduleKind : uint8_t { Cosine, Linear, Constant, ConstantWithWarmup };

// Accepts "cosine", "linear", "constant", "constant_with_warmup"; throws naming `where`.
LrScheduleKind parse_lr_schedule_kind(const std::string& name, const std::string& where);
const char* lr_schedule_kind_name(LrScheduleKind kind);

// HF's warmup step count: warmup_steps when > 0, else ceil(warmup_ratio · total_steps).
int64_t resolve_warmup_steps(int64_t total_steps, double warmup_ratio, int64_t warmup_steps);

class LrSchedule {
 public:
  LrSchedule(LrScheduleKind kind, double peak_lr, int64_t total_steps, int64_t warmup_steps);

  // The multiplier at update k (0-based).
  double factor(int64_t k) const;
  // peak_lr · factor(k): the lr the k-th optimizer update uses.
  double lr(int64_t k) const { return peak_lr_ * factor(k); }

  LrScheduleKind kind() const { return kind_; }
  double peak_lr() const { return peak_lr_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  LrScheduleKind kind_;
  double peak_lr_;
  int64_t total_steps_;
  int64_t warmup_steps_;
};

}  // namespace smol
