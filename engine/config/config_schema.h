// The run config's keys: one descriptor table per section of the seed's schema
// (docs/seed-behaviour.md §1) plus the engine's extensions, each key bound to its RunConfig
// field (engine/config/run_config.h). This table is the one place a key, its default, its check
// and its documentation are written; `smolengine config --help-keys` prints it.
#pragma once

#include "engine/config/config_table.h"

namespace smol {

// Sections in document order: the top level (task keys and the section names), then model,
// model.architecture, tokenizer, peft, trainer, loraga, dataset, training, evaluation, wandb.
const ConfigSchema& run_config_schema();

}  // namespace smol
