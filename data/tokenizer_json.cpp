// tokenizer.json parsing with nlohmann::json; every refusal names the file and the JSON path
// of the field ("model.type", "pre_tokenizer.pretokenizers[0]") so a user can see why.
#include "data/tokenizer_json.h"

#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/error.h"
#include "common/quote.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "data/byte_level.h"

namespace smol {
namespace {

using nlohmann::json;

json parse_json(const std::string& text, const std::string& source) {
  try {
    return parse_bounded_json(text, source);
  } catch (const json::exception& e) {
    throw_error(source, ": malformed JSON: ", e.what());
  }
}

// Value of `object[key]` as a string (or "" when null/missing if optional).
std::string string_field(const json& object, const char* key, const std::string& where,
                         const std::string& source) {
  const auto it = object.find(key);
  SMOL_CHECK(it != object.end() && it->is_string(), source, ": ", where, ".", key,
             " is missing or not a string");
  return it->get<std::string>();
}

bool is_null_or_absent(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null();
}

// ByteLevel pre-tokenizer settings we reproduce: regex on, no prefix space.
void check_byte_level(const json& node, const std::string& where, const std::string& source) {
  if (node.contains("add_prefix_space")) {
    SMOL_CHECK(node["add_prefix_space"].is_boolean() && !node["add_prefix_space"].get<bool>(),
               source, ": ", where, ".add_prefix_space = true is not supported");
  }
  if (node.contains("use_regex")) {
    SMOL_CHECK(node["use_regex"].is_boolean() && node["use_regex"].get<bool>(), source, ": ", where,
               ".use_regex = false is not supported");
  }
}

std::string node_type(const json& node, const std::string& where, const std::string& source) {
  SMOL_CHECK(node.is_object(), source, ": ", where, " is not an object");
  return string_field(node, "type", where, source);
}

// "smollm" or "gpt2" from the pre_tokenizer node.
std::string pre_tokenizer_flavour(const json& root, const std::string& source) {
  SMOL_CHECK(!is_null_or_absent(root, "pre_tokenizer"), source,
             ": pre_tokenizer is null; byte-level BPE needs a ByteLevel pre-tokenizer");
  const json& node = root["pre_tokenizer"];
  const std::string type = node_type(node, "pre_tokenizer", source);
  if (type == "ByteLevel") {
    check_byte_level(node, "pre_tokenizer", source);
    return "gpt2";
  }
  SMOL_CHECK(type == "Sequence", source, ": pre_tokenizer.type '", type,
             "' is not supported (ByteLevel, or Sequence[Digits, ByteLevel])");
  const auto it = node.find("pretokenizers");
  SMOL_CHECK(it != node.end() && it->is_array(), source,
             ": pre_tokenizer.pretokenizers is missing or not an array");
  const json& steps = *it;
  if (steps.size() == 1 &&
      node_type(steps[0], "pre_tokenizer.pretokenizers[0]", source) == "ByteLevel") {
    check_byte_level(steps[0], "pre_tokenizer.pretokenizers[0]", source);
    return "gpt2";
  }
  SMOL_CHECK(steps.size() == 2, source, ": pre_tokenizer.pretokenizers has ", steps.size(),
             " steps; supported: [ByteLevel] or [Digits, ByteLevel]");
  const std::string first = node_type(steps[0], "pre_tokenizer.pretokenizers[0]", source);
  SMOL_CHECK(first == "Digits", source, ": pre_tokenizer.pretokenizers[0].type '", first,
             "' is not supported (expected Digits)");
  SMOL_CHECK(steps[0].value("individual_digits", false), source,
             ": pre_tokenizer.pretokenizers[0] Digits without individual_digits is not "
             "supported");
  const std::string second = node_type(steps[1], "pre_tokenizer.pretokenizers[1]", source);
  SMOL_CHECK(second == "ByteLevel", source, ": pre_tokenizer.pretokenizers[1].type '", second,
             "' is not supported (expected ByteLevel)");
  check_byte_level(steps[1], "pre_tokenizer.pretokenizers[1]", source);
  return "smollm";
}

void check_model_options(const json& model, const BpeSpec& spec, const std::string& source) {
  SMOL_CHECK(is_null_or_absent(model, "dropout"), source,
             ": model.dropout is set; BPE dropout is not supported");
  SMOL_CHECK(!model.value("byte_fallback", false), source,
             ": model.byte_fallback = true is not supported for byte-level BPE");
  SMOL_CHECK(!model.value("ignore_merges", false), source,
             ": model.ignore_merges = true is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    const bool unset =
        it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
    SMOL_CHECK(unset, source, ": model.", key, " is set; not supported for byte-level BPE");
  }
  // An unk_token only changes results when some byte has no token: we always drop such bytes
  // (docs/formats.md §5), so refuse the combination rather than tokenise differently.
  if (!is_null_or_absent(model, "unk_token")) {
    const ByteLevelMap& map = byte_level_map();
    const std::unordered_set<std::string> vocab(spec.tokens.begin(), spec.tokens.end());
    for (int b = 0; b < 256; ++b) {
      const bool found = vocab.count(map.char_utf8_of(static_cast<uint8_t>(b))) > 0;
      SMOL_CHECK(found, source, ": model.unk_token is set and byte ", b,
                 " has no token; unknown-token output is not supported");
    }
  }
}

BpeSpec parse_tokenizer_fields(const std::string& json_text, const std::string& source);

}  // namespace

// Every field is checked where it is read; a value of a wrong JSON type that a check misses
// still ends as one Error naming the file, never as nlohmann's bare type_error
// (docs/bad-inputs.md).
BpeSpec parse_tokenizer_json(const std::string& json_text, const std::string& source) {
  try {
    return parse_tokenizer_fields(json_text, source);
  } catch (const json::exception& e) {
    throw_error(source, ": a field has the wrong JSON type: ", quoted_excerpt(e.what(), 200));
  }
}

namespace {

BpeSpec parse_tokenizer_fields(const std::string& json_text, const std::string& source) {
  const json root = parse_json(json_text, source);
  SMOL_CHECK(root.is_object(), source, ": top level is not a JSON object");
  BpeSpec spec;

  SMOL_CHECK(is_null_or_absent(root, "normalizer"), source, ": normalizer '",
             root["normalizer"].is_object() ? root["normalizer"].value("type", "?") : "?",
             "' is not supported (only null)");
  SMOL_CHECK(root.contains("model") && root["model"].is_object(), source,
             ": model is missing or not an object");
  const json& model = root["model"];
  const std::string type = node_type(model, "model", source);
  SMOL_CHECK(type == "BPE", source, ": model.type '", type,
             "' is not supported (only BPE; WordPiece, Unigram and WordLevel are not)");

  // vocab: {token: id}, must be dense 0..n-1.
  const auto vocab_it = model.find("vocab");
  SMOL_CHECK(vocab_it != model.end() && vocab_it->is_object(), source,
             ": model.vocab is missing or not an object");
  spec.tokens.resize(vocab_it->size());
  std::vector<bool> seen(vocab_it->size(), false);
  for (const auto& [token, id_node] : vocab_it->items()) {
    SMOL_CHECK(id_node.is_number_integer(), source, ": model.vocab[", quoted_excerpt(token),
               "] is not an integer id");
    const int64_t id = id_node.get<int64_t>();
    SMOL_CHECK(id >= 0 && id < static_cast<int64_t>(spec.tokens.size()) && !seen[id], source,
               ": model.vocab[", quoted_excerpt(token), "] = ", id,
               " is out of range or repeated (ids must be "
               "0..",
               spec.tokens.size() - 1, ", each once)");
    seen[id] = true;
    spec.tokens[id] = token;
  }

  // merges: "a b" strings (split at the first space... tokenizers splits on ' ' and requires
  // exactly two parts) or ["a", "b"] pairs.
  const auto merges_it = model.find("merges");
  SMOL_CHECK(merges_it != model.end() && merges_it->is_array(), source,
             ": model.merges is missing or not an array");
  spec.merges.reserve(merges_it->size());
  for (size_t rank = 0; rank < merges_it->size(); ++rank) {
    const json& merge = (*merges_it)[rank];
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      SMOL_CHECK(space != std::string::npos && text.find(' ', space + 1) == std::string::npos,
                 source, ": model.merges[", rank, "] = ", quoted_excerpt(text),
                 " is not two tokens separated by one space");
      spec.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else {
      SMOL_CHECK(
          merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
          source, ": model.merges[", rank, "] is neither \"a b\" nor [\"a\", \"b\"]");
      spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    }
  }
  check_model_options(model, spec, source);

  if (!is_null_or_absent(root, "added_tokens")) {
    const json& added_tokens = root["added_tokens"];
    SMOL_CHECK(added_tokens.is_array(), source, ": added_tokens is not an array");
    // An added token's id is either a vocabulary id or one just past it: the ids stay below the
    // number of entries the file holds, so a huge id cannot size the id table (a 10 KB file once
    // took 3 GB that way; docs/design.md §9 "Untrusted input").
    const int64_t id_limit = static_cast<int64_t>(spec.tokens.size() + added_tokens.size());
    for (size_t i = 0; i < added_tokens.size(); ++i) {
      const json& node = added_tokens[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      SMOL_CHECK(node.is_object() && node.contains("id") && node["id"].is_number_integer(), source,
                 ": ", where, ".id is missing or not an integer");
      const json& id_node = node["id"];
      const bool in_range = id_node.is_number_unsigned()
                                ? id_node.get<uint64_t>() < static_cast<uint64_t>(id_limit)
                                : id_node.get<int64_t>() >= 0 && id_node.get<int64_t>() < id_limit;
      SMOL_CHECK(in_range, source, ": ", where, ".id = ", id_node.dump(), " is outside [0, ",
                 id_limit, ") (the vocabulary's ids plus one per added token)");
      AddedToken added;
      added.id = static_cast<int32_t>(id_node.get<int64_t>());
      added.content = string_field(node, "content", where, source);
      added.special = node.value("special", false);
      for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
        SMOL_CHECK(!node.value(flag, false), source, ": ", where, ".", flag,
                   " = true is not supported");
      }
      spec.added_tokens.push_back(std::move(added));
    }
  }

  spec.pre_tokenizer = pre_tokenizer_flavour(root, source);
  for (const char* key : {"decoder", "post_processor"}) {
    if (is_null_or_absent(root, key)) continue;
    const std::string t = node_type(root[key], key, source);
    SMOL_CHECK(t == "ByteLevel", source, ": ", key, ".type '", t,
               "' is not supported (only ByteLevel or null)");
  }
  return spec;
}

}  // namespace

BpeSpec read_tokenizer_json(const std::string& path) {
  return parse_tokenizer_json(read_regular_file(path, "tokenizer.json", kMaxTokenizerJsonBytes),
                              path);
}

void read_hf_tokenizer_config(const std::string& path, BpeSpec& spec) {
  const json root =
      parse_json(read_regular_file(path, "tokenizer_config.json", kMaxSmallJsonBytes), path);
  SMOL_CHECK(root.is_object(), path, ": top level is not a JSON object");
  const auto id_of = [&](const char* key) -> int32_t {
    if (is_null_or_absent(root, key)) return -1;
    const json& node = root[key];
    std::string content;
    if (node.is_string()) {
      content = node.get<std::string>();
    } else {
      SMOL_CHECK(node.is_object() && node.contains("content") && node["content"].is_string(), path,
                 ": ", key, " is neither a string nor {\"content\": ...}");
      content = node["content"].get<std::string>();
    }
    for (const AddedToken& added : spec.added_tokens) {
      if (added.content == content) return added.id;
    }
    for (size_t id = 0; id < spec.tokens.size(); ++id) {
      if (spec.tokens[id] == content) return static_cast<int32_t>(id);
    }
    throw_error(path, ": ", key, " ", quoted_excerpt(content), " is not a token of the vocabulary");
  };
  spec.bos_id = id_of("bos_token");
  spec.eos_id = id_of("eos_token");
  spec.pad_id = id_of("pad_token");
  spec.unk_id = id_of("unk_token");
  if (root.contains("chat_template") && root["chat_template"].is_string()) {
    spec.chat_template = root["chat_template"].get<std::string>();
  }
}

std::string write_tokenizer_json(const BpeSpec& spec, bool merges_as_pairs) {
  json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  json added = json::array();
  for (const AddedToken& t : spec.added_tokens) {
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", t.special}});
  }
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", true}};
  if (spec.pre_tokenizer == "smollm") {
    root["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}};
  } else {
    SMOL_CHECK(spec.pre_tokenizer == "gpt2", "write_tokenizer_json: pre-tokenizer '",
               spec.pre_tokenizer, "' has no tokenizer.json form");
    root["pre_tokenizer"] = byte_level;
  }
  root["post_processor"] = byte_level;
  root["decoder"] = byte_level;
  json vocab = json::object();
  for (size_t id = 0; id < spec.tokens.size(); ++id) vocab[spec.tokens[id]] = id;
  json merges = json::array();
  for (const auto& [left, right] : spec.merges) {
    if (merges_as_pairs) {
      merges.push_back(json::array({left, right}));
    } else {
      merges.push_back(left + " " + right);
    }
  }
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", false},
                   {"vocab", vocab},
                   {"merges", merges}};
  return root.dump();
}

}  // namespace smol
