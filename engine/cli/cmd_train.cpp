// `smolengine train CONFIG [--set k=v]... [--output-dir DIR] [--device D] [--data-dir DIR]
//  [--resume DIR|latest]`: the training run a config describes (engine/train/trainer.h).
#include <memory>

#include "engine/commands.h"
#include "engine/train/trainer.h"

namespace smol {

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Fine-tune a model as a config describes (LoRA or full), evaluating and saving "
      "checkpoints on the way");
  cmd->add_option("config", options->config_path, "run config (YAML, the seed's schema)")
      ->required();
  cmd->add_option("--set", options->overrides, "override a config key: dotted.key=value")
      ->allow_extra_args(false);
  cmd->add_option("--output-dir", options->output_dir,
                  "run directory (default: training.output_dir)");
  cmd->add_option("--device", options->device, "auto, cpu, cuda[:N], cuda-emu (auto)");
  cmd->add_option("--data-dir", options->data_dir,
                  "data root (else $SMOLENGINE_DATA, data/, ../shared/data)");
  cmd->add_option("--resume", options->resume,
                  "continue from a checkpoint directory, or 'latest' in the output directory");
  cmd->callback([options] { run_training(*options); });
}

}  // namespace smol
