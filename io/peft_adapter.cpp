// PEFT adapter directories (see peft_adapter.h; docs/formats.md §4). Field names and defaults
// follow peft's LoraConfig (tuners/lora/config.py) and PeftConfig (config.py); the key prefix
// follows get_peft_model_state_dict + save_pretrained (utils/save_and_load.py, peft_model.py).
#include "io/peft_adapter.h"

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "io/model_loader.h"
#include "io/safetensors_io.h"

namespace smol {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const char kPeftKeyPrefix[] = "base_model.model.";
const char kConfigFile[] = "adapter_config.json";
const char kWeightsFile[] = "adapter_model.safetensors";

// model.layers.<layer>.<block>.<module>.lora_<which>.weight
struct LoraName {
  int64_t layer = -1;
  std::string module;  // "q_proj", ...
  char which = 0;      // 'A' or 'B'
};

// The Llama projections and the block each lives in (docs/formats.md §4 key list).
const std::map<std::string, std::string>& projection_blocks() {
  static const std::map<std::string, std::string> blocks = {
      {"q_proj", "self_attn"}, {"k_proj", "self_attn"}, {"v_proj", "self_attn"},
      {"o_proj", "self_attn"}, {"gate_proj", "mlp"},    {"up_proj", "mlp"},
      {"down_proj", "mlp"}};
  return blocks;
}

bool parse_lora_name(const std::string& name, LoraName& out) {
  static const std::string kLayers = "model.layers.";
  if (name.rfind(kLayers, 0) != 0) return false;
  size_t at = kLayers.size();
  const size_t layer_end = name.find('.', at);
  if (layer_end == std::string::npos || layer_end == at || layer_end - at > 6) return false;
  int64_t layer = 0;
  for (size_t i = at; i < layer_end; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    layer = layer * 10 + (name[i] - '0');
  }
  if (layer_end - at > 1 && name[at] == '0') return false;  // "01" is not a layer index
  const std::string rest = name.substr(layer_end + 1);      // "<block>.<module>.lora_X.weight"
  for (const auto& [module, block] : projection_blocks()) {
    for (const char which : {'A', 'B'}) {
      const std::string want = block + "." + module + ".lora_" + which + ".weight";
      if (rest == want) {
        out = {layer, module, which};
        return true;
      }
    }
  }
  return false;
}

std::string lora_name(int64_t layer, const std::string& module, char which) {
  return "model.layers." + std::to_string(layer) + "." + projection_blocks().at(module) + "." +
         module + ".lora_" + which + ".weight";
}

std::string read_text(const std::string& path) {
  return read_regular_file(path, "adapter config", kMaxSmallJsonBytes);
}

// An integral double as a JSON integer (PEFT writes lora_alpha 16, not 16.0), else a double.
json number_json(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15)
    return json(static_cast<int64_t>(v));
  return json(v);
}

void check_config_values(const PeftAdapterConfig& c, const std::string& where) {
  SMOL_CHECK(c.r > 0, where, ": r must be positive, got ", c.r);
  SMOL_CHECK(std::isfinite(c.lora_alpha) && c.lora_alpha != 0, where,
             ": lora_alpha must be a finite non-zero number, got ", c.lora_alpha);
  SMOL_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, where,
             ": lora_dropout must be in [0, 1), got ", c.lora_dropout);
  SMOL_CHECK(!c.target_modules.empty(), where, ": target_modules is empty");
  for (const std::string& m : c.target_modules)
    SMOL_CHECK(projection_blocks().count(m), where, ": target module '", m,
               "' is not a Llama projection (q_proj k_proj v_proj o_proj gate_proj up_proj "
               "down_proj)");
}

}  // namespace

double PeftAdapterConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r))
                    : lora_alpha / static_cast<double>(r);
}

std::string peft_key_from_lora_name(const std::string& name) {
  return kPeftKeyPrefix + name;
}

std::string lora_name_from_peft_key(const std::string& key) {
  const std::string prefix = kPeftKeyPrefix;
  if (key.rfind(prefix, 0) != 0) return "";
  LoraName parsed;
  const std::string name = key.substr(prefix.size());
  return parse_lora_name(name, parsed) ? name : "";
}

bool peft_init_moves_base_weight(const std::string& init) {
  for (const char* prefix : {"pissa", "olora", "corda", "lora_ga", "lora_ns", "loftq", "eva"})
    if (init.rfind(prefix, 0) == 0) return true;
  return false;
}

void check_peft_lora_tensors(const PeftAdapterConfig& config, const HostTensorMap& tensors,
                             const std::string& where) {
  SMOL_CHECK(!tensors.empty(), where, ": the adapter has no LoRA tensors");
  const std::set<std::string> targets(config.target_modules.begin(), config.target_modules.end());
  std::map<std::string, std::pair<int64_t, int64_t>> in_out_by_module;  // first layer seen
  // Names first, so that a misspelt name is reported as such, not as a missing partner.
  for (const auto& [name, t] : tensors) {
    LoraName n;
    SMOL_CHECK(parse_lora_name(name, n), where, ": '", name,
               "' is not a LoRA tensor of a Llama projection "
               "(model.layers.<L>.self_attn|mlp.<proj>.lora_A|lora_B.weight)");
    SMOL_CHECK(targets.count(n.module), where, ": tensor '", name, "' targets ", n.module,
               ", which target_modules does not list");
  }
  for (const auto& [name, t] : tensors) {
    LoraName n;
    parse_lora_name(name, n);
    SMOL_CHECK(t.shape.rank == 2, where, ": tensor '", name, "' has shape ", t.shape.str(),
               "; LoRA factors are matrices");
    SMOL_CHECK(static_cast<int64_t>(t.data.size()) == t.shape.numel(), where, ": tensor '", name,
               "' holds ", t.data.size(), " values for shape ", t.shape.str());
    const char other = n.which == 'A' ? 'B' : 'A';
    SMOL_CHECK(tensors.count(lora_name(n.layer, n.module, other)), where, ": tensor '", name,
               "' has no matching lora_", other);
    if (n.which == 'A') {
      SMOL_CHECK(t.shape[0] == config.r, where, ": lora_A '", name, "' has shape ", t.shape.str(),
                 " but r = ", config.r, " needs [", config.r, ", in]");
    } else {
      SMOL_CHECK(t.shape[1] == config.r, where, ": lora_B '", name, "' has shape ", t.shape.str(),
                 " but r = ", config.r, " needs [out, ", config.r, "]");
    }
    if (n.which != 'A') continue;
    const HostTensor& b = tensors.at(lora_name(n.layer, n.module, 'B'));
    const std::pair<int64_t, int64_t> in_out{t.shape[1], b.shape[0]};
    auto [it, first] = in_out_by_module.emplace(n.module, in_out);
    SMOL_CHECK(first || it->second == in_out, where, ": ", n.module, " of layer ", n.layer,
               " maps ", in_out.first, " -> ", in_out.second, " but another layer's maps ",
               it->second.first, " -> ", it->second.second);
  }
}

std::string peft_adapter_config_json(const PeftAdapterConfig& c) {
  auto string_or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json init;
  if (c.init_lora_weights == "true" || c.init_lora_weights == "false")
    init = c.init_lora_weights == "true";
  else
    init = c.init_lora_weights;
  // The keys PEFT's LoraConfig has had since 0.14 with the values that make the adapter a
  // plain LoRA; PEFT fills any newer field with its default (docs/formats.md §4).
  json j;
  j["alpha_pattern"] = json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = string_or_null(c.base_model_name_or_path);
  j["bias"] = "none";
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = init;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = json::object();
  j["lora_alpha"] = number_json(c.lora_alpha);
  j["lora_bias"] = false;
  j["lora_dropout"] = c.lora_dropout;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["rank_pattern"] = json::object();
  j["revision"] = string_or_null(c.revision);
  j["target_modules"] = c.target_modules;
  j["task_type"] = string_or_null(c.task_type);
  j["use_dora"] = false;
  j["use_rslora"] = c.use_rslora;
  return j.dump(2) + "\n";
}

PeftAdapterConfig parse_peft_adapter_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = parse_bounded_json(text, where);
  } catch (const json::exception& e) {
    throw_error(where, ": invalid JSON: ", e.what());
  }
  SMOL_CHECK(j.is_object(), where, ": not a JSON object");
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  SMOL_CHECK(present("peft_type"), where, ": no 'peft_type' (not a PEFT adapter config)");
  SMOL_CHECK(j["peft_type"] == "LORA", where, ": peft_type ", j["peft_type"].dump(),
             " is not supported (only \"LORA\")");

  PeftAdapterConfig c;
  auto string_key = [&](const char* key, std::string& out) {
    if (!present(key)) return;
    SMOL_CHECK(j[key].is_string(), where, ": '", key, "' must be a string, got ", j[key].dump());
    out = j[key].get<std::string>();
  };
  auto number_key = [&](const char* key, double& out) {
    if (!present(key)) return;
    SMOL_CHECK(j[key].is_number(), where, ": '", key, "' must be a number, got ", j[key].dump());
    out = j[key].get<double>();
  };
  auto bool_key = [&](const char* key, bool& out) {
    if (!present(key)) return;
    SMOL_CHECK(j[key].is_boolean(), where, ": '", key, "' must be true or false, got ",
               j[key].dump());
    out = j[key].get<bool>();
  };
  string_key("base_model_name_or_path", c.base_model_name_or_path);
  string_key("revision", c.revision);
  c.task_type.clear();
  string_key("task_type", c.task_type);
  if (present("r")) {
    SMOL_CHECK(j["r"].is_number_integer(), where, ": 'r' must be an integer, got ", j["r"].dump());
    c.r = j["r"].get<int64_t>();
  }
  number_key("lora_alpha", c.lora_alpha);
  number_key("lora_dropout", c.lora_dropout);
  bool_key("use_rslora", c.use_rslora);
  if (present("init_lora_weights")) {
    const json& init = j["init_lora_weights"];
    SMOL_CHECK(init.is_boolean() || init.is_string(), where,
               ": 'init_lora_weights' must be a bool or a string, got ", init.dump());
    c.init_lora_weights =
        init.is_boolean() ? (init.get<bool>() ? "true" : "false") : init.get<std::string>();
  }
  if (!present("target_modules")) {
    c.target_modules = {"q_proj", "v_proj"};  // PEFT's Llama default (docs/formats.md §2)
  } else {
    const json& t = j["target_modules"];
    SMOL_CHECK(!t.is_string(), where, ": target_modules is the regex ", t.dump(),
               "; only a list of module names is supported");
    SMOL_CHECK(t.is_array(), where, ": target_modules must be a list of module names, got ",
               t.dump());
    for (const json& m : t) {
      SMOL_CHECK(m.is_string(), where, ": target_modules entry ", m.dump(), " is not a string");
      c.target_modules.push_back(m.get<std::string>());
    }
  }

  // Options that change the adapter's function: refused, not ignored.
  auto refuse_unless = [&](const char* key, const json& plain) {
    if (!present(key) || j[key] == plain) return;
    if (plain.is_object() && j[key].is_object() && j[key].empty()) return;
    throw_error(where, ": ", key, " = ", j[key].dump(), " is not supported (only ",
                plain.is_null() ? "null" : plain.dump(), ")");
  };
  refuse_unless("bias", "none");
  refuse_unless("use_dora", false);
  refuse_unless("lora_bias", false);
  refuse_unless("fan_in_fan_out", false);
  refuse_unless("use_qalora", false);
  refuse_unless("rank_pattern", json::object());
  refuse_unless("alpha_pattern", json::object());
  for (const char* key : {"modules_to_save", "layers_to_transform", "layer_replication",
                          "target_parameters", "trainable_token_indices"})
    refuse_unless(key, nullptr);
  check_config_values(c, where);
  return c;
}

void write_peft_adapter(const std::string& dir, const PeftAdapterConfig& config,
                        const HostTensorMap& lora) {
  check_config_values(config, dir);
  check_peft_lora_tensors(config, lora, dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  SMOL_CHECK(fs::is_directory(dir), "cannot create adapter directory ", dir,
             ec ? ": " + ec.message() : "");
  std::vector<SafetensorsWriteEntry> entries;
  for (const auto& [name, t] : lora)
    entries.push_back(SafetensorsWriteEntry::from_host(peft_key_from_lora_name(name), t));
  write_safetensors((fs::path(dir) / kWeightsFile).string(), entries);
  write_file_atomically((fs::path(dir) / kConfigFile).string(), peft_adapter_config_json(config));
}

PeftAdapter read_peft_adapter(const std::string& dir) {
  SMOL_CHECK(fs::is_directory(dir), dir, ": not a directory (expected a PEFT adapter directory)");
  const fs::path config_path = fs::path(dir) / kConfigFile;
  const fs::path weights_path = fs::path(dir) / kWeightsFile;
  SMOL_CHECK(fs::is_regular_file(config_path), dir, ": no ", kConfigFile,
             " (not a PEFT adapter directory)");
  if (!fs::is_regular_file(weights_path)) {
    SMOL_CHECK(!fs::exists(fs::path(dir) / "adapter_model.bin"), dir,
               ": has adapter_model.bin (a pickle) but no ", kWeightsFile,
               "; re-save it with safe_serialization=True");
    throw_error(dir, ": no ", kWeightsFile);
  }
  PeftAdapter adapter;
  adapter.config = parse_peft_adapter_config(read_text(config_path.string()), config_path.string());
  const SafetensorsFile file = SafetensorsFile::open(weights_path.string());
  for (const SafetensorsEntry& e : file.entries()) {
    const std::string name = lora_name_from_peft_key(e.name);
    SMOL_CHECK(!name.empty(), weights_path.string(), ": key '", e.name,
               "' is not a PEFT LoRA key of a Llama projection (", kPeftKeyPrefix,
               "model.layers.<L>.self_attn|mlp.<proj>.lora_A|lora_B.weight)");
    adapter.tensors.emplace(name, file.read_f32(e.name));
  }
  check_peft_lora_tensors(adapter.config, adapter.tensors, weights_path.string());
  check_weights_finite(adapter.tensors, weights_path.string());
  return adapter;
}

}  // namespace smol
