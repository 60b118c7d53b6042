// The run config's descriptor tables (see config_schema.h). Each key is one call: name, default,
// field, one-line doc, check. CONFIG_FIELD(path) is the accessor of RunConfig::path, usable on
// both a RunConfig& (reading) and a const RunConfig& (writing).
#include "engine/config/config_schema.h"

#include <type_traits>

#include "common/error.h"
#include "engine/config/run_config.h"
#include "engine/lr_schedule.h"

namespace smol {

namespace {

#define CONFIG_FIELD(path) \
  [](auto& c) -> auto& {   \
    return c.path;         \
  }

template <class Field>
using FieldType = std::remove_cvref_t<std::invoke_result_t<Field, RunConfig&>>;

ConfigKey base_key(std::string name, ConfigType type, std::string default_text, std::string doc) {
  ConfigKey key;
  key.name = std::move(name);
  key.type = type;
  key.default_text = std::move(default_text);
  key.doc = std::move(doc);
  key.effect = ConfigEffect::Used();
  return key;
}

template <class Field>
ConfigKey integer_key(std::string name, int64_t fallback, Field field, std::string doc,
                      NumberRange range = {}) {
  using T = FieldType<Field>;
  ConfigKey key =
      base_key(std::move(name), ConfigType::Integer, yaml_integer(fallback), std::move(doc));
  key.check_text = range.text();
  key.read = [field, range](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    const int64_t parsed = read_config_integer(value, site);
    check_config_range(static_cast<double>(parsed), range, site);
    field(c) = static_cast<T>(parsed);
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = static_cast<T>(fallback); };
  key.write = [field](const RunConfig& c) { return yaml_integer(static_cast<int64_t>(field(c))); };
  return key;
}

// An std::optional integer: absent = unset (`unset_text` says what that means).
template <class Field>
ConfigKey optional_integer_key(std::string name, std::string unset_text, Field field,
                               std::string doc, NumberRange range = {}) {
  using T = typename FieldType<Field>::value_type;
  ConfigKey key =
      base_key(std::move(name), ConfigType::Integer, std::move(unset_text), std::move(doc));
  key.check_text = range.text();
  key.read = [field, range](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    const int64_t parsed = read_config_integer(value, site);
    check_config_range(static_cast<double>(parsed), range, site);
    field(c) = static_cast<T>(parsed);
  };
  key.set_default = [field](RunConfig& c) { field(c).reset(); };
  key.write = [field](const RunConfig& c) {
    return field(c) ? yaml_integer(static_cast<int64_t>(*field(c))) : std::string(kYamlNull);
  };
  return key;
}

template <class Field>
ConfigKey number_key(std::string name, double fallback, Field field, std::string doc,
                     NumberRange range = {}) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::Number, yaml_number(fallback), std::move(doc));
  key.check_text = range.text();
  key.read = [field, range](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    const double parsed = read_config_number(value, site);
    check_config_range(parsed, range, site);
    field(c) = parsed;
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = fallback; };
  key.write = [field](const RunConfig& c) { return yaml_number(field(c)); };
  return key;
}

template <class Field>
ConfigKey boolean_key(std::string name, bool fallback, Field field, std::string doc) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::Boolean, yaml_boolean(fallback), std::move(doc));
  key.read = [field](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    field(c) = read_config_boolean(value, site);
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = fallback; };
  key.write = [field](const RunConfig& c) { return yaml_boolean(field(c)); };
  return key;
}

template <class Field>
ConfigKey optional_boolean_key(std::string name, std::string unset_text, Field field,
                               std::string doc) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::Boolean, std::move(unset_text), std::move(doc));
  key.read = [field](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    field(c) = read_config_boolean(value, site);
  };
  key.set_default = [field](RunConfig& c) { field(c).reset(); };
  key.write = [field](const RunConfig& c) {
    return field(c) ? yaml_boolean(*field(c)) : std::string(kYamlNull);
  };
  return key;
}

template <class Field>
ConfigKey string_key(std::string name, std::string fallback, Field field, std::string doc) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::String, yaml_quoted(fallback), std::move(doc));
  key.read = [field](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    field(c) = read_config_string(value, site);
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = fallback; };
  key.write = [field](const RunConfig& c) { return yaml_quoted(field(c)); };
  return key;
}

template <class Field>
ConfigKey optional_string_key(std::string name, std::string unset_text, Field field,
                              std::string doc) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::String, std::move(unset_text), std::move(doc));
  key.read = [field](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    field(c) = read_config_string(value, site);
  };
  key.set_default = [field](RunConfig& c) { field(c).reset(); };
  key.write = [field](const RunConfig& c) {
    return field(c) ? yaml_quoted(*field(c)) : std::string(kYamlNull);
  };
  return key;
}

// A string list; `choices` non-empty restricts every item.
template <class Field>
ConfigKey string_list_key(std::string name, std::vector<std::string> fallback, Field field,
                          std::string doc, std::vector<std::string> choices = {}) {
  ConfigKey key =
      base_key(std::move(name), ConfigType::StringList, yaml_string_list(fallback), std::move(doc));
  if (!choices.empty()) {
    key.check_text = "each one of ";
    for (size_t i = 0; i < choices.size(); ++i) key.check_text += (i ? ", " : "") + choices[i];
  }
  key.read = [field, choices](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    std::vector<std::string> items = read_config_string_list(value, site);
    if (!choices.empty())
      for (const std::string& item : items) read_config_enum(YAML::Node(item), site, choices);
    field(c) = std::move(items);
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = fallback; };
  key.write = [field](const RunConfig& c) { return yaml_string_list(field(c)); };
  return key;
}

// A string field restricted to `choices`; written plain (the choices are plain words).
template <class Field>
ConfigKey enum_key(std::string name, std::vector<std::string> choices, std::string fallback,
                   Field field, std::string doc) {
  ConfigKey key = base_key(std::move(name), ConfigType::Enum, fallback, std::move(doc));
  key.choices = choices;
  key.read = [field, choices](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    field(c) = read_config_enum(value, site, choices);
  };
  key.set_default = [field, fallback](RunConfig& c) { field(c) = fallback; };
  key.write = [field](const RunConfig& c) { return std::string(field(c)); };
  return key;
}

// Accepted and type-checked, acted on by nothing; giving it adds a warning.
ConfigKey ignored_key(std::string name, ConfigType type, std::string why, std::string doc,
                      std::vector<std::string> choices = {}) {
  ConfigKey key = base_key(std::move(name), type, "unset", std::move(doc));
  key.effect = ConfigEffect::Ignored(std::move(why));
  key.choices = choices;
  key.read = [type, choices](RunConfig&, const YAML::Node& value, const ConfigSite& site) {
    check_config_type(type, value, site, choices);
  };
  return key;
}

// A key whose only accepted value is what the engine implements (attention_bias: false, ...).
ConfigKey fixed_key(std::string name, ConfigType type, std::string value, std::string doc) {
  ConfigKey key = base_key(std::move(name), type, value, std::move(doc));
  key.check_text = "must be " + value + " (anything else is not implemented)";
  key.read = [type, value](RunConfig&, const YAML::Node& given, const ConfigSite& site) {
    check_config_type(type, given, site);
    const bool same =
        type == ConfigType::Boolean  ? yaml_boolean(read_config_boolean(given, site)) == value
        : type == ConfigType::Number ? read_config_number(given, site) == std::stod(value)
                                     : given.Scalar() == value;
    SMOL_CHECK(same, site.at, ": ", site.key, " = ", given.Scalar(), " is not implemented (only ",
               value, ")");
  };
  key.write = [value](const RunConfig&) { return value; };
  return key;
}

ConfigKey section_key(std::string name, std::string subsection, std::string doc) {
  ConfigKey key = base_key(std::move(name), ConfigType::Map, "{}", std::move(doc));
  key.subsection = std::move(subsection);
  return key;
}

ConfigKey derived(ConfigKey key, std::string default_text, std::function<void(RunConfig&)> rule) {
  key.default_text = std::move(default_text);
  key.derive_default = std::move(rule);
  return key;
}

const std::string kNoNetwork =
    "no network; sync the run's TensorBoard files with `wandb sync --sync-tensorboard`";
const std::string kPrecision =
    "cpu trains in fp32, cuda in bf16 activations + fp32 master (docs/design.md §2)";
const std::string kSeqCls = "SEQ_CLS only, which is not implemented";

ConfigSection top_level() {
  ConfigSection s{"", "task keys and the sections", {}};
  s.keys.push_back(
      string_key("task_name", "", CONFIG_FIELD(task_name),
                 "the task; math / metamath / gsm8k select the math metrics (required)"));
  s.keys.back().default_text = "required";
  ConfigKey task_type = base_key("task_type", ConfigType::Enum, "CAUSAL_LM",
                                 "CAUSAL_LM (SEQ_CLS is not implemented)");
  task_type.choices = {"CAUSAL_LM", "SEQ_CLS"};
  task_type.read = [](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    const std::string type = read_config_enum(value, site, {"CAUSAL_LM", "SEQ_CLS"});
    SMOL_CHECK(type == "CAUSAL_LM", site.at, ": task_type ", type, " is not implemented",
               " (CAUSAL_LM only)");
    c.task_type = type;
  };
  task_type.set_default = [](RunConfig& c) { c.task_type = "CAUSAL_LM"; };
  task_type.write = [](const RunConfig& c) { return c.task_type; };
  s.keys.push_back(task_type);
  s.keys.push_back(integer_key("early_stopping_patience", 0, CONFIG_FIELD(early_stopping_patience),
                               "stop after this many evaluations without improvement; 0 = off",
                               at_least(0)));
  s.keys.push_back(number_key("early_stopping_threshold", 0, CONFIG_FIELD(early_stopping_threshold),
                              "the improvement of the best metric that counts", at_least(0)));
  s.keys.push_back(
      ignored_key("sft", ConfigType::Map, "the seed ignores sft.* too", "the seed's SFT settings"));
  s.keys.push_back(section_key("model", "model", "the base model"));
  s.keys.push_back(section_key("tokenizer", "tokenizer", "tokenizer source and special tokens"));
  s.keys.push_back(section_key("peft", "peft", "LoRA adapters, or full fine-tuning"));
  s.keys.push_back(section_key("trainer", "trainer", "Trainer or SpectralRefactorTrainer"));
  s.keys.push_back(section_key("loraga", "loraga", "the lora_ga / lora_ns gradient pass"));
  s.keys.push_back(section_key("dataset", "dataset", "data, prompt rendering, truncation"));
  s.keys.push_back(section_key("training", "training", "optimisation, cadence, outputs"));
  s.keys.push_back(section_key("evaluation", "evaluation", "generative evaluation"));
  s.keys.push_back(section_key("wandb", "wandb", "Weights & Biases (not acted on)"));
  return s;
}

ConfigSection model_section() {
  ConfigSection s{"model", "the base model", {}};
  s.keys.push_back(string_key("name_or_path", "", CONFIG_FIELD(model.name_or_path),
                              "pretrained weights: a GGUF file, an HF model directory or a hub "
                              "name in the local HF cache (required unless init: random)"));
  ConfigKey init = base_key("init", ConfigType::Enum, "pretrained",
                            "random: weights N(0, initializer_range) of model.architecture");
  init.choices = {"pretrained", "random"};
  init.read = [](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    c.model.random_init = read_config_enum(value, site, {"pretrained", "random"}) == "random";
  };
  init.set_default = [](RunConfig& c) { c.model.random_init = false; };
  init.write = [](const RunConfig& c) {
    return std::string(c.model.random_init ? "random" : "pretrained");
  };
  s.keys.push_back(init);
  ConfigKey architecture = section_key("architecture", "model.architecture",
                                       "HF config.json keys of the random model (init: random)");
  architecture.default_text = "unset";
  architecture.subsection_optional = true;
  architecture.subsection_present = [](const RunConfig& c) { return c.model.random_init; };
  s.keys.push_back(architecture);
  s.keys.push_back(optional_integer_key("seed", "training.seed", CONFIG_FIELD(model.seed),
                                        "seed of the random weights", at_least(0)));
  s.keys.push_back(enum_key("weights_in_memory", {"fp32", "quantized"}, "fp32",
                            CONFIG_FIELD(model.weights_in_memory),
                            "quantized: keep a GGUF's Q8_0/Q4_0/Q4_1/Q4_K weights quantised for "
                            "eval/generate on cpu (int8 dot products; not for training; "
                            "docs/cpu-speed.md); fp32: dequantise at load (the reference)"));
  s.keys.push_back(ignored_key("trust_remote_code", ConfigType::Boolean,
                               "weights are read by the engine's own loaders; no remote code",
                               "HF from_pretrained argument"));
  s.keys.push_back(ignored_key("token", ConfigType::String, "no network: weights are local files",
                               "HF hub token"));
  s.keys.push_back(ignored_key("device_map", ConfigType::String,
                               "--device picks the backend, one device per process",
                               "HF device placement"));
  s.keys.push_back(ignored_key("revision", ConfigType::String,
                               "no network: the local HF cache's snapshot is used",
                               "HF hub revision"));
  s.keys.push_back(ignored_key("low_cpu_mem_usage", ConfigType::Boolean,
                               "weights are loaded once into the backend's arenas",
                               "HF from_pretrained argument"));
  s.keys.push_back(ignored_key("torch_dtype", ConfigType::String, kPrecision, "HF load dtype"));
  s.keys.push_back(
      ignored_key("quantization", ConfigType::Map,
                  "no quantised training; quantised inference is model.weights_in_memory",
                  "bitsandbytes settings"));
  return s;
}

ConfigSection architecture_section() {
  const std::string hf_bookkeeping = "HF config.json bookkeeping; the model is Llama";
  ConfigSection s{"model.architecture", "HF config.json keys of a random model", {}};
  auto required_size = [&](const char* name, auto field, const char* doc) {
    ConfigKey key = integer_key(name, 0, field, doc, positive());
    key.default_text = "required";
    s.keys.push_back(key);
  };
  required_size("hidden_size", CONFIG_FIELD(model.architecture.hidden_size), "model width d");
  required_size("intermediate_size", CONFIG_FIELD(model.architecture.intermediate_size),
                "MLP width");
  required_size("num_hidden_layers", CONFIG_FIELD(model.architecture.num_hidden_layers),
                "decoder layers");
  required_size("num_attention_heads", CONFIG_FIELD(model.architecture.num_attention_heads),
                "query heads");
  s.keys.push_back(derived(
      integer_key("num_key_value_heads", 0, CONFIG_FIELD(model.architecture.num_key_value_heads),
                  "key/value heads (GQA)", positive()),
      "num_attention_heads", [](RunConfig& c) {
        c.model.architecture.num_key_value_heads = c.model.architecture.num_attention_heads;
      }));
  s.keys.push_back(derived(integer_key("head_dim", 0, CONFIG_FIELD(model.architecture.head_dim),
                                       "per-head width", positive()),
                           "hidden_size / num_attention_heads", [](RunConfig& c) {
                             LlamaConfig& a = c.model.architecture;
                             a.head_dim = a.num_attention_heads > 0
                                              ? a.hidden_size / a.num_attention_heads
                                              : 0;
                           }));
  required_size("vocab_size", CONFIG_FIELD(model.architecture.vocab_size), "vocabulary size");
  s.keys.push_back(integer_key("max_position_embeddings", 2048,
                               CONFIG_FIELD(model.architecture.max_position_embeddings),
                               "longest sequence", positive()));
  s.keys.push_back(number_key("rope_theta", 10000, CONFIG_FIELD(model.architecture.rope_theta),
                              "RoPE base θ", positive()));
  s.keys.push_back(number_key("rms_norm_eps", 1e-6, CONFIG_FIELD(model.architecture.rms_norm_eps),
                              "RMSNorm ε (HF LlamaConfig's default)", positive()));
  s.keys.push_back(boolean_key("tie_word_embeddings", true,
                               CONFIG_FIELD(model.architecture.tie_word_embeddings),
                               "LM head shares the embedding"));
  s.keys.push_back(integer_key("bos_token_id", -1, CONFIG_FIELD(model.architecture.bos_token_id),
                               "BOS id, -1 = none", at_least(-1)));
  s.keys.push_back(integer_key("eos_token_id", -1, CONFIG_FIELD(model.architecture.eos_token_id),
                               "EOS id, -1 = none", at_least(-1)));
  s.keys.push_back(integer_key("pad_token_id", -1, CONFIG_FIELD(model.architecture.pad_token_id),
                               "pad id, -1 = none", at_least(-1)));
  s.keys.push_back(number_key("initializer_range", 0.02, CONFIG_FIELD(model.init_std),
                              "std of the random weights", positive()));
  s.keys.push_back(fixed_key("hidden_act", ConfigType::String, "silu", "MLP activation"));
  s.keys.push_back(fixed_key("attention_bias", ConfigType::Boolean, "false", "q/k/v/o biases"));
  s.keys.push_back(fixed_key("mlp_bias", ConfigType::Boolean, "false", "MLP biases"));
  s.keys.push_back(fixed_key("attention_dropout", ConfigType::Number, "0", "attention dropout"));
  ConfigKey rope_scaling = base_key("rope_scaling", ConfigType::Map, "unset", "RoPE scaling");
  rope_scaling.check_text = "must be unset (not implemented)";
  rope_scaling.read = [](RunConfig&, const YAML::Node&, const ConfigSite& site) {
    throw_error(site.at, ": ", site.key, " is not implemented");
  };
  rope_scaling.write = [](const RunConfig&) { return std::string(kYamlNull); };
  s.keys.push_back(rope_scaling);
  s.keys.push_back(ignored_key("model_type", ConfigType::String, hf_bookkeeping, "HF model type"));
  s.keys.push_back(
      ignored_key("architectures", ConfigType::StringList, hf_bookkeeping, "HF class names"));
  s.keys.push_back(ignored_key("torch_dtype", ConfigType::String, kPrecision, "HF dtype"));
  s.keys.push_back(ignored_key("use_cache", ConfigType::Boolean,
                               "generation always uses the KV cache", "HF generation flag"));
  s.keys.push_back(ignored_key("pretraining_tp", ConfigType::Integer, hf_bookkeeping,
                               "HF tensor-parallel degree of pretraining"));
  s.keys.push_back(ignored_key("transformers_version", ConfigType::String, hf_bookkeeping,
                               "HF version that wrote the file"));
  return s;
}

ConfigSection tokenizer_section() {
  ConfigSection s{"tokenizer", "tokenizer source and special tokens", {}};
  s.keys.push_back(string_key("name_or_path", "", CONFIG_FIELD(tokenizer.name_or_path),
                              "where the tokenizer comes from; empty = model.name_or_path"));
  s.keys.push_back(
      optional_string_key("eos_token", "the tokenizer's", CONFIG_FIELD(tokenizer.eos_token),
                          "EOS token text (the seed's base SmolLM2 used `<|endoftext|>`)"));
  s.keys.push_back(optional_string_key("pad_token", "the tokenizer's, else EOS, else id 0",
                                       CONFIG_FIELD(tokenizer.pad_token), "pad token text"));
  s.keys.push_back(optional_integer_key("model_max_length", "the model's max_position_embeddings",
                                        CONFIG_FIELD(tokenizer.model_max_length),
                                        "max_length when dataset.max_length is unset", positive()));
  s.keys.push_back(ignored_key("use_fast", ConfigType::Boolean,
                               "one tokenizer implementation, exact to HF tokenizers",
                               "HF fast tokenizer switch"));
  s.keys.push_back(ignored_key("padding_side", ConfigType::Enum,
                               "the collator pads right, as the seed's did "
                               "(docs/seed-behaviour.md §2)",
                               "HF padding side", {"left", "right"}));
  s.keys.push_back(ignored_key("truncation_side", ConfigType::Enum,
                               "the example builder truncates itself "
                               "(docs/seed-behaviour.md §2)",
                               "HF truncation side", {"left", "right"}));
  s.keys.push_back(ignored_key("chat_template", ConfigType::String,
                               "ChatML is rendered by data/chat_template (docs/formats.md §1)",
                               "Jinja chat template"));
  return s;
}

ConfigSection peft_section() {
  ConfigSection s{"peft", "LoRA adapters, or full fine-tuning", {}};
  s.keys.push_back(enum_key("method", {"lora", "full"}, "lora", CONFIG_FIELD(peft.method),
                            "lora, or full: every parameter trains"));
  s.keys.push_back(
      integer_key("lora_r", 8, CONFIG_FIELD(peft.lora.r), "LoRA rank r", between(1, 4096)));
  s.keys.push_back(
      number_key("lora_alpha", 16, CONFIG_FIELD(peft.lora.alpha), "LoRA α; scale s = α/r"));
  s.keys.push_back(number_key("lora_dropout", 0.1, CONFIG_FIELD(peft.lora.dropout),
                              "dropout on the LoRA input, training only",
                              between(0, 1, /*max_open=*/true)));
  ConfigKey targets = base_key("target_modules", ConfigType::StringList, "[q_proj, v_proj]",
                               "projections with adapters; null = PEFT's llama default");
  targets.check_text = "each of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj";
  targets.read = [](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    const std::vector<std::string> names = read_config_string_list(value, site);
    if (names.empty()) return;  // [] like null: the default
    c.peft.lora.targets.clear();
    for (const std::string& name : names) {
      try {
        c.peft.lora.targets.push_back(parse_projection(name));
      } catch (const Error& e) {
        throw_error(site.at, ": peft.target_modules: ", e.what());
      }
    }
  };
  targets.set_default = [](RunConfig& c) { c.peft.lora.targets = {Projection::Q, Projection::V}; };
  targets.write = [](const RunConfig& c) {
    std::vector<std::string> names;
    for (Projection p : c.peft.lora.targets) names.push_back(projection_name(p));
    return yaml_string_list(names);
  };
  s.keys.push_back(targets);
  s.keys.push_back(fixed_key("bias", ConfigType::String, "none", "trainable biases"));
  s.keys.push_back(ignored_key("task_type", ConfigType::String, "the top-level task_type decides",
                               "PEFT task type"));
  s.keys.push_back(ignored_key("inference_mode", ConfigType::Boolean,
                               "training always builds trainable adapters", "PEFT flag"));
  ConfigKey init = base_key("init_lora_weights", ConfigType::String, "gaussian",
                            "adapter initialiser (README: LoRA)");
  init.check_text = "gaussian, true, false, pissa, pissa_niter_K, lora_ga, lora_ns";
  init.read = [](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    // YAML true/false arrive as their text; parse_lora_init accepts both spellings.
    const LoraInitSpec spec =
        parse_lora_init(read_config_string(value, site), site.at + ": peft.init_lora_weights");
    c.peft.init.kind = spec.kind;
    c.peft.init.niter = spec.niter;
  };
  init.set_default = [](RunConfig& c) {
    c.peft.init.kind = LoraInitKind::Gaussian;
    c.peft.init.niter = 0;
  };
  init.write = [](const RunConfig& c) { return lora_init_name(c.peft.init); };
  s.keys.push_back(init);
  s.keys.push_back(fixed_key("use_dora", ConfigType::Boolean, "false", "DoRA"));
  s.keys.push_back(fixed_key("use_qalora", ConfigType::Boolean, "false", "QA-LoRA"));
  s.keys.push_back(boolean_key("use_rslora", false, CONFIG_FIELD(peft.lora.use_rslora),
                               "s = α/√r instead of α/r"));
  s.keys.push_back(optional_integer_key("init_seed", "training.seed", CONFIG_FIELD(peft.init_seed),
                                        "seed of the initialisers' random draws", at_least(0)));
  return s;
}

ConfigSection trainer_section() {
  ConfigSection s{"trainer", "Trainer or SpectralRefactorTrainer (docs/seed-behaviour.md §5)", {}};
  s.keys.push_back(enum_key("name", {"Trainer", "SpectralRefactorTrainer"}, "Trainer",
                            CONFIG_FIELD(trainer.name), "the training loop"));
  s.keys.push_back(integer_key("refactor_every", 100, CONFIG_FIELD(trainer.refactor_every),
                               "refactor every R optimizer steps", positive()));
  s.keys.push_back(integer_key("warmup_steps", 0, CONFIG_FIELD(trainer.warmup_steps),
                               "no refactor before this step", at_least(0)));
  s.keys.push_back(integer_key("cooldown_steps", 0, CONFIG_FIELD(trainer.cooldown_steps),
                               "no refactor in the last steps", at_least(0)));
  s.keys.push_back(enum_key("refactor_mode", {"balanced", "exact"}, "balanced",
                            CONFIG_FIELD(trainer.refactor_mode), "spectrum kept or balanced"));
  s.keys.push_back(number_key("balance_lambda", 1.0, CONFIG_FIELD(trainer.balance_lambda),
                              "λ₀ of the balanced mode, rising to 1", between(0, 1)));
  s.keys.push_back(boolean_key("preserve_momentum", false, CONFIG_FIELD(trainer.preserve_momentum),
                               "remap Adam's first moments into the new factors"));
  s.keys.push_back(boolean_key("clear_momentum", true, CONFIG_FIELD(trainer.clear_momentum),
                               "zero Adam's moments after a refactor"));
  s.keys.push_back(number_key("damping_eps", 0, CONFIG_FIELD(trainer.damping_eps),
                              "added to the singular values", at_least(0)));
  s.keys.push_back(number_key("clip_min_sigma", 0, CONFIG_FIELD(trainer.clip_min_sigma),
                              "floor of the singular values", at_least(0)));
  s.keys.push_back(enum_key("refactor_timing", {"step", "legacy"}, "step",
                            CONFIG_FIELD(trainer.refactor_timing),
                            "step: once per optimizer step; legacy: the seed's per micro-batch"));
  s.keys.push_back(number_key("warmup_ratio", 0, CONFIG_FIELD(trainer.warmup_ratio),
                              "no refactor while step < ratio·max_steps", between(0, 1)));
  s.keys.push_back(enum_key("balance_lambda_schedule", {"constant", "linear"}, "constant",
                            CONFIG_FIELD(trainer.balance_lambda_schedule),
                            "λ: constant λ₀, or the seed's λ₀ + (1 − λ₀)·step/max_steps"));
  s.keys.push_back(string_list_key("target_adapter_keys", {},
                                   CONFIG_FIELD(trainer.target_adapter_keys),
                                   "refactor only adapters whose name contains one (empty: all)"));
  s.keys.push_back(boolean_key("only_large_layers", false, CONFIG_FIELD(trainer.only_large_layers),
                               "refactor only layers with min(out, in) >= large_dim_threshold"));
  s.keys.push_back(integer_key("large_dim_threshold", 0, CONFIG_FIELD(trainer.large_dim_threshold),
                               "the only_large_layers bound", at_least(0)));
  return s;
}

ConfigSection loraga_section() {
  ConfigSection s{"loraga", "the lora_ga / lora_ns gradient pass (docs/seed-behaviour.md §4)", {}};
  s.keys.push_back(integer_key("batch_size", 8, CONFIG_FIELD(loraga.batch_size),
                               "examples per gradient batch", positive()));
  s.keys.push_back(integer_key("num_samples", 64, CONFIG_FIELD(loraga.num_samples),
                               "first train examples the gradient is estimated on", positive()));
  s.keys.push_back(enum_key("direction", {"ArB2r", "ArBr", "A2rBr", "random"}, "ArB2r",
                            CONFIG_FIELD(loraga.direction), "singular vectors given to B and A"));
  s.keys.push_back(enum_key("scale", {"stable", "gd", "unit", "weightS"}, "stable",
                            CONFIG_FIELD(loraga.scale), "scale of the initial factors"));
  s.keys.push_back(number_key("stable_gamma", 16, CONFIG_FIELD(loraga.stable_gamma),
                              "γ of the stable scale", positive()));
  s.keys.push_back(
      ignored_key("dtype", ConfigType::String, "the gradient pass runs in fp32", "gradient dtype"));
  s.keys.push_back(ignored_key("gradient", ConfigType::Map,
                               "the estimated gradient is not saved to disk",
                               "gradient cache settings"));
  return s;
}

ConfigSection dataset_section() {
  ConfigSection s{"dataset", "data, prompt rendering, truncation (docs/seed-behaviour.md §2)", {}};
  s.keys.push_back(string_key("name", "", CONFIG_FIELD(dataset.name),
                              "gsm8k, openai/gsm8k, meta-math/MetaMathQA, or a local file"));
  s.keys.push_back(string_key("subset", "", CONFIG_FIELD(dataset.subset), "HF config name"));
  ConfigKey files = base_key("data_files", ConfigType::Map, "{}",
                             "a path, or split -> path; replaces name resolution");
  files.read = [](RunConfig& c, const YAML::Node& value, const ConfigSite& site) {
    c.dataset.data_files.clear();
    if (value.IsScalar()) {
      c.dataset.data_files["train"] = value.Scalar();
      return;
    }
    SMOL_CHECK(value.IsMap(), site.at, ": '", site.key,
               "' must be a path or a mapping split -> path");
    for (const auto& item : value) {
      SMOL_CHECK(item.second.IsScalar(), site.at, ": ", site.key, ".", item.first.as<std::string>(),
                 " must be one path");
      c.dataset.data_files[item.first.as<std::string>()] = item.second.Scalar();
    }
  };
  files.set_default = [](RunConfig& c) { c.dataset.data_files.clear(); };
  files.write = [](const RunConfig& c) {
    std::string out = "{";
    for (const auto& [split, path] : c.dataset.data_files)
      out += (out.size() > 1 ? ", " : "") + yaml_quoted(split) + ": " + yaml_quoted(path);
    return out + "}";
  };
  s.keys.push_back(files);
  s.keys.push_back(string_key("train_split", "train", CONFIG_FIELD(dataset.train_split),
                              "HF split spec of the training rows"));
  s.keys.push_back(optional_string_key("eval_split", "unset = no evaluation",
                                       CONFIG_FIELD(dataset.eval_split),
                                       "HF split spec of the evaluation rows"));
  s.keys.push_back(optional_string_key("test_split", "unset", CONFIG_FIELD(dataset.test_split),
                                       "HF split spec of held-out rows"));
  s.keys.push_back(optional_integer_key("max_length", "tokenizer.model_max_length",
                                        CONFIG_FIELD(dataset.max_length),
                                        "tokens per example after truncation", positive()));
  s.keys.push_back(string_list_key("input_fields", {}, CONFIG_FIELD(dataset.prompt.input_fields),
                                   "prompt columns; empty = inferred"));
  s.keys.push_back(string_key("target_field", "", CONFIG_FIELD(dataset.prompt.target_field),
                              "completion column; empty = inferred"));
  s.keys.push_back(optional_string_key("prompt_template", "unset = field: value lines",
                                       CONFIG_FIELD(dataset.prompt.prompt_template),
                                       "prompt with {field} placeholders"));
  s.keys.push_back(string_key("response_template", "{target}",
                              CONFIG_FIELD(dataset.prompt.response_template),
                              "completion with {target}"));
  s.keys.push_back(boolean_key("strip_prompt", true, CONFIG_FIELD(dataset.prompt.strip_prompt),
                               "strip whitespace around prompt and completion"));
  s.keys.push_back(boolean_key("append_eos_token", true, CONFIG_FIELD(dataset.example.append_eos),
                               "append a supervised EOS"));
  s.keys.push_back(
      boolean_key("add_bos_token", false, CONFIG_FIELD(dataset.example.add_bos), "prepend BOS"));
  s.keys.push_back(string_key("completion_prefix", "",
                              CONFIG_FIELD(dataset.example.completion_prefix),
                              "text before the completion"));
  s.keys.push_back(string_key("completion_suffix", "",
                              CONFIG_FIELD(dataset.example.completion_suffix),
                              "text after the completion"));
  s.keys.push_back(boolean_key("truncate_prompt_only", true,
                               CONFIG_FIELD(dataset.example.truncate_prompt_only),
                               "truncate the prompt first"));
  s.keys.push_back(boolean_key("truncate_from_end", true,
                               CONFIG_FIELD(dataset.example.truncate_from_end),
                               "keep the prompt's end"));
  s.keys.push_back(boolean_key("apply_chat_template", false,
                               CONFIG_FIELD(dataset.example.apply_chat_template),
                               "render as a ChatML conversation"));
  s.keys.push_back(optional_string_key("system_prompt", "the template's",
                                       CONFIG_FIELD(dataset.example.system_prompt),
                                       "system message of the chat template"));
  s.keys.push_back(string_key("assistant_prefix", "",
                              CONFIG_FIELD(dataset.example.assistant_prefix),
                              "text opening the assistant turn"));
  const std::string local_files = "files are read directly from the data root (--data-dir)";
  s.keys.push_back(
      ignored_key("data_dir", ConfigType::String, local_files, "load_dataset data_dir"));
  s.keys.push_back(
      ignored_key("cache_dir", ConfigType::String, local_files, "load_dataset cache_dir"));
  s.keys.push_back(ignored_key("streaming", ConfigType::Boolean, "datasets are read whole",
                               "load_dataset streaming"));
  s.keys.push_back(ignored_key("keep_in_memory", ConfigType::Boolean,
                               "datasets are always in memory", "load_dataset keep_in_memory"));
  s.keys.push_back(ignored_key("verification_mode", ConfigType::String, local_files,
                               "load_dataset verification"));
  s.keys.push_back(ignored_key("preprocessing_num_workers", ConfigType::Integer,
                               "tokenisation runs in-process", "datasets map workers"));
  s.keys.push_back(ignored_key("text_column", ConfigType::String, kSeqCls, "SEQ_CLS text column"));
  s.keys.push_back(
      ignored_key("label_column", ConfigType::String, kSeqCls, "SEQ_CLS label column"));
  s.keys.push_back(ignored_key("num_labels", ConfigType::Integer, kSeqCls, "SEQ_CLS classes"));
  return s;
}

ConfigSection training_section() {
  const std::vector<std::string> strategies = {"no", "steps", "epoch"};
  ConfigSection s{"training", "optimisation, cadence, outputs (docs/seed-behaviour.md §6)", {}};
  s.keys.push_back(integer_key("max_steps", -1, CONFIG_FIELD(training.max_steps),
                               "optimizer steps; -1 = from num_train_epochs", at_least(-1)));
  s.keys.push_back(number_key("num_train_epochs", 3, CONFIG_FIELD(training.num_train_epochs),
                              "epochs when max_steps is -1", positive()));
  s.keys.push_back(integer_key("per_device_train_batch_size", 8,
                               CONFIG_FIELD(training.per_device_train_batch_size),
                               "examples per micro-batch", positive()));
  s.keys.push_back(integer_key("per_device_eval_batch_size", 8,
                               CONFIG_FIELD(training.per_device_eval_batch_size),
                               "examples per evaluation batch", positive()));
  s.keys.push_back(integer_key("gradient_accumulation_steps", 1,
                               CONFIG_FIELD(training.gradient_accumulation_steps),
                               "micro-batches per optimizer step", positive()));
  s.keys.push_back(optional_integer_key(
      "global_batch_size", "unset", CONFIG_FIELD(training.global_batch_size),
      "sets gradient_accumulation_steps = this / per_device_train_batch_size", positive()));
  s.keys.push_back(number_key("learning_rate", 2e-4, CONFIG_FIELD(training.learning_rate),
                              "peak learning rate", at_least(0)));
  s.keys.push_back(number_key("weight_decay", 0, CONFIG_FIELD(training.weight_decay),
                              "decoupled AdamW weight decay", at_least(0)));
  s.keys.push_back(number_key("warmup_ratio", 0.03, CONFIG_FIELD(training.warmup_ratio),
                              "warmup = ⌈ratio · steps⌉ when warmup_steps is 0", between(0, 1)));
  s.keys.push_back(integer_key("warmup_steps", 0, CONFIG_FIELD(training.warmup_steps),
                               "warmup steps; wins over warmup_ratio when > 0", at_least(0)));
  std::vector<std::string> schedules;
  for (LrScheduleKind kind : {LrScheduleKind::Cosine, LrScheduleKind::Linear,
                              LrScheduleKind::Constant, LrScheduleKind::ConstantWithWarmup})
    schedules.push_back(lr_schedule_kind_name(kind));
  s.keys.push_back(enum_key("lr_scheduler_type", schedules, "cosine",
                            CONFIG_FIELD(training.lr_scheduler_type), "HF schedule"));
  s.keys.push_back(enum_key(
      "optim", {"adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_apex_fused"}, "adamw_torch",
      CONFIG_FIELD(training.optim), "every name is the same AdamW (docs/design.md §4)"));
  s.keys.push_back(enum_key(
      "cpu_precision", {"fp32", "bf16"}, "fp32", CONFIG_FIELD(training.cpu_precision),
      "cpu backend, LoRA only: bf16 stores the frozen base weights (projections, embedding / "
      "tied LM head) in bf16 and multiplies them with bf16-rounded activations, accumulating in "
      "fp32 (AVX512-BF16 where the CPU has it; torch.autocast's error on cpu); activations, "
      "LoRA A/B, gradients, norms and AdamW stay fp32. fp32 = the exact reference. Refused with "
      "peft.method: full (no weight is frozen); no effect on cuda (already bf16). "
      "docs/cpu-speed.md"));
  s.keys.push_back(number_key("max_grad_norm", 1.0, CONFIG_FIELD(training.max_grad_norm),
                              "global gradient-norm clip", at_least(0)));
  s.keys.push_back(number_key("adam_beta1", 0.9, CONFIG_FIELD(training.adam_beta1), "AdamW β1",
                              between(0, 1, /*max_open=*/true)));
  s.keys.push_back(number_key("adam_beta2", 0.999, CONFIG_FIELD(training.adam_beta2), "AdamW β2",
                              between(0, 1, /*max_open=*/true)));
  s.keys.push_back(number_key("adam_epsilon", 1e-8, CONFIG_FIELD(training.adam_epsilon), "AdamW ε",
                              at_least(0)));
  s.keys.push_back(integer_key("seed", 42, CONFIG_FIELD(training.seed),
                               "seed of dropout and the defaults of the other seeds", at_least(0)));
  s.keys.push_back(derived(integer_key("data_seed", 42, CONFIG_FIELD(training.data_seed),
                                       "seed of the data order", at_least(0)),
                           "training.seed",
                           [](RunConfig& c) { c.training.data_seed = c.training.seed; }));
  s.keys.push_back(integer_key("pad_to_multiple_of", 8, CONFIG_FIELD(training.pad_to_multiple_of),
                               "padded batch length multiple", positive()));
  s.keys.push_back(boolean_key("dataloader_drop_last", false,
                               CONFIG_FIELD(training.dataloader_drop_last),
                               "drop an epoch's last short micro-batch"));
  s.keys.push_back(number_key("ddp_timeout", 1800, CONFIG_FIELD(training.ddp_timeout),
                              "seconds a data-parallel collective may wait for the other ranks "
                              "before the run stops with an error",
                              positive()));
  s.keys.push_back(
      string_key("output_dir", "", CONFIG_FIELD(training.output_dir), "where runs are written"));
  s.keys.push_back(string_key("run_name", "", CONFIG_FIELD(training.run_name), "the run's name"));
  s.keys.push_back(string_list_key("no_decay", {}, CONFIG_FIELD(training.no_decay),
                                   "parameter-name substrings with no weight decay"));
  s.keys.push_back(integer_key("total_eval_times", 50, CONFIG_FIELD(training.total_eval_times),
                               "evaluations per run when eval_steps is unset", positive()));
  s.keys.push_back(enum_key("eval_strategy", strategies, "steps",
                            CONFIG_FIELD(training.eval_strategy), "when to evaluate"));
  ConfigKey alias =
      enum_key("evaluation_strategy", strategies, "steps", CONFIG_FIELD(training.eval_strategy),
               "old name of eval_strategy (both set the same field)");
  alias.alias_of = "eval_strategy";
  alias.default_text = "eval_strategy";
  alias.set_default = nullptr;
  s.keys.push_back(alias);
  s.keys.push_back(enum_key("save_strategy", strategies, "steps",
                            CONFIG_FIELD(training.save_strategy), "when to checkpoint"));
  s.keys.push_back(optional_integer_key(
      "eval_steps", "⌊steps / total_eval_times⌋", CONFIG_FIELD(training.eval_steps),
      "evaluate every N steps (wins over total_eval_times)", positive()));
  s.keys.push_back(optional_integer_key("save_steps", "the evaluation interval",
                                        CONFIG_FIELD(training.save_steps),
                                        "checkpoint every N steps", positive()));
  s.keys.push_back(integer_key("logging_steps", 10, CONFIG_FIELD(training.logging_steps),
                               "log every N steps", positive()));
  s.keys.push_back(ignored_key("logging_dir", ConfigType::String, "outputs go to the run directory",
                               "HF TensorBoard directory"));
  s.keys.push_back(boolean_key("eval_on_start", false, CONFIG_FIELD(training.eval_on_start),
                               "evaluate once before the first step (HF eval_on_start)"));
  s.keys.push_back(boolean_key("load_best_model_at_end", false,
                               CONFIG_FIELD(training.load_best_model_at_end),
                               "end with the best checkpoint's weights"));
  s.keys.push_back(string_key("metric_for_best_model", "loss",
                              CONFIG_FIELD(training.metric_for_best_model),
                              "metric that picks the best checkpoint"));
  s.keys.push_back(optional_boolean_key(
      "greater_is_better", "unset = false iff the metric ends in loss",
      CONFIG_FIELD(training.greater_is_better), "direction of metric_for_best_model"));
  s.keys.push_back(integer_key("save_total_limit", 3, CONFIG_FIELD(training.save_total_limit),
                               "checkpoints kept, best included; 0 = unlimited", at_least(0)));
  s.keys.push_back(string_list_key("report_to", {"tensorboard"}, CONFIG_FIELD(training.report_to),
                                   "TensorBoard files are always written; wandb is not acted on",
                                   {"none", "tensorboard", "wandb", "all"}));
  s.keys.push_back(ignored_key("fp16", ConfigType::Boolean, kPrecision, "HF mixed precision"));
  s.keys.push_back(ignored_key("bf16", ConfigType::Boolean, kPrecision, "HF mixed precision"));
  s.keys.push_back(ignored_key("gradient_checkpointing", ConfigType::Boolean,
                               "activations are kept; the models are small",
                               "HF activation recomputation"));
  const std::string in_process = "batches are built in-process from memory";
  s.keys.push_back(ignored_key("dataloader_num_workers", ConfigType::Integer, in_process,
                               "HF DataLoader workers"));
  s.keys.push_back(ignored_key("dataloader_pin_memory", ConfigType::Boolean, in_process,
                               "HF DataLoader pinning"));
  s.keys.push_back(ignored_key("remove_unused_columns", ConfigType::Boolean,
                               "examples carry only ids and labels", "HF column pruning"));
  return s;
}

ConfigSection evaluation_section() {
  ConfigSection s{"evaluation", "generative evaluation (docs/design.md §6)", {}};
  s.keys.push_back(boolean_key("generative", true, CONFIG_FIELD(evaluation.generative),
                               "gsm8k_accuracy by greedy decoding of the eval prompts"));
  s.keys.push_back(integer_key("max_new_tokens", 256, CONFIG_FIELD(evaluation.max_new_tokens),
                               "decoding length limit", positive()));
  s.keys.push_back(integer_key("generative_samples", -1,
                               CONFIG_FIELD(evaluation.generative_samples),
                               "eval examples decoded; -1 = the whole eval split", at_least(-1)));
  s.keys.push_back(integer_key("batch_size", 0, CONFIG_FIELD(evaluation.batch_size),
                               "decoding batch; 0 = training.per_device_eval_batch_size",
                               at_least(0)));
  s.keys.push_back(string_list_key("stop_strings", {"\n### ", "Question:"},
                                   CONFIG_FIELD(evaluation.stop_strings),
                                   "decoding stops at any of them"));
  s.keys.push_back(integer_key("predictions_sample", 20,
                               CONFIG_FIELD(evaluation.predictions_sample),
                               "predictions the report shows", at_least(0)));
  return s;
}

ConfigSection wandb_section() {
  ConfigSection s{"wandb", "Weights & Biases (not acted on)", {}};
  s.keys.push_back(ignored_key("project", ConfigType::String, kNoNetwork, "wandb project"));
  s.keys.push_back(ignored_key("online", ConfigType::Boolean, kNoNetwork, "WANDB_MODE"));
  s.keys.push_back(ignored_key("tags", ConfigType::StringList, kNoNetwork, "run tags"));
  s.keys.push_back(ignored_key("enabled", ConfigType::Boolean, kNoNetwork, "report to wandb"));
  s.keys.push_back(
      ignored_key("run_name_suffix", ConfigType::String, kNoNetwork, "run name suffix"));
  s.keys.push_back(ignored_key("entity", ConfigType::String, kNoNetwork, "wandb entity"));
  return s;
}

#undef CONFIG_FIELD

ConfigSchema build_schema() {
  ConfigSchema schema;
  schema.sections = {top_level(),          model_section(),   architecture_section(),
                     tokenizer_section(),  peft_section(),    trainer_section(),
                     loraga_section(),     dataset_section(), training_section(),
                     evaluation_section(), wandb_section()};
  return schema;
}

}  // namespace

const ConfigSchema& run_config_schema() {
  static const ConfigSchema schema = build_schema();
  return schema;
}

}  // namespace smol
