// RunConfig: strict reading of the seed's YAML schema sections (see run_config.h).
#include "engine/run_config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "engine/lr_schedule.h"

namespace smol {

namespace {

// "file:line" of a node (yaml-cpp marks are 0-based; -1 when the node was built in memory).
std::string location(const std::string& where, const YAML::Node& node) {
  if (!node.IsDefined()) return where;  // a missing key: no mark to report
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return where;
  return where + ":" + std::to_string(mark.line + 1);
}

std::string scalar_text(const YAML::Node& node) {
  return node.IsScalar() ? node.Scalar() : "";
}

bool is_bool_text(const std::string& s) {
  static const std::set<std::string> words = {"true",  "True", "TRUE", "false", "False",
                                              "FALSE", "yes",  "Yes",  "no",    "No",
                                              "on",    "On",   "off",  "Off"};
  return words.count(s) > 0;
}

// Reads the keys of one mapping section, checking each against the known set.
class SectionReader {
 public:
  SectionReader(const YAML::Node& node, std::string prefix, std::string where,
                const std::set<std::string>& known)
      : node_(node), prefix_(std::move(prefix)), where_(std::move(where)) {
    if (!node_ || node_.IsNull()) return;
    SMOL_CHECK(node_.IsMap(), location(where_, node_), ": '", prefix_,
               "' must be a mapping of keys to values");
    for (const auto& item : node_) {
      const std::string key = item.first.as<std::string>();
      SMOL_CHECK(known.count(key), location(where_, item.first), ": unknown key '", prefix_, ".",
                 key, "'");
    }
  }

  bool has(const std::string& key) const {
    return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull();
  }
  YAML::Node get(const std::string& key) const { return node_[key]; }
  std::string name(const std::string& key) const { return prefix_ + "." + key; }
  // file:line of the key's value, or of the section, or just the file.
  std::string at(const std::string& key) const {
    if (has(key)) return location(where_, node_[key]);
    return node_ && node_.IsDefined() ? location(where_, node_) : where_;
  }

  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const YAML::Node value = node_[key];
    const std::string text = scalar_text(value);
    SMOL_CHECK(value.IsScalar() && !text.empty() && !is_bool_text(text), at(key), ": '", name(key),
               "' must be a number, got ", describe(value));
    // Numeric strings such as "1e-5" are accepted (yaml.safe_load gives the seed strings).
    errno = 0;
    char* end = nullptr;
    const double parsed = std::strtod(text.c_str(), &end);
    SMOL_CHECK(end != text.c_str() && *end == '\0' && errno == 0 && std::isfinite(parsed), at(key),
               ": '", name(key), "' must be a number, got '", text, "'");
    return parsed;
  }

  int64_t integer(const std::string& key, int64_t fallback) const {
    if (!has(key)) return fallback;
    const double parsed = number(key, 0);
    SMOL_CHECK(parsed == std::floor(parsed) && std::fabs(parsed) < 9e15, at(key), ": '", name(key),
               "' must be an integer, got '", scalar_text(node_[key]), "'");
    return static_cast<int64_t>(parsed);
  }

  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const YAML::Node value = node_[key];
    SMOL_CHECK(value.IsScalar() && is_bool_text(value.Scalar()), at(key), ": '", name(key),
               "' must be true or false, got ", describe(value));
    return value.as<bool>();
  }

  std::string string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const YAML::Node value = node_[key];
    SMOL_CHECK(value.IsScalar(), at(key), ": '", name(key), "' must be a string, got ",
               describe(value));
    return value.Scalar();
  }

  std::vector<std::string> string_list(const std::string& key) const {
    std::vector<std::string> out;
    if (!has(key)) return out;
    const YAML::Node value = node_[key];
    if (value.IsScalar()) return {value.Scalar()};
    SMOL_CHECK(value.IsSequence(), at(key), ": '", name(key), "' must be a list of strings, got ",
               describe(value));
    for (const auto& item : value) {
      SMOL_CHECK(item.IsScalar(), location(where_, item), ": '", name(key),
                 "' must hold strings only");
      out.push_back(item.Scalar());
    }
    return out;
  }

  static std::string describe(const YAML::Node& value) {
    if (value.IsMap()) return "a mapping";
    if (value.IsSequence()) return "a list";
    if (value.IsNull()) return "nothing";
    return "'" + value.Scalar() + "'";
  }

 private:
  YAML::Node node_;
  std::string prefix_;
  std::string where_;
};

uint64_t non_negative_seed(const SectionReader& reader, const std::string& key, uint64_t fallback) {
  const int64_t value = reader.integer(key, static_cast<int64_t>(fallback));
  SMOL_CHECK(value >= 0, reader.at(key), ": '", reader.name(key), "' must be >= 0");
  return static_cast<uint64_t>(value);
}

LlamaConfig parse_architecture(const YAML::Node& node, const std::string& where, double* init_std) {
  // HF LlamaConfig keys; those that change the math must have the value we implement.
  static const std::set<std::string> known = {"hidden_size",         "intermediate_size",
                                              "num_hidden_layers",   "num_attention_heads",
                                              "num_key_value_heads", "head_dim",
                                              "vocab_size",          "max_position_embeddings",
                                              "rope_theta",          "rms_norm_eps",
                                              "tie_word_embeddings", "bos_token_id",
                                              "eos_token_id",        "pad_token_id",
                                              "initializer_range",   "model_type",
                                              "architectures",       "hidden_act",
                                              "attention_bias",      "mlp_bias",
                                              "attention_dropout",   "torch_dtype",
                                              "use_cache",           "rope_scaling",
                                              "pretraining_tp",      "transformers_version"};
  SectionReader r(node, "model.architecture", where, known);
  LlamaConfig c;
  c.hidden_size = r.integer("hidden_size", 0);
  c.intermediate_size = r.integer("intermediate_size", 0);
  c.num_hidden_layers = r.integer("num_hidden_layers", 0);
  c.num_attention_heads = r.integer("num_attention_heads", 0);
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  c.head_dim =
      r.integer("head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.vocab_size = r.integer("vocab_size", 0);
  c.max_position_embeddings = r.integer("max_position_embeddings", 2048);
  c.rope_theta = r.number("rope_theta", 10000.0);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  c.bos_token_id = r.integer("bos_token_id", -1);
  c.eos_token_id = r.integer("eos_token_id", -1);
  c.pad_token_id = r.integer("pad_token_id", -1);
  *init_std = r.number("initializer_range", 0.02);
  SMOL_CHECK(*init_std > 0, r.at("initializer_range"), ": initializer_range must be positive");
  SMOL_CHECK(r.string("hidden_act", "silu") == "silu", r.at("hidden_act"),
             ": only hidden_act silu is implemented");
  SMOL_CHECK(!r.boolean("attention_bias", false) && !r.boolean("mlp_bias", false),
             location(where, node), ": attention_bias / mlp_bias are not implemented");
  SMOL_CHECK(r.number("attention_dropout", 0) == 0, r.at("attention_dropout"),
             ": attention_dropout must be 0");
  SMOL_CHECK(!r.has("rope_scaling"), r.at("rope_scaling"), ": rope_scaling is not implemented");
  c.validate(location(where, node) + ": model.architecture");
  return c;
}

ModelSection parse_model(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> known = {
      "name_or_path", "trust_remote_code", "token", "device_map",   "revision", "low_cpu_mem_usage",
      "torch_dtype",  "quantization",      "init",  "architecture", "seed"};
  SectionReader r(node, "model", where, known);
  ModelSection m;
  m.name_or_path = r.string("name_or_path", "");
  const std::string init = r.string("init", "pretrained");
  SMOL_CHECK(init == "pretrained" || init == "random", r.at("init"), ": 'model.init' must be ",
             "pretrained or random, got '", init, "'");
  m.random_init = init == "random";
  if (m.random_init) {
    SMOL_CHECK(r.has("architecture"), location(where, node),
               ": model.init: random needs model.architecture (HF config.json keys)");
    m.architecture = parse_architecture(r.get("architecture"), where, &m.init_std);
  } else {
    SMOL_CHECK(!r.has("architecture"), r.at("architecture"),
               ": model.architecture is only used with model.init: random");
    SMOL_CHECK(!m.name_or_path.empty(), location(where, node),
               ": model.name_or_path is required (or model.init: random)");
  }
  if (r.has("seed")) m.seed = non_negative_seed(r, "seed", 0);
  return m;
}

PeftSection parse_peft(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> known = {
      "method",     "lora_r",     "lora_alpha",     "lora_dropout",      "target_modules",
      "bias",       "task_type",  "inference_mode", "init_lora_weights", "use_dora",
      "use_qalora", "use_rslora", "init_seed"};
  SectionReader r(node, "peft", where, known);
  PeftSection p;
  p.method = r.string("method", "lora");
  SMOL_CHECK(p.method == "lora" || p.method == "full", r.at("method"), ": peft.method '", p.method,
             "' is not supported (lora, or full for full fine-tuning)");
  p.lora.r = r.integer("lora_r", 8);
  SMOL_CHECK(p.lora.r > 0 && p.lora.r <= 4096, r.at("lora_r"), ": peft.lora_r = ", p.lora.r,
             " must be in [1, 4096]");
  p.lora.alpha = r.number("lora_alpha", 16);
  p.lora.dropout = r.number("lora_dropout", 0.1);
  SMOL_CHECK(p.lora.dropout >= 0 && p.lora.dropout < 1, r.at("lora_dropout"),
             ": peft.lora_dropout must be in [0, 1)");
  p.lora.use_rslora = r.boolean("use_rslora", false);
  SMOL_CHECK(!r.boolean("use_dora", false), r.at("use_dora"), ": use_dora is not implemented");
  SMOL_CHECK(!r.boolean("use_qalora", false), r.at("use_qalora"),
             ": use_qalora is not implemented");
  SMOL_CHECK(r.string("bias", "none") == "none", r.at("bias"),
             ": only peft.bias: none is implemented");
  const std::vector<std::string> targets = r.string_list("target_modules");
  if (!targets.empty()) {  // null -> PEFT's llama default q_proj, v_proj
    p.lora.targets.clear();
    for (const std::string& t : targets) {
      try {
        p.lora.targets.push_back(parse_projection(t));
      } catch (const Error& e) {
        throw_error(r.at("target_modules"), ": peft.target_modules: ", e.what());
      }
    }
  }
  // YAML true/false come back as their text; parse_lora_init accepts both spellings.
  p.init = parse_lora_init(r.string("init_lora_weights", "gaussian"),
                           r.at("init_lora_weights") + ": peft.init_lora_weights");
  if (r.has("init_seed")) p.init_seed = non_negative_seed(r, "init_seed", 0);
  return p;
}

TrainingSection parse_training(const YAML::Node& node, const std::string& where) {
  // Every key the seed's TrainingArguments path reads (seed-spec.md §1), plus no_decay.
  static const std::set<std::string> known = {"max_steps",
                                              "num_train_epochs",
                                              "per_device_train_batch_size",
                                              "per_device_eval_batch_size",
                                              "gradient_accumulation_steps",
                                              "learning_rate",
                                              "weight_decay",
                                              "warmup_ratio",
                                              "warmup_steps",
                                              "lr_scheduler_type",
                                              "total_eval_times",
                                              "eval_strategy",
                                              "evaluation_strategy",
                                              "save_strategy",
                                              "eval_steps",
                                              "save_steps",
                                              "load_best_model_at_end",
                                              "metric_for_best_model",
                                              "greater_is_better",
                                              "save_total_limit",
                                              "fp16",
                                              "bf16",
                                              "gradient_checkpointing",
                                              "optim",
                                              "max_grad_norm",
                                              "logging_steps",
                                              "logging_dir",
                                              "report_to",
                                              "seed",
                                              "data_seed",
                                              "dataloader_num_workers",
                                              "dataloader_pin_memory",
                                              "dataloader_drop_last",
                                              "pad_to_multiple_of",
                                              "output_dir",
                                              "adam_beta1",
                                              "adam_beta2",
                                              "adam_epsilon",
                                              "remove_unused_columns",
                                              "no_decay",
                                              "global_batch_size",
                                              "run_name"};
  SectionReader r(node, "training", where, known);
  TrainingSection t;
  t.max_steps = r.integer("max_steps", -1);
  t.num_train_epochs = r.number("num_train_epochs", 3);
  t.per_device_train_batch_size = r.integer("per_device_train_batch_size", 8);
  t.per_device_eval_batch_size = r.integer("per_device_eval_batch_size", 8);
  t.gradient_accumulation_steps = r.integer("gradient_accumulation_steps", 1);
  SMOL_CHECK(t.per_device_train_batch_size > 0 && t.per_device_eval_batch_size > 0 &&
                 t.gradient_accumulation_steps > 0,
             location(where, node), ": training batch sizes and gradient_accumulation_steps ",
             "must be positive");
  t.learning_rate = r.number("learning_rate", 2e-4);
  SMOL_CHECK(t.learning_rate >= 0, r.at("learning_rate"), ": learning_rate must be >= 0");
  t.weight_decay = r.number("weight_decay", 0);
  SMOL_CHECK(t.weight_decay >= 0, r.at("weight_decay"), ": weight_decay must be >= 0");
  t.warmup_ratio = r.number("warmup_ratio", 0.03);
  SMOL_CHECK(t.warmup_ratio >= 0 && t.warmup_ratio <= 1, r.at("warmup_ratio"),
             ": warmup_ratio must be in [0, 1]");
  t.warmup_steps = r.integer("warmup_steps", 0);
  SMOL_CHECK(t.warmup_steps >= 0, r.at("warmup_steps"), ": warmup_steps must be >= 0");
  t.lr_scheduler_type = r.string("lr_scheduler_type", "cosine");
  parse_lr_schedule_kind(t.lr_scheduler_type, r.at("lr_scheduler_type"));
  t.max_grad_norm = r.number("max_grad_norm", 1.0);
  t.adam_beta1 = r.number("adam_beta1", 0.9);
  t.adam_beta2 = r.number("adam_beta2", 0.999);
  t.adam_epsilon = r.number("adam_epsilon", 1e-8);
  t.seed = non_negative_seed(r, "seed", 42);
  t.data_seed = non_negative_seed(r, "data_seed", t.seed);
  t.pad_to_multiple_of = r.integer("pad_to_multiple_of", 8);
  SMOL_CHECK(t.pad_to_multiple_of > 0, r.at("pad_to_multiple_of"),
             ": pad_to_multiple_of must be positive");
  t.output_dir = r.string("output_dir", "");
  t.no_decay = r.string_list("no_decay");
  // Type checks of keys read by other commands, so a typo'd value fails early.
  r.number("total_eval_times", 50);
  r.integer("logging_steps", 10);
  r.integer("save_total_limit", 3);
  r.boolean("fp16", false);
  r.boolean("bf16", false);
  r.boolean("load_best_model_at_end", false);
  r.boolean("greater_is_better", false);
  r.boolean("gradient_checkpointing", false);
  return t;
}

LoraGaSection parse_loraga(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> known = {"batch_size", "num_samples", "direction",   "dtype",
                                              "gradient",   "scale",       "stable_gamma"};
  SectionReader r(node, "loraga", where, known);
  LoraGaSection g;
  g.batch_size = r.integer("batch_size", 8);
  g.num_samples = r.integer("num_samples", 64);
  SMOL_CHECK(g.batch_size > 0 && g.num_samples > 0, location(where, node),
             ": loraga.batch_size and loraga.num_samples must be positive");
  g.direction = r.string("direction", "ArB2r");
  parse_lora_ga_direction(g.direction, r.at("direction"));
  g.scale = r.string("scale", "stable");
  parse_lora_ga_scale(g.scale, r.at("scale"));
  g.stable_gamma = r.number("stable_gamma", 16);
  SMOL_CHECK(g.stable_gamma > 0, r.at("stable_gamma"), ": loraga.stable_gamma must be positive");
  return g;
}

DatasetSection parse_dataset(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> known = {"name",
                                              "subset",
                                              "data_files",
                                              "data_dir",
                                              "cache_dir",
                                              "streaming",
                                              "keep_in_memory",
                                              "verification_mode",
                                              "train_split",
                                              "eval_split",
                                              "test_split",
                                              "max_length",
                                              "preprocessing_num_workers",
                                              "input_fields",
                                              "target_field",
                                              "prompt_template",
                                              "response_template",
                                              "strip_prompt",
                                              "append_eos_token",
                                              "add_bos_token",
                                              "completion_prefix",
                                              "completion_suffix",
                                              "truncate_prompt_only",
                                              "truncate_from_end",
                                              "apply_chat_template",
                                              "system_prompt",
                                              "assistant_prefix",
                                              "text_column",
                                              "label_column",
                                              "num_labels"};
  SectionReader r(node, "dataset", where, known);
  DatasetSection d;
  d.name = r.string("name", "");
  d.subset = r.string("subset", "");
  if (r.has("data_files")) {
    const YAML::Node files = r.get("data_files");
    if (files.IsScalar()) {
      d.data_files["train"] = files.Scalar();
    } else {
      SMOL_CHECK(files.IsMap(), r.at("data_files"),
                 ": 'dataset.data_files' must be a path or a mapping split -> path");
      for (const auto& item : files) {
        SMOL_CHECK(item.second.IsScalar(), location(where, item.second), ": dataset.data_files.",
                   item.first.as<std::string>(), " must be one path");
        d.data_files[item.first.as<std::string>()] = item.second.Scalar();
      }
    }
  }
  d.train_split = r.string("train_split", "train");
  if (r.has("eval_split")) d.eval_split = r.string("eval_split", "");
  if (r.has("test_split")) d.test_split = r.string("test_split", "");
  if (r.has("max_length")) {
    d.max_length = r.integer("max_length", 0);
    SMOL_CHECK(*d.max_length > 0, r.at("max_length"), ": dataset.max_length must be positive");
  }
  d.prompt.input_fields = r.string_list("input_fields");
  d.prompt.target_field = r.string("target_field", "");
  if (r.has("prompt_template")) d.prompt.prompt_template = r.string("prompt_template", "");
  d.prompt.response_template = r.string("response_template", "{target}");
  d.prompt.strip_prompt = r.boolean("strip_prompt", true);
  d.example.append_eos = r.boolean("append_eos_token", true);
  d.example.add_bos = r.boolean("add_bos_token", false);
  d.example.completion_prefix = r.string("completion_prefix", "");
  d.example.completion_suffix = r.string("completion_suffix", "");
  d.example.assistant_prefix = r.string("assistant_prefix", "");
  d.example.truncate_prompt_only = r.boolean("truncate_prompt_only", true);
  d.example.truncate_from_end = r.boolean("truncate_from_end", true);
  d.example.apply_chat_template = r.boolean("apply_chat_template", false);
  if (r.has("system_prompt")) d.example.system_prompt = r.string("system_prompt", "");
  // Accepted, type-checked, no effect here (see run_config.h).
  r.string("data_dir", "");
  r.string("cache_dir", "");
  r.boolean("streaming", false);
  r.boolean("keep_in_memory", false);
  r.string("verification_mode", "");
  r.integer("preprocessing_num_workers", 1);
  r.string("text_column", "");
  r.string("label_column", "");
  r.integer("num_labels", 0);
  return d;
}

TokenizerSection parse_tokenizer(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> known = {
      "use_fast",      "padding_side", "truncation_side", "model_max_length",
      "chat_template", "name_or_path", "eos_token",       "pad_token"};
  SectionReader r(node, "tokenizer", where, known);
  TokenizerSection t;
  t.name_or_path = r.string("name_or_path", "");
  if (r.has("eos_token")) t.eos_token = r.string("eos_token", "");
  if (r.has("pad_token")) t.pad_token = r.string("pad_token", "");
  if (r.has("model_max_length")) {
    t.model_max_length = r.integer("model_max_length", 0);
    SMOL_CHECK(*t.model_max_length > 0, r.at("model_max_length"),
               ": tokenizer.model_max_length must be positive");
  }
  r.boolean("use_fast", true);  // there is one tokenizer implementation
  // The seed's collator pads right and its builder truncates itself, so these sides change
  // nothing (seed-spec.md §2.7); only their spelling is checked.
  for (const char* side : {"padding_side", "truncation_side"}) {
    const std::string value = r.string(side, "right");
    SMOL_CHECK(value == "left" || value == "right", r.at(side), ": '", r.name(side),
               "' must be left or right, got '", value, "'");
  }
  r.string("chat_template", "");  // ChatML is rendered by data/chat_template (formats.md §1)
  return t;
}

}  // namespace

void apply_config_override(YAML::Node& root, const std::string& assignment,
                           const std::string& where) {
  const size_t eq = assignment.find('=');
  SMOL_CHECK(eq != std::string::npos && eq > 0, where, ": --set '", assignment,
             "' must look like dotted.key=value");
  const std::string path = assignment.substr(0, eq);
  std::vector<std::string> keys;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    keys.push_back(path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    SMOL_CHECK(!keys.back().empty(), where, ": --set '", assignment, "' has an empty key part");
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw_error(where, ": --set '", assignment, "': the value is not YAML: ", e.what());
  }
  if (!root || !root.IsMap()) root = YAML::Node(YAML::NodeType::Map);
  // Walk down with fresh handles (never assign to a handle: in yaml-cpp that rebinds shared
  // nodes), creating mappings where a level is missing.
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    if (!node[keys[i]] || !node[keys[i]].IsMap()) node[keys[i]] = YAML::Node(YAML::NodeType::Map);
    YAML::Node child = node[keys[i]];
    node.reset(child);
  }
  node[keys.back()] = value;
}

RunConfig parse_run_config(const YAML::Node& root, const std::string& where) {
  SMOL_CHECK(root && root.IsMap(), where, ": a run config must be a YAML mapping");
  RunConfig config;
  config.path = where;
  config.root = root;
  config.training = parse_training(root["training"], where);
  config.model = parse_model(root["model"], where);
  config.peft = parse_peft(root["peft"], where);
  config.loraga = parse_loraga(root["loraga"], where);
  config.dataset = parse_dataset(root["dataset"], where);
  config.tokenizer = parse_tokenizer(root["tokenizer"], where);
  config.peft.init.direction = parse_lora_ga_direction(config.loraga.direction, where);
  config.peft.init.scale = parse_lora_ga_scale(config.loraga.scale, where);
  config.peft.init.stable_gamma = config.loraga.stable_gamma;
  config.peft.init.seed = config.peft.init_seed.value_or(config.training.seed);
  return config;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  SMOL_CHECK(std::filesystem::is_regular_file(path), "config file ", path, " does not exist");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw_error(path, ": not valid YAML: ", e.what());
  }
  for (const std::string& assignment : overrides) apply_config_override(root, assignment, path);
  return parse_run_config(root, path);
}

}  // namespace smol
