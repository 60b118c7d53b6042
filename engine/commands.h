// The subcommands of `smolengine`, one file each (engine/cli/cmd_*.cpp). Each adds itself to the
// app; its callback throws smol::Error on bad input, which main() reports.
#pragma once

#include <CLI/CLI.hpp>

namespace smol {

void add_inspect_command(CLI::App& app);    // engine/cli/cmd_inspect.cpp
void add_tokenize_command(CLI::App& app);   // engine/cli/cmd_tokenize.cpp
void add_generate_command(CLI::App& app);   // engine/cli/cmd_generate.cpp
void add_dump_step_command(CLI::App& app);  // engine/cli/cmd_dump_step.cpp
void add_train_command(CLI::App& app);      // engine/cli/cmd_train.cpp
void add_eval_command(CLI::App& app);       // engine/cli/cmd_eval.cpp
void add_export_command(CLI::App& app);     // engine/cli/cmd_export.cpp
void add_config_command(CLI::App& app);     // engine/cli/cmd_config.cpp

}  // namespace smol
