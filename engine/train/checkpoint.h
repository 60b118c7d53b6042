// Checkpoints in HF Trainer's shape, written so that a run killed at any moment leaves every
// complete checkpoint loadable, and read back so that a resumed run continues exactly
// (docs/run-directory.md, docs/design.md §4 "Determinism").
//
//   <output_dir>/checkpoint-<step>/
//     adapter_model.safetensors,   LoRA: the adapter PEFT's PeftModel.from_pretrained loads onto
//     adapter_config.json          the base model. For initialisers that moved the base weight
//                                  (pissa, pissa_niter_K, lora_ga, lora_ns) it is PEFT's own
//                                  conversion to a plain rank-2r LoRA against the ORIGINAL base
//                                  (io/peft_adapter.h convert_to_plain_lora), so PEFT needs no
//                                  residual base.
//     model.safetensors,           full fine-tuning: every weight in HF layout (fp32)
//     config.json
//     training_state.safetensors   what an exact resume needs: AdamW moments
//                                  "optimizer.exp_avg.<name>" / "optimizer.exp_avg_sq.<name>";
//                                  LoRA: the trained tensors "param.<name>" exactly and, for
//                                  initialisers that moved the base, "initial.<name>" (A0, B0);
//                                  metadata: step, data cursor, seeds, best metric, patience
//     trainer_state.json           HF's TrainerState: global_step, epoch, log_history,
//                                  best_metric, best_model_checkpoint, max_steps, ...
//     smolengine_config.yaml       the resolved run config
//
// The directory is assembled under "checkpoint-<step>.tmp.<pid>" and renamed into place; a
// leftover *.tmp.* directory is an interrupted save and is never read. A checkpoint is deleted
// (save_total_limit, or replaced by a save of the same step) by renaming it to
// "checkpoint-<step>.deleted.<pid>" first, so no partial directory ever has a checkpoint's name.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/optimizer.h"
#include "engine/train/run_plan.h"
#include "engine/train/train_batches.h"
#include "io/host_tensor.h"
#include "io/peft_adapter.h"
#include "model/llama_model.h"

namespace smol {

// TrainState: everything a run is besides its tensors (docs/design.md §4 "Determinism"). The
// tensors live in flat arenas with a name index: parameters and gradients in the model's
// arenas (model/llama_weights.h), AdamW's m and v in the optimizer's two flat arenas laid out
// by a FlatIndex (engine/train/flat_index.h). Together they are what a checkpoint saves and a
// resume restores; data parallelism all-reduces the gradient arena, ZeRO-1 shards the moments.
struct TrainState {
  int64_t global_step = 0;  // optimizer updates done
  DataCursor cursor;        // next micro-batch to read
  uint64_t seed = 0;        // dropout masks derive from (seed, step): no other RNG state exists
  uint64_t data_seed = 0;   // epoch orders derive from (data_seed, epoch)
  std::optional<double> best_metric;
  std::string best_checkpoint;  // "checkpoint-N" (relative to the output directory) or ""
  int64_t patience_counter = 0;
  nlohmann::json log_history = nlohmann::json::array();  // HF TrainerState.log_history
};

struct CheckpointWrite {
  LlamaModel* model = nullptr;
  const AdamW* optimizer = nullptr;
  const HostMoments* moments = nullptr;  // the optimizer's m and v (gathered under ZeRO-1)
  const TrainState* progress = nullptr;
  const RunPlan* plan = nullptr;
  std::string config_yaml;                 // the resolved config
  PeftAdapterConfig adapter_config;        // LoRA mode
  const HostTensorMap* initial = nullptr;  // A0/B0 of an initialiser that moved the base
  std::string metric_for_best_model;       // with "eval_" prefix
  bool greater_is_better = false;
};

// HF's TrainerState (trainer_state.json) for a run at `state`.
nlohmann::json trainer_state_json(const TrainState& state, const RunPlan& plan,
                                  const std::string& output_dir,
                                  const std::string& metric_for_best_model, bool greater_is_better);

// The trained model as others load it, into `dir`: LoRA → the PEFT adapter (PEFT's rank-2r
// conversion against the original base when `initial` holds A0/B0 of an initialiser that moved
// it); full fine-tuning → model.safetensors + config.json. `trained`: the trainable tensors.
void write_trained_model(const std::string& dir, const LlamaModel& model,
                         const HostTensorMap& trained, PeftAdapterConfig adapter_config,
                         const HostTensorMap* initial);

// Writes <output_dir>/checkpoint-<global_step> and returns its path.
std::string save_checkpoint(const std::string& output_dir, const CheckpointWrite& write);

struct LoadedCheckpoint {
  std::string dir;
  TrainState progress;
  bool full_finetune = false;
  HostTensorMap params;  // trainable tensors by name (LoRA: param.*; full: model.safetensors)
  HostTensorMap exp_avg, exp_avg_sq, initial;
};

// Reads a checkpoint directory (throws naming the file when something is missing or broken).
// `with_optimizer` false skips the moments (evaluation only needs the parameters).
LoadedCheckpoint load_checkpoint(const std::string& dir, bool with_optimizer = true);
// Reads every file of a checkpoint directory in full and checks that they agree (moments for
// every trained tensor, the adapter / model file complete, the configs parse, the step matches
// the directory's name); throws naming the file otherwise. What the kill -9 test asserts of
// every checkpoint a killed run leaves.
LoadedCheckpoint verify_checkpoint(const std::string& dir);
// Throws naming the checkpoint when it cannot belong to `model` as built now: another train
// mode, or (`initial` given) an initialiser that did not reproduce the checkpoint's A0 / B0.
void check_checkpoint_matches(const LoadedCheckpoint& checkpoint, const LlamaModel& model,
                              const HostTensorMap* initial);
// Writes the checkpoint's trainable tensors into the model (and moments + step counter into the
// optimizer when given). Every trainable tensor must be present with its shape.
void restore_checkpoint(const LoadedCheckpoint& checkpoint, LlamaModel& model, AdamW* optimizer);

// Complete checkpoints under output_dir, (step, path) sorted by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir);
// "latest" → the newest complete checkpoint of output_dir (throws when none); else `spec`.
std::string resolve_checkpoint(const std::string& spec, const std::string& output_dir);
// save_total_limit: deletes the oldest checkpoints beyond `limit` (0 = keep all), never the best
// one (HF Trainer._rotate_checkpoints, including its rule that limit 1 keeps the best and the
// newest). Returns the deleted paths.
std::vector<std::string> rotate_checkpoints(const std::string& output_dir, int64_t limit,
                                            const std::string& best_checkpoint);

}  // namespace smol
