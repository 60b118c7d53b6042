// Run length and cadences (see run_plan.h).
#include "engine/train/run_plan.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "engine/lr_schedule.h"

namespace smol {

bool RunPlan::log_at(int64_t step) const {
  return step == max_steps || (logging_steps > 0 && step % logging_steps == 0);
}

bool RunPlan::eval_at(int64_t step) const {
  if (!evaluates) return false;
  if (step == max_steps) return true;
  return (eval_steps > 0 && step % eval_steps == 0) || (eval_each_epoch && ends_epoch(step));
}

bool RunPlan::save_at(int64_t step) const {
  if (!saves) return false;
  if (step == max_steps) return true;
  return (save_steps > 0 && step % save_steps == 0) || (save_each_epoch && ends_epoch(step));
}

double RunPlan::epoch_at(int64_t step) const {
  if (micro_batches_per_epoch <= 0 || updates_per_epoch <= 0) return 0;
  const int64_t full_epochs = step / updates_per_epoch;
  const int64_t updates_into_epoch = step % updates_per_epoch;
  const int64_t micro = std::min(updates_into_epoch * accumulation, micro_batches_per_epoch);
  return static_cast<double>(full_epochs) +
         static_cast<double>(micro) / static_cast<double>(micro_batches_per_epoch);
}

RunPlan plan_run(const RunConfig& config, int64_t examples, bool has_eval_split,
                 int64_t processes) {
  const TrainingSection& t = config.training;
  SMOL_CHECK(examples > 0, config.path, ": the train split '", config.dataset.train_split,
             "' gives no training example");
  SMOL_CHECK(processes > 0, "plan_run: processes must be positive");
  RunPlan plan;
  plan.examples = examples;
  plan.processes = processes;
  plan.micro_batch_size = t.per_device_train_batch_size;
  plan.accumulation = t.gradient_accumulation_steps;
  const int64_t per_process = examples / processes;
  SMOL_CHECK(per_process > 0, config.path, ": ", examples,
             " training examples cannot be shared by ", processes, " processes");
  // Micro-batches are global (bs rows on each of the P ranks, engine/dist/data_parallel.h), so
  // P ranks with bs and one rank with P·bs step through the same plan.
  const int64_t global_batch = plan.micro_batch_size * processes;
  plan.micro_batches_per_epoch = t.dataloader_drop_last
                                     ? examples / global_batch
                                     : (examples + global_batch - 1) / global_batch;
  SMOL_CHECK(plan.micro_batches_per_epoch > 0, config.path, ": per_device_train_batch_size ",
             plan.micro_batch_size, " x ", processes,
             " processes with dataloader_drop_last leaves no batch of the ", examples, " examples");
  plan.updates_per_epoch =
      (plan.micro_batches_per_epoch + plan.accumulation - 1) / plan.accumulation;
  if (t.max_steps > 0) {
    plan.max_steps = t.max_steps;
  } else {
    // The seed's formula (docs/seed-behaviour.md §6).
    const double steps = std::floor(t.num_train_epochs * static_cast<double>(per_process) /
                                    static_cast<double>(plan.micro_batch_size * plan.accumulation));
    SMOL_CHECK(steps >= 1, config.path, ": num_train_epochs ", t.num_train_epochs, " over ",
               per_process, " examples at batch ", plan.micro_batch_size, " x ", plan.accumulation,
               " gives no optimizer step; set training.max_steps");
    plan.max_steps = static_cast<int64_t>(steps);
  }
  plan.warmup_steps = resolve_warmup_steps(plan.max_steps, t.warmup_ratio, t.warmup_steps);
  plan.logging_steps = std::max<int64_t>(0, t.logging_steps);

  plan.evaluates = has_eval_split && t.eval_strategy != "no";
  if (plan.evaluates) {
    if (t.eval_strategy == "epoch") {
      plan.eval_each_epoch = true;
    } else if (t.eval_steps) {
      plan.eval_steps = *t.eval_steps;
    } else {
      plan.eval_steps =
          std::max<int64_t>(1, plan.max_steps / std::max<int64_t>(1, t.total_eval_times));
    }
  }
  plan.saves = t.save_strategy != "no";
  if (plan.saves) {
    if (t.save_strategy == "epoch") {
      plan.save_each_epoch = true;
    } else if (t.save_steps) {
      plan.save_steps = *t.save_steps;
    } else if (plan.eval_steps > 0) {
      plan.save_steps = plan.eval_steps;
    } else {
      plan.save_steps =
          std::max<int64_t>(1, plan.max_steps / std::max<int64_t>(1, t.total_eval_times));
    }
  }
  return plan;
}

std::string describe_plan(const RunPlan& plan) {
  std::ostringstream out;
  out << plan.max_steps << " optimizer steps over " << plan.examples << " examples ("
      << plan.micro_batches_per_epoch << " micro-batches of " << plan.micro_batch_size
      << " per epoch, " << plan.accumulation << " per step, " << plan.updates_per_epoch
      << " steps per epoch), warmup " << plan.warmup_steps;
  if (plan.evaluates)
    out << ", eval "
        << (plan.eval_each_epoch ? std::string("every epoch")
                                 : "every " + std::to_string(plan.eval_steps));
  else
    out << ", no eval";
  if (plan.saves)
    out << ", save "
        << (plan.save_each_epoch ? std::string("every epoch")
                                 : "every " + std::to_string(plan.save_steps));
  return out.str();
}

}  // namespace smol
