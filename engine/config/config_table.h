// The machinery behind the run config: one table of key descriptors per section. A descriptor
// says everything about one key — its type, default, check, one-line doc, whether the engine
// acts on it (Used) or only accepts it (Ignored, with why) — and binds it to its typed field
// with a setter and a writer. One table then drives parsing (numeric strings such as "1e-5" are
// numbers, as yaml.safe_load handed the seed strings: docs/seed-behaviour.md §1), unknown-key
// errors with file:line and a "did you mean" suggestion, --set, validation, `smolengine config
// --help-keys` and to_yaml, so a key is written down once (docs/design.md §9).
//
// The tables themselves (which keys, which fields) live in engine/config/config_schema.cpp;
// run_config.cpp adds the checks that span several keys.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace smol {

struct RunConfig;

enum class ConfigType : uint8_t { Integer, Number, Boolean, String, StringList, Map, Enum };
const char* config_type_name(ConfigType type);  // "int", "number", "bool", "string", ...

// Used: the engine acts on the key. Ignored: accepted and type-checked, changes nothing; giving
// it adds "<key>: accepted, not acted on (<why>)" to RunConfig::warnings.
struct ConfigEffect {
  bool used = true;
  std::string why;
  static ConfigEffect Used() { return {true, ""}; }
  static ConfigEffect Ignored(std::string why) { return {false, std::move(why)}; }
};

// Where a value was given, for messages: "file:line" (or "file: --set 'k=v'") and the key.
struct ConfigSite {
  std::string at;
  std::string key;  // dotted: "training.learning_rate"
};

// A closed/open numeric interval; text() is how errors and --help-keys say it ("positive",
// ">= 0", "in [0, 1)").
struct NumberRange {
  std::optional<double> min, max;
  bool min_open = false, max_open = false;
  bool contains(double value) const;
  std::string text() const;
  bool empty() const { return !min && !max; }
};
NumberRange at_least(double min);
NumberRange positive();
NumberRange between(double min, double max, bool max_open = false);

// Typed reading of one value; each throws smol::Error "<at>: '<key>' must be ..., got ...".
// A scalar counts as a one-element string list (the seed's input_fields: question).
int64_t read_config_integer(const YAML::Node& value, const ConfigSite& site);
double read_config_number(const YAML::Node& value, const ConfigSite& site);
bool read_config_boolean(const YAML::Node& value, const ConfigSite& site);
std::string read_config_string(const YAML::Node& value, const ConfigSite& site);
std::vector<std::string> read_config_string_list(const YAML::Node& value, const ConfigSite& site);
std::string read_config_enum(const YAML::Node& value, const ConfigSite& site,
                             const std::vector<std::string>& choices);
// "<at>: <key> must be <range.text()>, got <value>" when outside.
void check_config_range(double value, const NumberRange& range, const ConfigSite& site);
// Type-checks `value` as `type` (what an Ignored key's reader does).
void check_config_type(ConfigType type, const YAML::Node& value, const ConfigSite& site,
                       const std::vector<std::string>& choices = {});

// YAML flow text, as to_yaml writes values: strings always double-quoted (JSON escapes, which
// YAML reads back), numbers in the shortest text that reads back to the same double.
std::string yaml_quoted(const std::string& text);
std::string yaml_number(double value);
std::string yaml_integer(int64_t value);
std::string yaml_boolean(bool value);
std::string yaml_string_list(const std::vector<std::string>& items);
std::string yaml_flow(const YAML::Node& value);  // a given value written back as one line
inline const char* const kYamlNull = "null";

struct ConfigKey {
  std::string name;
  ConfigType type = ConfigType::String;
  std::vector<std::string> choices;  // Enum
  std::string default_text;          // as --help-keys shows it ("required", "unset", ...)
  std::string check_text;            // "", "positive", "in [0, 1)", ...
  std::string doc;                   // one line
  ConfigEffect effect;
  std::string subsection;  // non-empty: the value is a mapping read by that section's table
  bool subsection_optional = false;  // absent optional subsection: its defaults are not applied
  std::string alias_of;              // sets the same field as this key of the same section
  // Reads a present, non-null value (type, check, store). Ignored keys only type-check.
  std::function<void(RunConfig&, const YAML::Node&, const ConfigSite&)> read;
  // Absent key: the table's default. derive_default runs after every key was read, for
  // defaults that follow another key (training.data_seed = training.seed).
  std::function<void(RunConfig&)> set_default;
  std::function<void(RunConfig&)> derive_default;
  // The resolved value as YAML flow text; for an optional subsection, whether it is written.
  std::function<std::string(const RunConfig&)> write;
  std::function<bool(const RunConfig&)> subsection_present;
};

struct ConfigSection {
  std::string prefix;  // "" = top level; "training"; "model.architecture"
  std::string doc;
  std::vector<ConfigKey> keys;
  const ConfigKey* find(const std::string& name) const;
  std::string dotted(const std::string& name) const {
    return prefix.empty() ? name : prefix + "." + name;
  }
};

struct ConfigSchema {
  std::vector<ConfigSection> sections;                            // the top level ("") first
  const ConfigSection& section(const std::string& prefix) const;  // throws if absent
};

// The closest name to `given` among `candidates`: edit distance <= 2 (transpositions count 1),
// else the one candidate `given` is a prefix of; "" when neither.
std::string nearest_config_key(const std::string& given, const std::vector<std::string>& names);
size_t config_edit_distance(const std::string& a, const std::string& b);

// The document a config came from: its file and the --set assignments applied to it, so that a
// value is reported where it was written.
struct ConfigSource {
  std::string file;
  std::vector<std::pair<std::string, std::string>> overrides;  // dotted path, assignment text
  // "--set 'k=v'" when an assignment wrote `dotted` (or a mapping above it), else file:line.
  std::string site_of(const YAML::Node& node, const std::string& dotted) const;
};

// What reading saw besides the fields: which keys were given, and the Ignored ones.
struct ConfigReadLog {
  std::set<std::string> given;                 // dotted keys with a non-null value
  std::vector<std::string> warnings;           // one per Ignored key given
  std::map<std::string, std::string> ignored;  // Ignored dotted key -> its value (yaml_flow)
};

// Refuses a document that is too big to walk (docs/design.md §9 "Untrusted input"): more than
// kMaxYamlNodes nodes counted the way a walk visits them, i.e. with every alias expanded (a
// "billion laughs" of nested aliases is 600 bytes of text but 10^9 nodes to a walk), or nested
// deeper than kMaxYamlDepth. A real run config has a few hundred nodes, 4 levels deep.
inline constexpr int64_t kMaxYamlNodes = 100'000;
inline constexpr int kMaxYamlDepth = 64;
void check_yaml_document_size(const YAML::Node& root, const std::string& where);

// Reads `root` (a mapping, or null) into `config` through the schema: unknown keys are errors
// with a suggestion, absent keys take the table's default, then derived defaults run.
void read_config(const ConfigSchema& schema, const YAML::Node& root, const ConfigSource& source,
                 RunConfig& config, ConfigReadLog& log);

// Throws when a --set path does not name a key of the schema (same message and suggestion as
// an unknown key in the file); paths below a free-form mapping (dataset.data_files.train) pass.
void check_config_path(const ConfigSchema& schema, const std::string& dotted,
                       const std::string& where);

// Every key of every section with its resolved value, as a YAML document; `ignored` gives the
// values of the Ignored keys that were set (the others are written as null).
std::string write_config_yaml(const ConfigSchema& schema, const RunConfig& config,
                              const std::map<std::string, std::string>& ignored);

// One row per key, every section, in table order.
struct ConfigKeyRow {
  std::string key, type, default_text, check, effect, doc;
};
std::vector<ConfigKeyRow> config_key_rows(const ConfigSchema& schema);
// A plain aligned table, or a Markdown table (for the README's key list).
std::string format_config_keys(const ConfigSchema& schema, bool markdown);

}  // namespace smol
