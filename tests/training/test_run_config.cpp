// Run config parsing: seed schema sections, numeric strings, unknown keys, wrong types, --set.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
  EXPECT_TRUE(c.root["dataset"]);    // other sections are kept for their commands
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
  const RunConfig c = load_run_config(
      write_temp_yaml("bool", "model: {name_or_path: x}\npeft: {init_lora_weights: false}\n"));
  EXPECT_EQ(c.peft.init.kind, LoraInitKind::NonZero);
}

}  // namespace
}  // namespace smol
