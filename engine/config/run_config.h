// RunConfig: the YAML run configuration in the seed's schema (docs/seed-behaviour.md §1), typed.
// Every key of every section is one descriptor in engine/config/config_schema.cpp (type,
// default, check, doc, Used or Ignored); `smolengine config --help-keys` prints that table and
// the README's key list is its Markdown. Reading is strict: an unknown key is an Error naming
// the file, line and dotted key with a "did you mean" suggestion; a wrong type or an out-of-range
// value names file:line and key; numeric strings ("1e-5", as yaml.safe_load handed the seed) are
// numbers. Keys whose effect is Ignored are accepted and listed in `warnings`.
//
// Defaults: the schema's table is the single source of config defaults. The in-struct defaults
// below agree with it (a test compares them) — except two structs owned elsewhere, whose own
// defaults are for code that builds them directly: LoraSettings::dropout is 0.0 there while the
// config default is the seed's 0.1, and LlamaConfig::rms_norm_eps is SmolLM2's 1e-5 while a
// model.architecture without it gets HF LlamaConfig's 1e-6.
//
// Engine extensions to the seed schema (all optional): model.init: pretrained | random,
// model.architecture (HF config.json keys), model.seed, peft.method: full, peft.init_seed,
// training.no_decay, loraga.scale / stable_gamma, tokenizer.name_or_path / eos_token /
// pad_token, trainer.cooldown_steps / refactor_timing, the `evaluation` section.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/example_builder.h"
#include "data/prompt_render.h"
#include "io/llama_config.h"
#include "model/llama_model.h"
#include "model/lora_init.h"

namespace smol {

struct ModelSection {
  std::string name_or_path;      // pretrained weights (GGUF, HF dir, hub name)
  bool random_init = false;      // model.init: random
  LlamaConfig architecture;      // valid when random_init
  double init_std = 0.02;        // architecture.initializer_range
  std::optional<uint64_t> seed;  // model.seed; unset = training.seed
  // model.weights_in_memory: "fp32" (dequantised at load, the reference) or "quantized" (GGUF
  // Q8_0/Q4_0/Q4_1/Q4_K projections, embedding and LM head kept quantised; inference on cpu).
  std::string weights_in_memory = "fp32";
  bool operator==(const ModelSection&) const = default;
};

struct PeftSection {
  std::string method = "lora";        // lora | full
  LoraSettings lora;                  // r, alpha, dropout, rslora, targets
  LoraInitSpec init;                  // init_lora_weights (+ loraga direction/scale, seed)
  std::optional<uint64_t> init_seed;  // peft.init_seed; unset = training.seed
  bool full_finetune() const { return method == "full"; }
  bool operator==(const PeftSection&) const = default;
};

// The seed's `trainer` section (docs/seed-behaviour.md §1, §5): Trainer, or the spectral
// refactor trainer with its schedule and mode.
struct TrainerSection {
  std::string name = "Trainer";  // Trainer | SpectralRefactorTrainer
  int64_t refactor_every = 100;
  int64_t warmup_steps = 0;
  int64_t cooldown_steps = 0;
  std::string refactor_mode = "balanced";  // balanced | exact
  double balance_lambda = 1.0;
  bool preserve_momentum = false;
  bool clear_momentum = true;
  double damping_eps = 0;
  double clip_min_sigma = 0;
  std::string refactor_timing = "step";              // step | legacy (docs/design.md §4)
  double warmup_ratio = 0;                           // > 0: no refactor while k < ratio·max_steps
  std::string balance_lambda_schedule = "constant";  // constant | linear (the seed's rise to 1)
  std::vector<std::string> target_adapter_keys;      // empty: every adapter
  bool only_large_layers = false;
  int64_t large_dim_threshold = 0;  // with only_large_layers: min(out, in) >= threshold
  bool spectral() const { return name == "SpectralRefactorTrainer"; }
  bool operator==(const TrainerSection&) const = default;
};

struct TrainingSection {
  int64_t max_steps = -1;  // -1: from num_train_epochs
  double num_train_epochs = 3;
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;   // = global_batch_size / per_device when that is set
  std::optional<int64_t> global_batch_size;  // docs/seed-behaviour.md §8
  double learning_rate = 2e-4;
  double weight_decay = 0;
  double warmup_ratio = 0.03;
  int64_t warmup_steps = 0;
  std::string lr_scheduler_type = "cosine";
  std::string optim = "adamw_torch";  // every accepted name is the same AdamW
  // fp32 | bf16: bf16 stores the frozen base weights of a LoRA run in bf16 on the cpu backend
  // (docs/cpu-speed.md "bf16 on cpu"); fp32 is the exact reference.
  std::string cpu_precision = "fp32";
  double max_grad_norm = 1.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  uint64_t seed = 42;
  uint64_t data_seed = 42;  // unset in the file: = seed
  int64_t pad_to_multiple_of = 8;
  bool dataloader_drop_last = false;
  double ddp_timeout = 1800;  // seconds (HF TrainingArguments.ddp_timeout)
  std::string output_dir;
  std::string run_name;
  std::vector<std::string> no_decay;
  // Evaluation / saving cadence (docs/seed-behaviour.md §6): every eval_steps when set (the seed
  // ignored it, B21), else every ⌊max_steps / total_eval_times⌋.
  int64_t total_eval_times = 50;
  std::string eval_strategy = "steps";  // no | steps | epoch (alias evaluation_strategy)
  std::string save_strategy = "steps";  // no | steps | epoch
  std::optional<int64_t> eval_steps;
  std::optional<int64_t> save_steps;
  int64_t logging_steps = 10;
  bool eval_on_start = false;  // HF eval_on_start: one evaluation before the first step
  bool load_best_model_at_end = false;
  std::string metric_for_best_model = "loss";
  std::optional<bool> greater_is_better;  // unset: HF's rule, see best_metric_greater_is_better
  int64_t save_total_limit = 3;           // 0 = unlimited
  std::vector<std::string> report_to{"tensorboard"};  // TensorBoard files are always written

  // greater_is_better, else HF's rule: false iff metric_for_best_model ends with "loss".
  bool best_metric_greater_is_better() const;
  bool operator==(const TrainingSection&) const = default;
};

// Evaluation beyond the teacher-forced loss (docs/design.md §6).
struct EvaluationSection {
  bool generative = true;  // gsm8k_accuracy by greedy decoding
  int64_t max_new_tokens = 256;
  int64_t generative_samples = -1;  // -1 = the whole eval split
  int64_t batch_size = 0;           // 0 = training.per_device_eval_batch_size
  std::vector<std::string> stop_strings{
      "\n### ", "Question:"};       // "\n### ": a new header; "####" (the answer) is not one
  int64_t predictions_sample = 20;  // predictions the report shows
  bool operator==(const EvaluationSection&) const = default;
};

struct LoraGaSection {
  int64_t batch_size = 8;
  int64_t num_samples = 64;
  std::string direction = "ArB2r";
  std::string scale = "stable";
  double stable_gamma = 16;
  bool operator==(const LoraGaSection&) const = default;
};

struct DatasetSection {
  std::string name;    // gsm8k, openai/gsm8k, meta-math/MetaMathQA, or a local path
  std::string subset;  // HF config name ("main" for gsm8k)
  std::map<std::string, std::string> data_files;  // split -> file; replaces name resolution
  std::string train_split = "train";
  std::optional<std::string> eval_split;  // absent: no evaluation (docs/seed-behaviour.md §1)
  std::optional<std::string> test_split;
  std::optional<int64_t> max_length;  // unset: tokenizer.model_max_length, else the model's
  PromptFormat prompt;                // fields and templates (data/prompt_render.h)
  ExampleFormat example;  // EOS/BOS, prefixes, truncation flags; max_length and eos_id are
                          // resolved when the tokenizer and model are known
  bool operator==(const DatasetSection&) const = default;
};

struct TokenizerSection {
  std::string name_or_path;  // empty = model.name_or_path
  std::optional<std::string> eos_token, pad_token;
  std::optional<int64_t> model_max_length;
  bool operator==(const TokenizerSection&) const = default;
};

struct RunConfig {
  std::string path;                     // where it came from (for messages)
  std::string data_dir;                 // the data root from --data-dir (not a YAML key)
  std::string task_name;                // required, non-empty (B2)
  std::string task_type = "CAUSAL_LM";  // SEQ_CLS is not implemented
  int64_t early_stopping_patience = 0;  // evaluations without improvement; 0 = off
  double early_stopping_threshold = 0;  // the improvement that counts
  ModelSection model;
  TokenizerSection tokenizer;
  PeftSection peft;
  TrainerSection trainer;
  LoraGaSection loraga;
  DatasetSection dataset;
  TrainingSection training;
  EvaluationSection evaluation;
  // One line per key given but not acted on: "training.bf16: accepted, not acted on (<why>)".
  std::vector<std::string> warnings;
  // The values of those Ignored keys (dotted key -> YAML flow text), so to_yaml writes them back.
  std::map<std::string, std::string> ignored_values;
  bool operator==(const RunConfig&) const = default;
};

// Reads `path`, applies `overrides` ("dotted.key=yaml value", in order; the key must be one of
// the schema's) and parses.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses YAML text; `where` names it in errors.
RunConfig parse_run_config_text(const std::string& yaml, const std::string& where,
                                const std::vector<std::string>& overrides = {});

// Every key of every section with its resolved value, as YAML: load(to_yaml(c)) == c (up to
// `path` and `data_dir`, which are not keys).
std::string to_yaml(const RunConfig& config);

}  // namespace smol
