// `smolengine eval CONFIG [--checkpoint DIR] [--split S] [--max-new-tokens N] [--samples N]
//  [--set k=v]... [--device D] [--data-dir DIR] [--out FILE]`: every evaluation metric of a
// checkpoint (engine/eval/evaluator.h) as JSON on stdout, predictions as JSONL.
#include <limits>
#include <memory>

#include "engine/cli/integer_option.h"
#include "engine/commands.h"
#include "engine/train/trainer.h"

namespace smol {

void add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Evaluate a checkpoint (or the freshly initialised model): eval loss, token and "
      "answer accuracy, generative GSM8K accuracy");
  cmd->add_option("config", options->config_path,
                  "run config (YAML) the checkpoint was trained with")
      ->required();
  cmd->add_option("--checkpoint", options->checkpoint,
                  "a checkpoint-N directory written by `train` (default: no training)");
  cmd->add_option("--split", options->split, "split to evaluate (default: dataset.eval_split)");
  cmd->add_option("--max-new-tokens", options->max_new_tokens,
                  "generation budget per answer (default: evaluation.max_new_tokens); "
                  "generation also stops at the model's context")
      ->check(integer_in(0, std::numeric_limits<int32_t>::max()));
  cmd->add_option("--samples", options->generative_samples,
                  "examples to decode for gsm8k_accuracy, -1 = all (default: "
                  "evaluation.generative_samples)")
      ->check(integer_in(-1, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--set", options->overrides, "override a config key: dotted.key=value")
      ->allow_extra_args(false);
  cmd->add_option("--device", options->device, "auto, cpu, cuda[:N], cuda-emu (auto)");
  cmd->add_option("--data-dir", options->data_dir,
                  "data root (else $SMOLENGINE_DATA, data/, ../shared/data)");
  cmd->add_option("--out", options->out,
                  "predictions JSONL (default: <checkpoint>/eval_predictions.jsonl)");
  cmd->callback([options] { run_evaluation(*options); });
}

}  // namespace smol
