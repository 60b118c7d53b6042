// RunConfig: the YAML run configuration in the seed's schema (seed-spec.md §1). This file reads
// the sections the training core needs — `model`, `peft`, `training` and the top-level
// `loraga` block — strictly: an unknown key or a value of the wrong type in them is an Error
// naming the file, line and dotted key. Numeric strings ("1e-5", as yaml.safe_load hands the
// seed) are accepted wherever a number is expected. Other top-level sections are kept in
// `root` for the commands that own them.
//
// Engine extensions to the seed schema (documented, all optional):
//   model.init: pretrained | random     random builds model.architecture (HF config.json keys)
//   model.architecture: {...}            with weights N(0, initializer_range), norms 1
//   model.seed                           seed of the random weights (default training.seed)
//   peft.method: full                    full fine-tuning (every parameter trains)
//   peft.init_seed                       seed of the adapter init (default training.seed)
//   training.no_decay: [substrings]      parameters whose name contains one get no decay
//   loraga.scale, loraga.stable_gamma    LoRA-GA / LoRA-NS scale (default stable, γ = 16)
//   tokenizer.name_or_path               where the tokenizer comes from (default
//                                        model.name_or_path; needed with model.init: random)
//   tokenizer.eos_token, .pad_token      token texts overriding the tokenizer's EOS / pad (the
//                                        seed trained base SmolLM2, EOS <|endoftext|>; the
//                                        Instruct GGUF says <|im_end|>)
//
// The `dataset` section (seed-spec.md §1, §2) is read strictly too. Its load_dataset keys
// data_dir, cache_dir, streaming, keep_in_memory, verification_mode and
// preprocessing_num_workers, and the SEQ_CLS keys text_column, label_column, num_labels, are
// accepted and type-checked but change nothing here; data_files (a path, or a mapping split ->
// path) replaces name resolution. max_length defaults to tokenizer.model_max_length, else the
// model's max_position_embeddings.
#pragma once

#include <yaml-cpp/yaml.h>

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
  std::optional<uint64_t> seed;  // model.seed
};

struct PeftSection {
  std::string method = "lora";        // lora | full
  LoraSettings lora;                  // r, alpha, dropout, rslora, targets
  LoraInitSpec init;                  // init_lora_weights (+ loraga direction/scale)
  std::optional<uint64_t> init_seed;  // peft.init_seed
  bool full_finetune() const { return method == "full"; }
};

struct TrainingSection {
  int64_t max_steps = -1;
  double num_train_epochs = 3;
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 2e-4;
  double weight_decay = 0;
  double warmup_ratio = 0.03;
  int64_t warmup_steps = 0;
  std::string lr_scheduler_type = "cosine";
  double max_grad_norm = 1.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  uint64_t seed = 42;
  uint64_t data_seed = 42;
  int64_t pad_to_multiple_of = 8;
  std::string output_dir;
  std::vector<std::string> no_decay;
};

struct LoraGaSection {
  int64_t batch_size = 8;
  int64_t num_samples = 64;
  std::string direction = "ArB2r";
  std::string scale = "stable";
  double stable_gamma = 16;
};

struct DatasetSection {
  std::string name;    // gsm8k, openai/gsm8k, meta-math/MetaMathQA, or a local path
  std::string subset;  // HF config name ("main" for gsm8k)
  std::map<std::string, std::string> data_files;  // split -> file; replaces name resolution
  std::string train_split = "train";
  std::optional<std::string> eval_split;  // absent: no evaluation (seed-spec.md §1)
  std::optional<std::string> test_split;
  std::optional<int64_t> max_length;
  PromptFormat prompt;    // fields and templates (data/prompt_render.h)
  ExampleFormat example;  // EOS/BOS, prefixes, truncation flags; max_length and eos_id are
                          // resolved when the tokenizer and model are known
};

struct TokenizerSection {
  std::string name_or_path;  // empty = model.name_or_path
  std::optional<std::string> eos_token, pad_token;
  std::optional<int64_t> model_max_length;
};

struct RunConfig {
  std::string path;  // where it came from (for messages)
  YAML::Node root;   // the whole document after --set overrides
  ModelSection model;
  PeftSection peft;
  TrainingSection training;
  LoraGaSection loraga;
  DatasetSection dataset;
  TokenizerSection tokenizer;
  std::string data_dir;  // the data root from --data-dir (not a YAML key)
};

// Reads `path`, applies `overrides` ("dotted.key=yaml value", in order) and parses.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses an already-loaded document; `where` names it in errors.
RunConfig parse_run_config(const YAML::Node& root, const std::string& where);
// Sets a dotted key of `root` to the YAML value of the text after '=' (creating maps on the way).
void apply_config_override(YAML::Node& root, const std::string& assignment,
                           const std::string& where);

}  // namespace smol
