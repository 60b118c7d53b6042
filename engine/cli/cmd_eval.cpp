// `smolengine eval CONFIG [--checkpoint DIR] [--split S] [--max-new-tokens N] [--samples N]
//  [--set k=v]... [--device D] [--data-dir DIR] [--out FILE] [--weights fp32|quantized]`: every
//  evaluation metric of a
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
  // --weights W is --set model.weights_in_memory=W (docs/cpu-speed.md "Quantised inference").
  auto weights = std::make_shared<std::string>();
  cmd->add_option("--weights", *weights,
                  "fp32 or quantized: model.weights_in_memory (keep GGUF Q8_0/Q4_0/Q4_1/Q4_K "
                  "weights quantised on cpu)")
      ->check(CLI::IsMember({"fp32", "quantized"}));
  cmd->callback([options, weights] {
    if (!weights->empty()) options->overrides.push_back("model.weights_in_memory=" + *weights);
    run_evaluation(*options);
  });
}

}  // namespace smol
