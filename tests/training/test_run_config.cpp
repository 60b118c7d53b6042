// Run config parsing: seed schema sections, numeric strings, unknown keys (with suggestions),
// wrong types, bad enums, the checks across keys, --set, the Ignored-key warnings, the struct
// defaults against the table's, and the to_yaml round trip on every config in configs/.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/config/config_schema.h"
#include "engine/config/run_config.h"

namespace smol {
namespace {

std::string write_temp_yaml(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("smol_training_" + name + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::string& name, const std::string& text,
                     const std::vector<std::string>& overrides = {}) {
  try {
    load_run_config(write_temp_yaml(name, text), overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kSeedLike = R"(
task_name: gsm8k
task_type: CAUSAL_LM
model:
  name_or_path: HuggingFaceTB/SmolLM2-135M
  torch_dtype: bfloat16
peft:
  method: lora
  lora_r: 8
  lora_alpha: 16
  lora_dropout: 0.1
  target_modules: null
  init_lora_weights: gaussian
training:
  output_dir: runs/x
  learning_rate: "2e-4"
  weight_decay: "1e-2"
  warmup_ratio: 0.06
  max_grad_norm: 1.0
  per_device_train_batch_size: 1
  gradient_accumulation_steps: 8
  lr_scheduler_type: cosine
  bf16: true
  report_to: [wandb]
dataset:
  name: gsm8k
)";

TEST(RunConfig, ReadsTheSeedSchemaWithNumericStrings) {
  const RunConfig c = load_run_config(write_temp_yaml("seed", kSeedLike));
  EXPECT_EQ(c.model.name_or_path, "HuggingFaceTB/SmolLM2-135M");
  EXPECT_FALSE(c.model.random_init);
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 2e-4);  // from the string "2e-4"
  EXPECT_DOUBLE_EQ(c.training.weight_decay, 0.01);
  EXPECT_EQ(c.training.gradient_accumulation_steps, 8);
  EXPECT_EQ(c.peft.lora.r, 8);
  EXPECT_DOUBLE_EQ(c.peft.lora.scaling(), 2.0);
  ASSERT_EQ(c.peft.lora.targets.size(), 2u);  // null -> PEFT's llama default q, v
  EXPECT_EQ(c.peft.lora.targets[0], Projection::Q);
  EXPECT_EQ(c.peft.lora.targets[1], Projection::V);
  EXPECT_EQ(c.peft.init.kind, LoraInitKind::Gaussian);
  EXPECT_EQ(c.peft.init.seed, 42u);  // training.seed default
  EXPECT_EQ(c.dataset.name, "gsm8k");
}

TEST(RunConfig, UnknownKeyNamesFileLineAndKey) {
  const std::string message =
      error_of("unknown", "model:\n  name_or_path: x\ntraining:\n  learnin_rate: 1\n");
  EXPECT_NE(message.find("smol_training_unknown.yaml:4"), std::string::npos) << message;
  EXPECT_NE(message.find("training.learnin_rate"), std::string::npos) << message;
  EXPECT_NE(error_of("unknown_peft", "model: {name_or_path: x}\npeft: {lora_rank: 4}\n")
                .find("peft.lora_rank"),
            std::string::npos);
}

TEST(RunConfig, WrongTypesAreErrors) {
  EXPECT_NE(error_of("type1", "model: {name_or_path: x}\ntraining: {learning_rate: fast}\n")
                .find("training.learning_rate' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of("type2", "model: {name_or_path: x}\ntraining: {bf16: 3}\n")
                .find("training.bf16' must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of("type3", "model: {name_or_path: x}\npeft: {lora_r: 2.5}\n")
                .find("peft.lora_r' must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of("type4", "model: {name_or_path: [a]}\n").find("model.name_or_path"),
            std::string::npos);
  EXPECT_NE(error_of("type5", "model: {name_or_path: x}\ntraining: {learning_rate: true}\n")
                .find("must be a number"),
            std::string::npos);
  EXPECT_NE(error_of("type6", "model: {name_or_path: x}\npeft: {init_lora_weights: olora}\n")
                .find("olora"),
            std::string::npos);
  EXPECT_NE(error_of("type7", "model: {name_or_path: x}\npeft: {target_modules: [q_proj, zz]}\n")
                .find("target_modules"),
            std::string::npos);
  EXPECT_FALSE(error_of("missing", "peft: {lora_r: 4}\n").empty());  // no model.name_or_path
}

TEST(RunConfig, RandomArchitectureAndOverrides) {
  const char* text = R"(
task_name: t
model:
  init: random
  seed: 3
  architecture: {hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
                 num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300,
                 rope_theta: "1e5", initializer_range: 0.05, model_type: llama}
peft: {init_lora_weights: true, target_modules: [q_proj, down_proj]}
)";
  const RunConfig c = load_run_config(
      write_temp_yaml("random", text),
      {"training.learning_rate=1e-3", "peft.lora_r=2", "peft.init_lora_weights=pissa_niter_3",
       "loraga.direction=ArBr", "peft.method=full"});
  EXPECT_TRUE(c.model.random_init);
  EXPECT_EQ(c.model.architecture.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.model.architecture.rope_theta, 1e5);
  EXPECT_DOUBLE_EQ(c.model.init_std, 0.05);
  EXPECT_EQ(*c.model.seed, 3u);
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 1e-3);
  EXPECT_EQ(c.peft.lora.r, 2);
  EXPECT_EQ(c.peft.init.kind, LoraInitKind::PissaNiter);
  EXPECT_EQ(c.peft.init.niter, 3);
  EXPECT_EQ(c.peft.init.direction, LoraGaDirection::ArBr);
  EXPECT_TRUE(c.peft.full_finetune());
  EXPECT_NE(error_of("badset", text, {"training.learning_rate"}).find("dotted.key=value"),
            std::string::npos);
  EXPECT_NE(error_of("badarch", "model: {init: random, architecture: {hidden_size: 64, foo: 1}}\n")
                .find("model.architecture.foo"),
            std::string::npos);
}

TEST(RunConfig, YamlBooleansForInitLoraWeights) {
  const RunConfig c = load_run_config(write_temp_yaml(
      "bool", "task_name: t\nmodel: {name_or_path: x}\npeft: {init_lora_weights: false}\n"));
  EXPECT_EQ(c.peft.init.kind, LoraInitKind::NonZero);
}

// ---- the descriptor tables ------------------------------------------------------------------

const char* kMinimal = "task_name: t\nmodel: {name_or_path: x}\n";

std::string minimal_error(const std::string& name, const std::string& extra,
                          const std::vector<std::string>& overrides = {}) {
  return error_of(name, kMinimal + extra, overrides);
}

// docs/design.md §9 "Untrusted input": nested aliases ("billion laughs") are 600 bytes of text
// but 10^9 nodes to any walk of the tree; they are refused after a bounded walk, quickly.
TEST(RunConfigTable, RefusesAliasBombsAndDeepNestingQuickly) {
  std::string bomb = "sft:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 8; ++level) {
    bomb += "  a" + std::to_string(level) + ": &a" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) bomb += (i ? ", *a" : "*a") + std::to_string(level - 1);
    bomb += "]\n";
  }
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NE(
      minimal_error("bomb", bomb).find("more than 100000 nodes once its aliases are expanded"),
      std::string::npos);
  // The same through --set: the value is a YAML document of its own.
  EXPECT_NE(minimal_error("bomb_set", "", {"sft=" + bomb.substr(5)})
                .find("more than 100000 nodes once its aliases are expanded"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));

  const std::string deep = "sft: " + std::string(200, '[') + std::string(200, ']') + "\n";
  EXPECT_NE(minimal_error("deep", deep).find("nests deeper than 64 levels"), std::string::npos);
}

// A FIFO given as the config is refused at once instead of blocking on the read.
TEST(RunConfigTable, RefusesAFifoAsTheConfigFile) {
  const auto fifo = std::filesystem::temp_directory_path() /
                    ("smol_training_fifo_" + std::to_string(::getpid()) + ".yaml");
  std::filesystem::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  try {
    load_run_config(fifo.string());
    ADD_FAILURE() << "a FIFO was accepted as a config file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FIFO"), std::string::npos) << e.what();
  }
  std::filesystem::remove(fifo);
}

TEST(RunConfigTable, UnknownKeysSuggestTheNearestKey) {
  // Edit distance <= 2 within the section, with file:line.
  std::string message = minimal_error("typo", "training:\n  learnin_rate: 1\n");
  EXPECT_NE(message.find("smol_training_typo.yaml:4: unknown key 'training.learnin_rate' (did "
                         "you mean 'training.learning_rate'?)"),
            std::string::npos)
      << message;
  // A unique prefix.
  message = minimal_error("prefix", "training:\n  per_device_train: 2\n");
  EXPECT_NE(message.find("did you mean 'training.per_device_train_batch_size'?"), std::string::npos)
      << message;
  // The same name in another section.
  message = minimal_error("elsewhere", "training:\n  lora_r: 2\n");
  EXPECT_NE(message.find("did you mean 'peft.lora_r'?"), std::string::npos) << message;
  // Top level.
  message = minimal_error("toplevel", "trainng: {}\n");
  EXPECT_NE(message.find("unknown key 'trainng' (did you mean 'training'?)"), std::string::npos)
      << message;
  // Nothing near: no suggestion.
  message = minimal_error("far", "training:\n  zzzzzz: 1\n");
  EXPECT_NE(message.find("unknown key 'training.zzzzzz'"), std::string::npos) << message;
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
}

TEST(RunConfigTable, SetUsesTheSamePathAsTheFile) {
  // An unknown key through --set fails like one in the file, naming the assignment.
  std::string message = minimal_error("set_unknown", "", {"training.learnin_rate=1"});
  EXPECT_NE(message.find("--set 'training.learnin_rate=1': unknown key 'training.learnin_rate' "
                         "(did you mean 'training.learning_rate'?)"),
            std::string::npos)
      << message;
  message = minimal_error("set_below", "", {"training.learning_rate.x=1"});
  EXPECT_NE(message.find("'training.learning_rate' is a number, not a mapping"), std::string::npos)
      << message;
  // A wrong type through --set names the assignment, not a line of the file.
  message = minimal_error("set_type", "", {"evaluation.max_new_tokens=many"});
  EXPECT_NE(message.find("--set 'evaluation.max_new_tokens=many': 'evaluation.max_new_tokens' "
                         "must be an integer"),
            std::string::npos)
      << message;
  // New keys through --set.
  const RunConfig c = load_run_config(
      write_temp_yaml("set_new", kMinimal),
      {"evaluation.max_new_tokens=64", "training.eval_steps=7",
       "trainer.name=SpectralRefactorTrainer", "trainer.refactor_timing=legacy",
       "evaluation.stop_strings=[\"\\n\\n\"]", "task_name=gsm8k", "early_stopping_patience=3",
       "model.architecture.hidden_size=8", "model.init=random",
       "model.architecture={hidden_size: 8, intermediate_size: 16, "
       "num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10}"});
  EXPECT_EQ(c.evaluation.max_new_tokens, 64);
  EXPECT_EQ(c.training.eval_steps, 7);
  EXPECT_TRUE(c.trainer.spectral());
  EXPECT_EQ(c.trainer.refactor_timing, "legacy");
  EXPECT_EQ(c.evaluation.stop_strings, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(c.task_name, "gsm8k");
  EXPECT_EQ(c.early_stopping_patience, 3);
  EXPECT_TRUE(c.model.random_init);
  EXPECT_EQ(c.model.architecture.head_dim, 4);  // derived: 8 / 2
  EXPECT_EQ(c.model.architecture.num_key_value_heads, 2);
}

TEST(RunConfigTable, WrongTypesAndBadEnumsOfTheNewKeys) {
  EXPECT_NE(minimal_error("t_gen", "evaluation: {generative: 3}\n")
                .find("'evaluation.generative' must be true or false, got '3'"),
            std::string::npos);
  EXPECT_NE(minimal_error("t_steps", "training: {eval_steps: 2.5}\n")
                .find("'training.eval_steps' must be an integer"),
            std::string::npos);
  EXPECT_NE(minimal_error("t_stop", "evaluation: {stop_strings: {a: 1}}\n")
                .find("'evaluation.stop_strings' must be a list of strings"),
            std::string::npos);
  EXPECT_NE(minimal_error("t_range", "training: {save_total_limit: -1}\n")
                .find("training.save_total_limit must be >= 0, got -1"),
            std::string::npos);
  EXPECT_NE(minimal_error("e_strategy", "training: {eval_strategy: sometimes}\n")
                .find("'training.eval_strategy' must be one of no, steps, epoch; got 'sometimes'"),
            std::string::npos);
  EXPECT_NE(minimal_error("e_optim", "training: {optim: sgd}\n")
                .find("must be one of adamw_torch, adamw_torch_fused, adamw_hf, adamw_apex_fused"),
            std::string::npos);
  EXPECT_NE(minimal_error("e_report", "training: {report_to: [mlflow]}\n")
                .find("'training.report_to' must be one of none, tensorboard, wandb, all"),
            std::string::npos);
  // An unknown trainer name is an error naming the choices (the seed fell back to Trainer, B24).
  const std::string message = minimal_error("e_trainer", "trainer: {name: SvdTrainer}\n");
  EXPECT_NE(message.find("'trainer.name' must be one of Trainer, SpectralRefactorTrainer; got "
                         "'SvdTrainer'"),
            std::string::npos)
      << message;
  EXPECT_NE(minimal_error("e_mode", "trainer: {refactor_mode: loose}\n").find("balanced, exact"),
            std::string::npos);
  // Ignored keys are type-checked too.
  EXPECT_NE(minimal_error("e_ignored", "wandb: {online: maybe}\n")
                .find("'wandb.online' must be true or false"),
            std::string::npos);
}

TEST(RunConfigTable, ChecksAcrossKeys) {
  // task_name is required and non-empty (the seed raised IndexError, B2).
  EXPECT_NE(error_of("no_task", "model: {name_or_path: x}\n").find("task_name is required"),
            std::string::npos);
  EXPECT_NE(error_of("empty_task", "task_name: \"\"\nmodel: {name_or_path: x}\n")
                .find("smol_training_empty_task.yaml:1: task_name is required"),
            std::string::npos);
  EXPECT_NE(minimal_error("seq_cls", "task_type: SEQ_CLS\n").find("SEQ_CLS is not implemented"),
            std::string::npos);
  // eval_strategy and its alias evaluation_strategy set one field; disagreeing is an error.
  std::string message = minimal_error(
      "alias_conflict", "training: {eval_strategy: steps, evaluation_strategy: epoch}\n");
  EXPECT_NE(message.find("'training.evaluation_strategy' (an alias of 'training.eval_strategy') "
                         "is epoch but 'training.eval_strategy' is steps"),
            std::string::npos)
      << message;
  EXPECT_EQ(load_run_config(write_temp_yaml("alias_same", std::string(kMinimal) +
                                                              "training: {eval_strategy: epoch, "
                                                              "evaluation_strategy: epoch}\n"))
                .training.eval_strategy,
            "epoch");
  EXPECT_EQ(
      load_run_config(write_temp_yaml("alias_only", std::string(kMinimal) +
                                                        "training: {evaluation_strategy: no}\n"))
          .training.eval_strategy,
      "no");
  // global_batch_size sets gradient accumulation; it must divide (docs/seed-behaviour.md §8).
  message = minimal_error("gbs_odd",
                          "training: {global_batch_size: 10, per_device_train_batch_size: 4}\n");
  EXPECT_NE(message.find("training.global_batch_size 10 is not a multiple of "
                         "per_device_train_batch_size 4"),
            std::string::npos)
      << message;
  const RunConfig g = load_run_config(write_temp_yaml(
      "gbs", std::string(kMinimal) +
                 "training: {global_batch_size: \"32\", per_device_train_batch_size: 4}\n"));
  EXPECT_EQ(g.training.gradient_accumulation_steps, 8);
  EXPECT_NE(minimal_error("gbs_conflict",
                          "training: {global_batch_size: 32, "
                          "per_device_train_batch_size: 4, "
                          "gradient_accumulation_steps: 2}\n")
                .find("disagrees with global_batch_size 32 / per_device_train_batch_size 4 = 8"),
            std::string::npos);
  // greater_is_better: HF's rule when unset.
  EXPECT_FALSE(g.training.best_metric_greater_is_better());  // "loss"
  TrainingSection t;
  t.metric_for_best_model = "answer_accuracy";
  EXPECT_TRUE(t.best_metric_greater_is_better());
  t.metric_for_best_model = "eval_loss";
  EXPECT_FALSE(t.best_metric_greater_is_better());
  t.greater_is_better = true;
  EXPECT_TRUE(t.best_metric_greater_is_better());
  // Numeric strings are numbers in the new keys too.
  EXPECT_DOUBLE_EQ(
      load_run_config(write_temp_yaml("num_string", std::string(kMinimal) +
                                                        "early_stopping_threshold: \"1e-3\"\n"))
          .early_stopping_threshold,
      1e-3);
}

TEST(RunConfigTable, WarningsListTheKeysNotActedOn) {
  const RunConfig c = load_run_config(write_temp_yaml(
      "warnings", std::string(kMinimal) +
                      "training: {gradient_checkpointing: true, report_to: [tensorboard, wandb], "
                      "learning_rate: 1e-4}\n"
                      "wandb: {project: p}\n"
                      "trainer: {name: Trainer, refactor_every: 7}\n"));
  const std::vector<std::string> expected = {
      "training.gradient_checkpointing: accepted, not acted on (activations are kept; the models "
      "are small)",
      "wandb.project: accepted, not acted on (no network; sync the run's TensorBoard files with "
      "`wandb sync --sync-tensorboard`)",
      "training.report_to: accepted, not acted on (wandb: no network; sync the run's TensorBoard "
      "files with `wandb sync --sync-tensorboard`)",
      "trainer.refactor_every: accepted, not acted on (trainer.name is Trainer, not "
      "SpectralRefactorTrainer)"};
  EXPECT_EQ(c.warnings, expected);
  EXPECT_EQ(c.ignored_values.at("training.gradient_checkpointing"), "true");
  EXPECT_EQ(c.ignored_values.at("wandb.project"), "p");
  EXPECT_DOUBLE_EQ(c.training.learning_rate, 1e-4);  // Used, and read into the field
  // A config with nothing ignored has no warnings.
  EXPECT_TRUE(load_run_config(write_temp_yaml("no_warnings", kMinimal)).warnings.empty());
}

// The in-struct defaults agree with the table's (the table is the source for configs), except
// LoraSettings::dropout, whose struct default 0.0 serves code that builds it directly.
TEST(RunConfigTable, StructDefaultsAgreeWithTheTable) {
  const RunConfig loaded = load_run_config(write_temp_yaml("defaults", kMinimal));
  RunConfig expected;
  expected.path = loaded.path;
  expected.task_name = "t";
  expected.model.name_or_path = "x";
  EXPECT_DOUBLE_EQ(expected.peft.lora.dropout, 0.0);
  expected.peft.lora.dropout = 0.1;  // the seed's config default
  EXPECT_TRUE(loaded == expected) << to_yaml(loaded) << "\n---- vs ----\n" << to_yaml(expected);
}

std::vector<std::filesystem::path> repository_configs() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::filesystem::path(SMOL_SOURCE_DIR) / "configs"))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml")
      paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  return paths;
}

void expect_round_trip(const RunConfig& c) {
  const std::string yaml = to_yaml(c);
  RunConfig back = parse_run_config_text(yaml, "to_yaml(" + c.path + ")");
  back.path = c.path;
  EXPECT_TRUE(back == c) << c.path << ":\n" << yaml << "\n---- read back ----\n" << to_yaml(back);
  // Every key of every section is written, at its place.
  const YAML::Node document = YAML::Load(yaml);
  for (const ConfigSection& section : run_config_schema().sections) {
    YAML::Node node = document;
    bool present = true;
    if (!section.prefix.empty()) {
      std::stringstream parts(section.prefix);
      for (std::string part; std::getline(parts, part, '.');) {
        const YAML::Node& parent = node;
        const YAML::Node child = parent[part];
        node.reset(child);
      }
      present = node.IsMap();
    }
    if (!present) {  // an optional section written as null (model.architecture, pretrained)
      EXPECT_EQ(section.prefix, "model.architecture") << c.path;
      continue;
    }
    for (const ConfigKey& key : section.keys)
      EXPECT_TRUE(node[key.name].IsDefined()) << c.path << ": " << section.dotted(key.name);
  }
}

TEST(RunConfigTable, ToYamlRoundTripsEveryRepositoryConfig) {
  const auto paths = repository_configs();
  ASSERT_GE(paths.size(), 3u);
  for (const auto& path : paths) expect_round_trip(load_run_config(path.string()));
  // And configs that exercise the rest: Ignored values, optionals, derived keys, --set.
  expect_round_trip(load_run_config(write_temp_yaml("rt_seed", kSeedLike)));
  expect_round_trip(load_run_config(
      write_temp_yaml("rt_more",
                      std::string(kMinimal) +
                          "sft: {packing: true, max: [1, 2]}\n"
                          "training: {global_batch_size: 16, per_device_train_batch_size: 4, "
                          "eval_steps: 5, greater_is_better: false, evaluation_strategy: epoch, "
                          "logging_dir: \"a b\", data_seed: 3, no_decay: [norm, bias]}\n"
                          "dataset: {data_files: {train: a.jsonl, test: \"b: c.json\"}, "
                          "system_prompt: \"Be \\\"exact\\\"\\n\", max_length: 77}\n"
                          "peft: {init_lora_weights: pissa_niter_4, init_seed: 9, "
                          "target_modules: [down_proj, q]}\n"
                          "tokenizer: {pad_token: \"<pad>\", padding_side: left}\n"),
      {"wandb.tags=[a, \"b c\"]", "loraga.direction=random", "trainer.clip_min_sigma=1e-300"}));
}

}  // namespace
}  // namespace smol
