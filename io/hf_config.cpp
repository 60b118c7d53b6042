// config.json parsing with transformers' LlamaConfig defaults (transformers
// models/llama/configuration_llama.py): max_position_embeddings 2048, rms_norm_eps 1e-6,
// rope_theta 10000, tie_word_embeddings false, bos 1, eos 2, pad none, head_dim hidden/heads.
#include "io/hf_config.h"

#include <fstream>
#include <limits>

#include "common/error.h"
#include "common/quote.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"

namespace smol {
namespace {

using nlohmann::json;

const json* optional_key(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer as written: nlohmann keeps values above INT64_MAX as unsigned, and get<int64_t>()
// would wrap 2^64 - 1 to -1 (docs/bad-inputs.md), so those are refused as written.
int64_t int64_of(const json& v, const char* key, const std::string& where) {
  SMOL_CHECK(!v.is_number_unsigned() ||
                 v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             where, ": key '", key, "' = ", v.get<uint64_t>(), " is too large");
  return v.get<int64_t>();
}

int64_t int_key(const json& j, const char* key, const std::string& where, bool required,
                int64_t fallback) {
  const json* v = optional_key(j, key);
  if (v == nullptr) {
    SMOL_CHECK(!required, where, ": missing required key '", key, "'");
    return fallback;
  }
  SMOL_CHECK(v->is_number_integer(), where, ": key '", key, "' must be an integer, got ",
             quoted_excerpt(v->dump()));
  return int64_of(*v, key, where);
}

double float_key(const json& j, const char* key, const std::string& where, double fallback) {
  const json* v = optional_key(j, key);
  if (v == nullptr) return fallback;
  SMOL_CHECK(v->is_number(), where, ": key '", key, "' must be a number, got ", v->dump());
  return v->get<double>();
}

bool bool_key(const json& j, const char* key, const std::string& where, bool fallback) {
  const json* v = optional_key(j, key);
  if (v == nullptr) return fallback;
  SMOL_CHECK(v->is_boolean(), where, ": key '", key, "' must be true or false, got ", v->dump());
  return v->get<bool>();
}

// Token ids may be an integer, null, or (newer configs) a list whose first entry is used.
int64_t token_id_key(const json& j, const char* key, const std::string& where, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (it->is_null()) return -1;
  if (it->is_array()) {
    if (it->empty()) return -1;
    SMOL_CHECK((*it)[0].is_number_integer(), where, ": key '", key, "' must hold integers, got ",
               quoted_excerpt(it->dump()));
    return int64_of((*it)[0], key, where);
  }
  SMOL_CHECK(it->is_number_integer(), where, ": key '", key, "' must be an integer, got ",
             quoted_excerpt(it->dump()));
  return int64_of(*it, key, where);
}

}  // namespace

LlamaConfig llama_config_from_hf_json(const json& j, const std::string& where) {
  SMOL_CHECK(j.is_object(), where, ": config must be a JSON object");
  if (const json* type = optional_key(j, "model_type")) {
    SMOL_CHECK(type->is_string(), where, ": key 'model_type' must be a string");
    SMOL_CHECK(type->get<std::string>() == "llama", where, ": model_type '",
               type->get<std::string>(), "' is not supported (only 'llama')");
  }
  if (const json* act = optional_key(j, "hidden_act")) {
    SMOL_CHECK(act->is_string() && act->get<std::string>() == "silu", where, ": hidden_act ",
               act->dump(), " is not supported (only \"silu\")");
  }
  // RoPE: transformers < 5 writes rope_theta (+ rope_scaling, null for plain RoPE); 5.x writes
  // rope_parameters {"rope_theta", "rope_type"}. Only the unscaled "default" type is supported.
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* rope = optional_key(j, key);
    if (rope == nullptr) continue;
    SMOL_CHECK(rope->is_object(), where, ": ", key, " must be an object or null, got ",
               rope->dump());
    const json type =
        rope->contains("rope_type") ? rope->at("rope_type") : rope->value("type", json("default"));
    SMOL_CHECK(type == "default", where, ": ", key, " ", rope->dump(),
               " is not supported (only plain RoPE, rope_type \"default\")");
  }
  SMOL_CHECK(!bool_key(j, "attention_bias", where, false), where,
             ": attention_bias = true is not supported");
  SMOL_CHECK(!bool_key(j, "mlp_bias", where, false), where, ": mlp_bias = true is not supported");

  LlamaConfig c;
  c.hidden_size = int_key(j, "hidden_size", where, true, 0);
  c.intermediate_size = int_key(j, "intermediate_size", where, true, 0);
  c.num_hidden_layers = int_key(j, "num_hidden_layers", where, true, 0);
  c.num_attention_heads = int_key(j, "num_attention_heads", where, true, 0);
  c.num_key_value_heads = int_key(j, "num_key_value_heads", where, false, c.num_attention_heads);
  SMOL_CHECK(c.num_attention_heads > 0, where, ": num_attention_heads must be positive");
  c.head_dim = int_key(j, "head_dim", where, false, c.hidden_size / c.num_attention_heads);
  c.vocab_size = int_key(j, "vocab_size", where, true, 0);
  c.max_position_embeddings = int_key(j, "max_position_embeddings", where, false, 2048);
  c.rope_theta = float_key(j, "rope_theta", where, 10000.0);
  if (const json* rope = optional_key(j, "rope_parameters"))
    c.rope_theta = float_key(*rope, "rope_theta", where + ": rope_parameters", c.rope_theta);
  c.rms_norm_eps = float_key(j, "rms_norm_eps", where, 1e-6);
  c.tie_word_embeddings = bool_key(j, "tie_word_embeddings", where, false);
  c.bos_token_id = token_id_key(j, "bos_token_id", where, 1);
  c.eos_token_id = token_id_key(j, "eos_token_id", where, 2);
  c.pad_token_id = token_id_key(j, "pad_token_id", where, -1);
  c.validate(where);
  return c;
}

LlamaConfig read_hf_config_file(const std::string& path) {
  const std::string text = read_regular_file(path, "config.json", kMaxSmallJsonBytes);
  json j;
  try {
    j = parse_bounded_json(text, path);
  } catch (const json::exception& e) {
    throw_error(path, ": invalid JSON: ", e.what());
  }
  return llama_config_from_hf_json(j, path);
}

json llama_config_to_hf_json(const LlamaConfig& c) {
  auto id_or_null = [](int64_t id) { return id < 0 ? json(nullptr) : json(id); };
  json j;
  j["architectures"] = json::array({"LlamaForCausalLM"});
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["mlp_bias"] = false;
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["use_cache"] = true;
  j["torch_dtype"] = "float32";
  j["bos_token_id"] = id_or_null(c.bos_token_id);
  j["eos_token_id"] = id_or_null(c.eos_token_id);
  j["pad_token_id"] = id_or_null(c.pad_token_id);
  return j;
}

}  // namespace smol
