// HF `config.json` ↔ LlamaConfig (docs/formats.md §1). Missing optional keys take the defaults of
// transformers' LlamaConfig, so a config.json read here means what it means to transformers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "io/llama_config.h"

namespace smol {

// Reads a Llama config.json object, as written by transformers 4.x (rope_theta) or 5.x
// (rope_parameters.rope_theta). `where` (usually the file path) prefixes every error:
// wrong JSON types, missing required keys, a non-Llama model_type, features this engine does
// not implement (rope_scaling, attention/mlp bias, an activation other than silu).
LlamaConfig llama_config_from_hf_json(const nlohmann::json& json, const std::string& where);

// Reads and parses a config.json file (errors name the file).
LlamaConfig read_hf_config_file(const std::string& path);

// A config.json that transformers' LlamaConfig loads back to the same architecture.
nlohmann::json llama_config_to_hf_json(const LlamaConfig& config);

}  // namespace smol
