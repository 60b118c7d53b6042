// `smolengine train`: the training loop, HF Trainer semantics (docs/design.md §4, §6, §7;
// docs/seed-behaviour.md §6), with the seed's bugs fixed where docs/seed-behaviour.md §7 says.
//
// Per optimizer update (the first update uses the schedule's lr at k = 0, as HF):
//   GA micro-batches (engine/train/train_batches.h) → forward + backward, loss normalised over
//   the whole update (engine/train_step.h) → clip → AdamW → k += 1 → log (every logging_steps:
//   mean loss since the last log, grad_norm of this update, the lr the NEXT update uses — HF
//   logs get_last_lr() after the scheduler stepped — epoch, tokens/s) → evaluate
//   (engine/eval/evaluator.h) → save (engine/train/checkpoint.h; save_total_limit with the best
//   kept) → early stopping.
// After the last update: evaluation and a checkpoint (see engine/train/run_plan.h), then with
// load_best_model_at_end the best checkpoint's weights and a final evaluation; the final adapter
// (or full model) is written to the output directory itself (HF save_model), with
// eval_results.json, trainer_state.json and report.html.
//
// A loss that is not finite stops the run with an Error naming the step, before that update is
// applied. A gradient norm that is not finite is found on the device (no host wait in a step,
// engine/optimizer.h): the update is skipped there, and the run stops with an Error naming that
// step at the next read of the optimizer's state — a logging step, an evaluation, a checkpoint
// (read before writing it) or the end. Checkpoints already written stay valid.
//
// Crash safety (engine/train/run_directory.h, engine/train/stop_signals.h, docs/run-directory.md
// "Crash safety"): before the model is loaded the output directory is checked writable, locked
// against a second process, and refused when it already holds a run unless resuming or
// overwriting. SIGINT / SIGTERM finish the current step (with its evaluation and save), write a
// checkpoint and return 128 + the signal; a checkpoint that cannot be written (disk full) ends
// the run with an Error naming the file, the previous checkpoint intact.
#pragma once

#include <string>
#include <vector>

namespace smol {

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set dotted.key=value
  std::string output_dir;              // overrides training.output_dir
  std::string device = "auto";
  std::string data_dir;
  std::string resume;      // "" (fresh run), a checkpoint directory, or "latest"
  bool overwrite = false;  // delete an existing run's files first (never foreign files)
};

// Runs the whole training. Returns 0, or 128 + the signal when SIGINT / SIGTERM stopped it
// (after writing a checkpoint). Throws smol::Error on bad input or a diverging run.
int run_training(const TrainOptions& options);

struct EvalCommandOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string checkpoint;  // a checkpoint directory (or "" = the model as the config builds it)
  std::string split;       // overrides dataset.eval_split
  int64_t max_new_tokens = -1;      // overrides evaluation.max_new_tokens when >= 0
  int64_t generative_samples = -2;  // overrides evaluation.generative_samples when >= -1
  std::string device = "auto";
  std::string data_dir;
  std::string out;  // predictions file (default: <checkpoint or output_dir>/eval_predictions.jsonl)
};

// `smolengine eval`: evaluates a checkpoint (or the initialised model) on a split, prints the
// metrics as JSON on stdout and writes the predictions.
void run_evaluation(const EvalCommandOptions& options);

}  // namespace smol
