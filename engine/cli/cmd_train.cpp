// `smolengine train CONFIG [--set k=v]... [--output-dir DIR] [--device D] [--data-dir DIR]
//  [--resume DIR|latest] [--overwrite]`: the training run a config describes
//  (engine/train/trainer.h).
#include <cstdio>
#include <cstdlib>
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
  cmd->add_flag("--overwrite", options->overwrite,
                "delete the run already in the output directory first (only the files smolengine "
                "writes; refused when the directory holds others)");
  cmd->callback([options] {
    // SIGINT / SIGTERM stopped the run after writing a checkpoint (engine/train/stop_signals.h):
    // exit with 128 + the signal as shells expect. Every file is closed by now; std::exit
    // flushes stdio.
    if (const int code = run_training(*options); code != 0) {
      std::fflush(nullptr);
      std::exit(code);
    }
  });
}

}  // namespace smol
