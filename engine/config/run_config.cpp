// RunConfig: reading through the descriptor tables, the checks that span several keys, --set,
// and to_yaml (see run_config.h; the tables are in config_schema.cpp).
#include "engine/config/run_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/regular_file.h"
#include "engine/config/config_schema.h"

namespace smol {

namespace {

// Sets the dotted key of `root` to the YAML value after '=' (creating mappings on the way),
// after checking that the key is one of the schema's.
void apply_override(YAML::Node& root, const std::string& assignment, ConfigSource& source) {
  const std::string where = source.file + ": --set '" + assignment + "'";
  const size_t eq = assignment.find('=');
  SMOL_CHECK(eq != std::string::npos && eq > 0, source.file, ": --set '", assignment,
             "' must look like dotted.key=value");
  const std::string path = assignment.substr(0, eq);
  check_config_path(run_config_schema(), path, where);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw_error(where, ": the value is not YAML: ", e.what());
  }
  std::vector<std::string> keys;
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '.');) keys.push_back(part);
  if (!root || !root.IsMap()) root = YAML::Node(YAML::NodeType::Map);
  // Walk down with fresh handles (assigning to a yaml-cpp handle rebinds shared nodes), creating
  // mappings where a level is missing.
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    if (!node[keys[i]] || !node[keys[i]].IsMap()) node[keys[i]] = YAML::Node(YAML::NodeType::Map);
    YAML::Node child = node[keys[i]];
    node.reset(child);
  }
  node[keys.back()] = value;
  source.overrides.emplace_back(path, assignment);
}

const TrainerSection kTrainerDefaults{};

// Checks and values that involve several keys.
void resolve(RunConfig& c, const YAML::Node& root, const ConfigSource& source, ConfigReadLog& log) {
  // file:line of a key's value; just the file (or the --set) when the key is absent.
  auto site = [&](const std::string& dotted) {
    YAML::Node node = root;
    std::stringstream parts(dotted);
    for (std::string part; std::getline(parts, part, '.');) {
      const YAML::Node& parent = node;
      const YAML::Node child = parent.IsMap() ? parent[part] : YAML::Node();
      if (!child.IsDefined()) return source.site_of(YAML::Node(), dotted);
      node.reset(child);
    }
    return source.site_of(node, dotted);
  };

  SMOL_CHECK(!c.task_name.empty(), site("task_name"),
             ": task_name is required and must not be empty (e.g. gsm8k; the seed failed with an "
             "IndexError on an empty one, B2)");

  if (c.model.random_init) {
    SMOL_CHECK(log.given.count("model.architecture"), site("model"),
               ": model.init: random needs model.architecture (HF config.json keys)");
    c.model.architecture.validate(site("model.architecture") + ": model.architecture");
  } else {
    SMOL_CHECK(!log.given.count("model.architecture"), site("model.architecture"),
               ": model.architecture is only used with model.init: random");
    SMOL_CHECK(!c.model.name_or_path.empty(), site("model"),
               ": model.name_or_path is required (or model.init: random)");
  }

  TrainingSection& t = c.training;
  if (t.global_batch_size) {
    // docs/seed-behaviour.md §8: gradient accumulation follows the global batch (one process).
    SMOL_CHECK(*t.global_batch_size % t.per_device_train_batch_size == 0,
               site("training.global_batch_size"), ": training.global_batch_size ",
               *t.global_batch_size, " is not a multiple of per_device_train_batch_size ",
               t.per_device_train_batch_size);
    const int64_t accumulation = *t.global_batch_size / t.per_device_train_batch_size;
    SMOL_CHECK(!log.given.count("training.gradient_accumulation_steps") ||
                   t.gradient_accumulation_steps == accumulation,
               site("training.gradient_accumulation_steps"),
               ": training.gradient_accumulation_steps ", t.gradient_accumulation_steps,
               " disagrees with global_batch_size ", *t.global_batch_size,
               " / per_device_train_batch_size ", t.per_device_train_batch_size, " = ",
               accumulation, "; give one of them");
    t.gradient_accumulation_steps = accumulation;
  }
  // A bf16 shadow of fp32 master weights would cost a conversion per step and speed up only
  // two of the three matmuls (dW = dyᵀ·x has no weight operand): full fine-tuning stays fp32.
  SMOL_CHECK(t.cpu_precision != "bf16" || !c.peft.full_finetune(), site("training.cpu_precision"),
             ": training.cpu_precision: bf16 stores the frozen base weights in bf16, and "
             "peft.method: full freezes none; use fp32 for full fine-tuning");
  for (const std::string& target : t.report_to)
    if (target == "wandb" || target == "all") {
      log.warnings.push_back("training.report_to: accepted, not acted on (" + target +
                             ": no network; sync the run's TensorBoard files with `wandb sync "
                             "--sync-tensorboard`)");
      break;
    }

  // The spectral keys change nothing under the plain Trainer; say so when one was moved off its
  // default (a forgotten `name: SpectralRefactorTrainer`).
  if (!c.trainer.spectral()) {
    const TrainerSection& d = kTrainerDefaults;
    const TrainerSection& r = c.trainer;
    const std::pair<const char*, bool> moved[] = {
        {"refactor_every", r.refactor_every != d.refactor_every},
        {"warmup_steps", r.warmup_steps != d.warmup_steps},
        {"cooldown_steps", r.cooldown_steps != d.cooldown_steps},
        {"refactor_mode", r.refactor_mode != d.refactor_mode},
        {"balance_lambda", r.balance_lambda != d.balance_lambda},
        {"preserve_momentum", r.preserve_momentum != d.preserve_momentum},
        {"clear_momentum", r.clear_momentum != d.clear_momentum},
        {"damping_eps", r.damping_eps != d.damping_eps},
        {"clip_min_sigma", r.clip_min_sigma != d.clip_min_sigma},
        {"refactor_timing", r.refactor_timing != d.refactor_timing},
        {"warmup_ratio", r.warmup_ratio != d.warmup_ratio},
        {"balance_lambda_schedule", r.balance_lambda_schedule != d.balance_lambda_schedule},
        {"target_adapter_keys", r.target_adapter_keys != d.target_adapter_keys},
        {"only_large_layers", r.only_large_layers != d.only_large_layers},
        {"large_dim_threshold", r.large_dim_threshold != d.large_dim_threshold}};
    for (const auto& [key, differs] : moved)
      if (differs)
        log.warnings.push_back(std::string("trainer.") + key + ": accepted, not acted on (" +
                               "trainer.name is " + r.name + ", not SpectralRefactorTrainer)");
  }

  // The initialiser's LoRA-GA settings and seed come from loraga and the seeds.
  c.peft.init.direction = parse_lora_ga_direction(c.loraga.direction, site("loraga.direction"));
  c.peft.init.scale = parse_lora_ga_scale(c.loraga.scale, site("loraga.scale"));
  c.peft.init.stable_gamma = c.loraga.stable_gamma;
  c.peft.init.seed = c.peft.init_seed.value_or(c.training.seed);
}

RunConfig parse_document(YAML::Node root, const std::string& where,
                         const std::vector<std::string>& overrides) {
  SMOL_CHECK(root.IsMap() || root.IsNull(), where, ": a run config must be a YAML mapping");
  ConfigSource source{where, {}};
  for (const std::string& assignment : overrides) apply_override(root, assignment, source);
  check_yaml_document_size(root, where);
  RunConfig config;
  config.path = where;
  ConfigReadLog log;
  read_config(run_config_schema(), root, source, config, log);
  resolve(config, root, source, log);
  config.warnings = std::move(log.warnings);
  config.ignored_values = std::move(log.ignored);
  return config;
}

}  // namespace

bool TrainingSection::best_metric_greater_is_better() const {
  if (greater_is_better) return *greater_is_better;
  const std::string suffix = "loss";
  const std::string& m = metric_for_best_model;
  return !(m.size() >= suffix.size() &&
           m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0);
}

RunConfig parse_run_config_text(const std::string& yaml, const std::string& where,
                                const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw_error(where, ": not valid YAML: ", e.what());
  }
  return parse_document(root, where, overrides);
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  SMOL_CHECK(std::filesystem::exists(path), "config file ", path, " does not exist");
  // A regular file of bounded size (a FIFO would block; docs/design.md §9 "Untrusted input").
  const std::string text = read_regular_file(path, "config file", kMaxConfigYamlBytes);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw_error(path, ": not valid YAML: ", e.what());
  }
  return parse_document(root, path, overrides);
}

std::string to_yaml(const RunConfig& config) {
  return "# The resolved run config: every key, defaults included (smolengine config).\n" +
         write_config_yaml(run_config_schema(), config, config.ignored_values);
}

}  // namespace smol
