// How long a training run is and when it logs, evaluates and saves (docs/seed-behaviour.md §6,
// HF Trainer semantics), computed once from the config and the number of training examples.
//
//   micro-batches per epoch  M = ceil(N / (bs · P))    (floor with dataloader_drop_last); a
//                                                      micro-batch is global: bs rows on each
//                                                      of the P data-parallel ranks
//   updates per epoch        U = ceil(M / GA)          the last update of an epoch takes the
//                                                      M mod GA leftover micro-batches (HF ≥ 4.46)
//   max_steps                training.max_steps when > 0, else the seed's formula
//                            ⌊epochs · ⌊N / P⌋ / (bs · GA)⌋ (P processes), at least 1
//   warmup                   warmup_steps when > 0, else ceil(warmup_ratio · max_steps)
//   eval_steps               training.eval_steps when set, else ⌊max_steps / total_eval_times⌋,
//                            at least 1 (the seed could compute 0, B21)
//   save_steps               training.save_steps when set, else eval_steps
// Evaluation and saving also happen after the last update (HF's DefaultFlowCallback saves at
// the end of training; we evaluate there too so every run ends with numbers).
#pragma once

#include <cstdint>
#include <string>

#include "engine/config/run_config.h"

namespace smol {

struct RunPlan {
  int64_t examples = 0;                 // N, training examples after drops
  int64_t processes = 1;                // P (data-parallel ranks)
  int64_t micro_batch_size = 1;         // bs
  int64_t accumulation = 1;             // GA
  int64_t micro_batches_per_epoch = 0;  // M
  int64_t updates_per_epoch = 0;        // U
  int64_t max_steps = 0;
  int64_t warmup_steps = 0;
  int64_t logging_steps = 0;  // 0 = log only at the end
  int64_t eval_steps = 0;     // 0 = no evaluation by step
  bool eval_each_epoch = false;
  int64_t save_steps = 0;  // 0 = no saving by step
  bool save_each_epoch = false;
  bool evaluates = false;  // an eval split exists and eval_strategy is not "no"
  bool saves = false;      // save_strategy is not "no"

  // Whether the update that brings the run to `step` (1-based) ends an epoch.
  bool ends_epoch(int64_t step) const {
    return updates_per_epoch > 0 && step % updates_per_epoch == 0;
  }
  bool log_at(int64_t step) const;
  bool eval_at(int64_t step) const;
  bool save_at(int64_t step) const;
  // Fractional epoch after `step` updates (HF's state.epoch): micro-batches consumed / M.
  double epoch_at(int64_t step) const;
};

// `has_eval_split`: the config names an evaluation split (no split, no evaluation; seed §1).
RunPlan plan_run(const RunConfig& config, int64_t examples, bool has_eval_split,
                 int64_t processes = 1);

// One line for the console: "2802 steps (3 epochs of 935 updates), eval every 93, save every 93".
std::string describe_plan(const RunPlan& plan);

}  // namespace smol
