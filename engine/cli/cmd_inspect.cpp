// `smolengine inspect MODEL [--json]`: what a model source holds, after loading it exactly as
// training and generation would (io/model_loader.h): the architecture under HF config
// key names, the parameter count computed from the loaded tensors, every tensor with its HF
// name, shape and stored dtype, and a tokenizer summary. A table by default; --json prints
// one JSON object instead.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/quote.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "engine/commands.h"
#include "io/model_loader.h"

namespace smol {
namespace {

// ordered_json keeps keys in the order written: the HF config order, not alphabetical.
using json = nlohmann::ordered_json;

// object[key] as a string (`fallback` when absent); any other type is an Error naming `where`
// and the key, not an anonymous nlohmann type_error (docs/bad-inputs.md).
std::string text_field(const json& object, const char* key, const std::string& fallback,
                       const std::string& where) {
  if (!object.contains(key)) return fallback;
  const json& value = object.at(key);
  SMOL_CHECK(value.is_string(), where, ": \"", key, "\" must be a string, not ", value.type_name());
  return value.get<std::string>();
}

json architecture_json(const LlamaConfig& c) {
  auto id = [](int64_t v) { return v < 0 ? json(nullptr) : json(v); };
  return json{{"hidden_size", c.hidden_size},
              {"intermediate_size", c.intermediate_size},
              {"num_hidden_layers", c.num_hidden_layers},
              {"num_attention_heads", c.num_attention_heads},
              {"num_key_value_heads", c.num_key_value_heads},
              {"head_dim", c.head_dim},
              {"vocab_size", c.vocab_size},
              {"max_position_embeddings", c.max_position_embeddings},
              {"rope_theta", c.rope_theta},
              {"rms_norm_eps", c.rms_norm_eps},
              {"tie_word_embeddings", c.tie_word_embeddings},
              {"bos_token_id", id(c.bos_token_id)},
              {"eos_token_id", id(c.eos_token_id)},
              {"pad_token_id", id(c.pad_token_id)}};
}

// Tokenizer summary from GGUF metadata (BpeSpec) or from tokenizer.json (read, not built: the
// tokenizer itself lives in data/).
json tokenizer_json(const LoadedModel& m) {
  json t;
  if (m.bpe) {
    const BpeSpec& b = *m.bpe;
    t["source"] = "gguf metadata";
    t["type"] = "byte-level BPE";
    t["vocab_size"] = b.tokens.size();
    t["merges"] = b.merges.size();
    t["pre"] = b.pre_tokenizer;
    json specials = json::array();
    for (const AddedToken& a : b.added_tokens)
      specials.push_back({{"id", a.id}, {"content", a.content}, {"special", a.special}});
    t["added_tokens"] = specials;
    auto id = [](int32_t v) { return v < 0 ? json(nullptr) : json(v); };
    t["bos_id"] = id(b.bos_id);
    t["eos_id"] = id(b.eos_id);
    t["unk_id"] = id(b.unk_id);
    t["pad_id"] = id(b.pad_id);
  } else if (!m.tokenizer_json_path.empty()) {
    const std::string& path = m.tokenizer_json_path;
    json tok;
    try {
      tok = parse_bounded_json(read_regular_file(path, "tokenizer.json", kMaxTokenizerJsonBytes),
                               path);
    } catch (const json::exception& e) {
      throw_error(path, ": invalid JSON: ", quoted_excerpt(e.what(), 200));
    }
    SMOL_CHECK(tok.is_object(), path, ": not a JSON object");
    t["source"] = path;
    const json model = tok.value("model", json::object());
    t["type"] = model.is_object() ? text_field(model, "type", "?", path + ": model") : "?";
    if (model.is_object() && model.contains("vocab") && model["vocab"].is_object())
      t["vocab_size"] = model["vocab"].size();
    if (model.is_object() && model.contains("merges") && model["merges"].is_array())
      t["merges"] = model["merges"].size();
    const json pre = tok.value("pre_tokenizer", json());
    t["pre"] = pre.is_object() ? text_field(pre, "type", "?", path + ": pre_tokenizer") : "none";
    json specials = json::array();
    if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
      size_t index = 0;
      for (const json& a : tok["added_tokens"]) {
        const std::string where = path + ": added_tokens[" + std::to_string(index++) + "]";
        if (!a.is_object()) continue;
        const json id = a.value("id", json(-1));
        SMOL_CHECK(id.is_number_integer(), where, ": \"id\" must be an integer, not ",
                   id.type_name());
        const json special = a.value("special", json(false));
        SMOL_CHECK(special.is_boolean(), where, ": \"special\" must be true or false, not ",
                   special.type_name());
        specials.push_back(
            {{"id", id}, {"content", text_field(a, "content", "", where)}, {"special", special}});
      }
    }
    t["added_tokens"] = specials;
  } else {
    t["source"] = nullptr;
    t["type"] = "none";
  }
  return t;
}

json inspect_json(const LoadedModel& m) {
  json j;
  j["source"] = m.source;
  j["format"] = m.format;
  j["architecture"] = architecture_json(m.config);
  j["num_parameters"] = m.num_parameters();
  json tensors = json::array();
  // Model order (embedding, layer by layer, norm), not the map's lexicographic order.
  for (const auto& [name, expected_shape] : expected_llama_tensors(m.config)) {
    auto it = m.weights.find(name);
    if (it == m.weights.end()) continue;
    const HostTensor& t = it->second;
    tensors.push_back(
        {{"name", name},
         {"shape", std::vector<int64_t>(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank)},
         {"dtype", t.stored_dtype}});
  }
  j["tensors"] = tensors;
  j["tokenizer"] = tokenizer_json(m);
  j["chat_template"] = m.chat_template.empty() ? json(nullptr) : json(m.chat_template);
  return j;
}

void print_table(const json& j) {
  std::printf("source          %s\n", j["source"].get<std::string>().c_str());
  std::printf("format          %s\n", j["format"].get<std::string>().c_str());
  std::printf("\narchitecture\n");
  for (const auto& [key, value] : j["architecture"].items())
    std::printf("  %-26s %s\n", key.c_str(), value.dump().c_str());
  std::printf("  %-26s %s\n", "num_parameters", j["num_parameters"].dump().c_str());

  std::printf("\ntensors (%zu)\n", j["tensors"].size());
  for (const json& t : j["tensors"]) {
    std::string shape = "[";
    for (size_t i = 0; i < t["shape"].size(); ++i) shape += (i ? ", " : "") + t["shape"][i].dump();
    shape += "]";
    std::printf("  %-48s %-14s %s\n", t["name"].get<std::string>().c_str(), shape.c_str(),
                t["dtype"].get<std::string>().c_str());
  }

  const json& tok = j["tokenizer"];
  std::printf("\ntokenizer\n");
  for (const char* key :
       {"source", "type", "vocab_size", "merges", "pre", "bos_id", "eos_id", "unk_id", "pad_id"})
    if (tok.contains(key))
      std::printf(
          "  %-26s %s\n", key,
          tok[key].is_string() ? tok[key].get<std::string>().c_str() : tok[key].dump().c_str());
  if (tok.contains("added_tokens")) {
    std::string list;
    for (const json& a : tok["added_tokens"])
      list += (list.empty() ? "" : " ") + a["id"].dump() + ":" + a["content"].get<std::string>();
    std::printf("  %-26s %zu  %s\n", "added_tokens", tok["added_tokens"].size(), list.c_str());
  }
  std::printf(
      "  %-26s %s\n", "chat_template",
      j["chat_template"].is_null()
          ? "none"
          : ("present (" + std::to_string(j["chat_template"].get<std::string>().size()) + " chars)")
                .c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a model's architecture, parameter count, tensors and tokenizer");
  auto model = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("MODEL", *model, "a .gguf file, an HF model directory, or a hub repo id")
      ->required();
  cmd->add_flag("--json", *as_json, "print one JSON object instead of a table");
  cmd->callback([model, as_json] {
    const LoadedModel m = load_model(*model);
    const json j = inspect_json(m);
    if (*as_json)
      std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      print_table(j);
  });
}

}  // namespace smol
