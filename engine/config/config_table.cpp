// The descriptor-table machinery (see config_table.h): typed value reading, suggestions for
// unknown keys, reading a document section by section, --set path checks, writing every key
// back as YAML, and the --help-keys table.
#include "engine/config/config_table.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/error.h"

namespace smol {

namespace {

std::string describe(const YAML::Node& value) {
  if (value.IsMap()) return "a mapping";
  if (value.IsSequence()) return "a list";
  if (!value.IsDefined() || value.IsNull()) return "nothing";
  return "'" + value.Scalar() + "'";
}

bool is_bool_text(const std::string& s) {
  static const std::set<std::string> words = {"true",  "True", "TRUE", "false", "False",
                                              "FALSE", "yes",  "Yes",  "no",    "No",
                                              "on",    "On",   "off",  "Off"};
  return words.count(s) > 0;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

std::vector<std::string> split_dotted(const std::string& dotted) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t dot = dotted.find('.', begin);
    parts.push_back(
        dotted.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) return parts;
    begin = dot + 1;
  }
}

// "(did you mean 'x.y'?)": the nearest key of the same section, else the same name in another
// section (training.lora_r -> peft.lora_r).
std::string suggestion(const ConfigSchema& schema, const ConfigSection& section,
                       const std::string& name) {
  std::vector<std::string> names;
  for (const ConfigKey& key : section.keys) names.push_back(key.name);
  const std::string nearest = nearest_config_key(name, names);
  if (!nearest.empty()) return " (did you mean '" + section.dotted(nearest) + "'?)";
  for (const ConfigSection& other : schema.sections)
    if (&other != &section && other.find(name))
      return " (did you mean '" + other.dotted(name) + "'?)";
  return "";
}

[[noreturn]] void throw_unknown_key(const ConfigSchema& schema, const ConfigSection& section,
                                    const std::string& name, const std::string& at) {
  throw_error(at, ": unknown key '", section.dotted(name), "'", suggestion(schema, section, name));
}

void read_section(const ConfigSchema& schema, const ConfigSection& section, const YAML::Node& node,
                  const ConfigSource& source, RunConfig& config, ConfigReadLog& log,
                  std::vector<const ConfigKey*>& derived) {
  const bool present = node.IsDefined() && !node.IsNull();
  if (present) {
    SMOL_CHECK(node.IsMap(), source.site_of(node, section.prefix), ": '",
               section.prefix.empty() ? "the config" : section.prefix,
               "' must be a mapping of keys to values, got ", describe(node));
    for (const auto& item : node) {
      SMOL_CHECK(item.first.IsScalar(), source.site_of(item.first, section.prefix), ": a key of '",
                 section.prefix, "' is not a name");
      const std::string name = item.first.Scalar();
      if (!section.find(name))
        throw_unknown_key(schema, section, name, source.site_of(item.first, section.dotted(name)));
    }
  }
  for (const ConfigKey& key : section.keys) {
    const std::string dotted = section.dotted(key.name);
    const YAML::Node value = present ? node[key.name] : YAML::Node();
    const bool given = value.IsDefined() && !value.IsNull();
    if (!key.subsection.empty()) {
      if (given) log.given.insert(dotted);
      if (given || !key.subsection_optional)
        read_section(schema, schema.section(key.subsection), value, source, config, log, derived);
      continue;
    }
    if (!given) {
      if (key.set_default) key.set_default(config);
      if (key.derive_default) derived.push_back(&key);
      continue;
    }
    log.given.insert(dotted);
    const ConfigSite site{source.site_of(value, dotted), dotted};
    if (!key.effect.used) {
      key.read(config, value, site);
      log.warnings.push_back(dotted + ": accepted, not acted on (" + key.effect.why + ")");
      log.ignored[dotted] = yaml_flow(value);
      continue;
    }
    if (!key.alias_of.empty()) {
      const ConfigKey* target = section.find(key.alias_of);
      SMOL_CHECK(target != nullptr, "config table: ", dotted, " aliases an unknown key");
      const std::string before = target->write(config);
      key.read(config, value, site);
      const std::string after = target->write(config);
      SMOL_CHECK(!log.given.count(section.dotted(key.alias_of)) || before == after, site.at, ": '",
                 dotted, "' (an alias of '", section.dotted(key.alias_of), "') is ", after,
                 " but '", section.dotted(key.alias_of), "' is ", before, "; give one of them");
      continue;
    }
    key.read(config, value, site);
  }
}

void write_section(const ConfigSchema& schema, const ConfigSection& section,
                   const RunConfig& config, const std::map<std::string, std::string>& ignored,
                   const std::string& indent, std::string& out) {
  for (const ConfigKey& key : section.keys) {
    const std::string dotted = section.dotted(key.name);
    if (!key.subsection.empty()) {
      if (key.subsection_optional && !key.subsection_present(config)) {
        out += indent + key.name + ": " + kYamlNull + "\n";
        continue;
      }
      if (indent.empty() && !out.empty()) out += "\n";
      out += indent + key.name + ":\n";
      write_section(schema, schema.section(key.subsection), config, ignored, indent + "  ", out);
      continue;
    }
    std::string value = kYamlNull;
    if (!key.effect.used) {
      const auto it = ignored.find(dotted);
      if (it != ignored.end()) value = it->second;
    } else if (key.alias_of.empty()) {
      value = key.write(config);
    }
    out += indent + key.name + ": " + value + "\n";
  }
}

}  // namespace

const char* config_type_name(ConfigType type) {
  switch (type) {
    case ConfigType::Integer:
      return "int";
    case ConfigType::Number:
      return "number";
    case ConfigType::Boolean:
      return "bool";
    case ConfigType::String:
      return "string";
    case ConfigType::StringList:
      return "string list";
    case ConfigType::Map:
      return "map";
    case ConfigType::Enum:
      return "enum";
  }
  return "?";
}

// ---- ranges -----------------------------------------------------------------------------------

bool NumberRange::contains(double value) const {
  if (min && (min_open ? value <= *min : value < *min)) return false;
  if (max && (max_open ? value >= *max : value > *max)) return false;
  return true;
}

std::string NumberRange::text() const {
  if (min && !max) {
    if (*min == 0 && min_open) return "positive";
    return (min_open ? "> " : ">= ") + yaml_number(*min);
  }
  if (max && !min) return (max_open ? "< " : "<= ") + yaml_number(*max);
  if (!min && !max) return "";
  return std::string("in ") + (min_open ? "(" : "[") + yaml_number(*min) + ", " +
         yaml_number(*max) + (max_open ? ")" : "]");
}

NumberRange at_least(double min) {
  NumberRange r;
  r.min = min;
  return r;
}

NumberRange positive() {
  NumberRange r;
  r.min = 0;
  r.min_open = true;
  return r;
}

NumberRange between(double min, double max, bool max_open) {
  NumberRange r;
  r.min = min;
  r.max = max;
  r.max_open = max_open;
  return r;
}

// ---- typed reading ----------------------------------------------------------------------------

namespace {

// `kind` names what was expected ("a number", "an integer") in the message.
double parse_number(const YAML::Node& value, const ConfigSite& site, const char* kind) {
  const std::string text = value.IsScalar() ? value.Scalar() : "";
  SMOL_CHECK(value.IsScalar() && !text.empty() && !is_bool_text(text), site.at, ": '", site.key,
             "' must be ", kind, ", got ", describe(value));
  // Numeric strings such as "1e-5" are numbers (yaml.safe_load gave the seed strings).
  errno = 0;
  char* end = nullptr;
  const double parsed = std::strtod(text.c_str(), &end);
  SMOL_CHECK(end != text.c_str() && *end == '\0' && errno == 0 && std::isfinite(parsed), site.at,
             ": '", site.key, "' must be ", kind, ", got '", text, "'");
  return parsed;
}

}  // namespace

double read_config_number(const YAML::Node& value, const ConfigSite& site) {
  return parse_number(value, site, "a number");
}

int64_t read_config_integer(const YAML::Node& value, const ConfigSite& site) {
  const double parsed = parse_number(value, site, "an integer");
  SMOL_CHECK(parsed == std::floor(parsed) && std::fabs(parsed) < 9e15, site.at, ": '", site.key,
             "' must be an integer, got '", value.Scalar(), "'");
  return static_cast<int64_t>(parsed);
}

bool read_config_boolean(const YAML::Node& value, const ConfigSite& site) {
  SMOL_CHECK(value.IsScalar() && is_bool_text(value.Scalar()), site.at, ": '", site.key,
             "' must be true or false, got ", describe(value));
  return value.as<bool>();
}

std::string read_config_string(const YAML::Node& value, const ConfigSite& site) {
  SMOL_CHECK(value.IsScalar(), site.at, ": '", site.key, "' must be a string, got ",
             describe(value));
  return value.Scalar();
}

std::vector<std::string> read_config_string_list(const YAML::Node& value, const ConfigSite& site) {
  if (value.IsScalar()) return {value.Scalar()};
  SMOL_CHECK(value.IsSequence(), site.at, ": '", site.key, "' must be a list of strings, got ",
             describe(value));
  std::vector<std::string> out;
  for (const auto& item : value) {
    SMOL_CHECK(item.IsScalar(), site.at, ": '", site.key, "' must hold strings only, got ",
               describe(item));
    out.push_back(item.Scalar());
  }
  return out;
}

std::string read_config_enum(const YAML::Node& value, const ConfigSite& site,
                             const std::vector<std::string>& choices) {
  const std::string text = read_config_string(value, site);
  SMOL_CHECK(std::find(choices.begin(), choices.end(), text) != choices.end(), site.at, ": '",
             site.key, "' must be one of ", join(choices, ", "), "; got '", text, "'");
  return text;
}

void check_config_range(double value, const NumberRange& range, const ConfigSite& site) {
  SMOL_CHECK(range.contains(value), site.at, ": ", site.key, " must be ", range.text(), ", got ",
             yaml_number(value));
}

void check_config_type(ConfigType type, const YAML::Node& value, const ConfigSite& site,
                       const std::vector<std::string>& choices) {
  switch (type) {
    case ConfigType::Integer:
      read_config_integer(value, site);
      return;
    case ConfigType::Number:
      read_config_number(value, site);
      return;
    case ConfigType::Boolean:
      read_config_boolean(value, site);
      return;
    case ConfigType::String:
      read_config_string(value, site);
      return;
    case ConfigType::StringList:
      read_config_string_list(value, site);
      return;
    case ConfigType::Map:
      SMOL_CHECK(value.IsMap(), site.at, ": '", site.key, "' must be a mapping, got ",
                 describe(value));
      return;
    case ConfigType::Enum:
      read_config_enum(value, site, choices);
      return;
  }
}

// ---- YAML text --------------------------------------------------------------------------------

std::string yaml_quoted(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += ch;  // UTF-8 bytes pass through
        }
    }
  }
  return out + "\"";
}

std::string yaml_number(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string yaml_integer(int64_t value) {
  return std::to_string(value);
}

std::string yaml_boolean(bool value) {
  return value ? "true" : "false";
}

std::string yaml_string_list(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(yaml_quoted(item));
  return "[" + join(quoted, ", ") + "]";
}

void check_yaml_document_size(const YAML::Node& root, const std::string& where) {
  // Iterative, so that the walk itself cannot overflow the stack; it stops at the first limit,
  // so its cost is bounded by kMaxYamlNodes whatever the aliases multiply.
  std::vector<std::pair<YAML::Node, int>> pending{{root, 0}};
  int64_t visited = 0;
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    SMOL_CHECK(++visited <= kMaxYamlNodes, where, ": the YAML document has more than ",
               kMaxYamlNodes,
               " nodes once its aliases are expanded (refused: a run config has a few hundred)");
    SMOL_CHECK(depth <= kMaxYamlDepth, where, ": the YAML document nests deeper than ",
               kMaxYamlDepth, " levels");
    if (node.IsSequence()) {
      for (const YAML::Node& item : node) pending.emplace_back(item, depth + 1);
    } else if (node.IsMap()) {
      for (const auto& item : node) {
        pending.emplace_back(item.first, depth + 1);
        pending.emplace_back(item.second, depth + 1);
      }
    }
  }
}

std::string yaml_flow(const YAML::Node& value) {
  if (!value.IsDefined() || value.IsNull()) return kYamlNull;
  if (value.IsScalar()) {
    const std::string& text = value.Scalar();
    const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
             c == '+' || c == '/';
    });
    return plain ? text : yaml_quoted(text);
  }
  std::vector<std::string> items;
  if (value.IsSequence()) {
    for (const auto& item : value) items.push_back(yaml_flow(item));
    return "[" + join(items, ", ") + "]";
  }
  for (const auto& item : value)
    items.push_back(yaml_flow(item.first) + ": " + yaml_flow(item.second));
  return "{" + join(items, ", ") + "}";
}

// ---- tables -----------------------------------------------------------------------------------

const ConfigKey* ConfigSection::find(const std::string& name) const {
  for (const ConfigKey& key : keys)
    if (key.name == name) return &key;
  return nullptr;
}

const ConfigSection& ConfigSchema::section(const std::string& prefix) const {
  for (const ConfigSection& s : sections)
    if (s.prefix == prefix) return s;
  throw_error("config table: no section '", prefix, "'");
}

size_t config_edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: insertions, deletions, substitutions, adjacent transpositions.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string nearest_config_key(const std::string& given, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = 3;  // only distances <= 2 are suggested
  for (const std::string& name : names) {
    const size_t distance = config_edit_distance(given, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  if (!best.empty() || given.empty()) return best;
  std::vector<std::string> extending;
  for (const std::string& name : names)
    if (name.rfind(given, 0) == 0) extending.push_back(name);
  return extending.size() == 1 ? extending.front() : "";
}

// ---- sources, reading, writing ----------------------------------------------------------------

std::string ConfigSource::site_of(const YAML::Node& node, const std::string& dotted) const {
  for (auto it = overrides.rbegin(); it != overrides.rend(); ++it) {
    const std::string& path = it->first;
    if (dotted == path || dotted.rfind(path + ".", 0) == 0)
      return file + ": --set '" + it->second + "'";
  }
  if (node.IsDefined() && node.Mark().line >= 0)
    return file + ":" + std::to_string(node.Mark().line + 1);
  return file;
}

void read_config(const ConfigSchema& schema, const YAML::Node& root, const ConfigSource& source,
                 RunConfig& config, ConfigReadLog& log) {
  std::vector<const ConfigKey*> derived;
  read_section(schema, schema.section(""), root, source, config, log, derived);
  for (const ConfigKey* key : derived) key->derive_default(config);
}

void check_config_path(const ConfigSchema& schema, const std::string& dotted,
                       const std::string& where) {
  const std::vector<std::string> parts = split_dotted(dotted);
  const ConfigSection* section = &schema.section("");
  for (size_t i = 0; i < parts.size(); ++i) {
    SMOL_CHECK(!parts[i].empty(), where, ": '", dotted, "' has an empty key part");
    const ConfigKey* key = section->find(parts[i]);
    if (!key) throw_unknown_key(schema, *section, parts[i], where);
    if (!key->subsection.empty()) {
      section = &schema.section(key->subsection);
      continue;
    }
    if (key->type == ConfigType::Map) return;  // a free-form mapping: any path below it
    SMOL_CHECK(i + 1 == parts.size(), where, ": '", section->dotted(parts[i]), "' is a ",
               config_type_name(key->type), ", not a mapping with '", parts[i + 1], "'");
  }
}

std::string write_config_yaml(const ConfigSchema& schema, const RunConfig& config,
                              const std::map<std::string, std::string>& ignored) {
  std::string out;
  write_section(schema, schema.section(""), config, ignored, "", out);
  return out;
}

std::vector<ConfigKeyRow> config_key_rows(const ConfigSchema& schema) {
  std::vector<ConfigKeyRow> rows;
  for (const ConfigSection& section : schema.sections)
    for (const ConfigKey& key : section.keys) {
      ConfigKeyRow row;
      row.key = section.dotted(key.name);
      row.type = config_type_name(key.type);
      row.default_text = key.default_text;
      row.check = key.type == ConfigType::Enum ? join(key.choices, ", ") : key.check_text;
      if (key.type == ConfigType::Enum && !key.check_text.empty())
        row.check += "; " + key.check_text;
      row.effect = key.effect.used ? "used" : "ignored: " + key.effect.why;
      row.doc = key.doc;
      rows.push_back(row);
    }
  return rows;
}

std::string format_config_keys(const ConfigSchema& schema, bool markdown) {
  const std::vector<ConfigKeyRow> rows = config_key_rows(schema);
  std::ostringstream out;
  if (markdown) {
    auto cell = [](const std::string& text) {
      std::string escaped;
      for (const char c : text) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
      return escaped;
    };
    out << "| key | type | default | check | effect | meaning |\n";
    out << "|---|---|---|---|---|---|\n";
    for (const ConfigKeyRow& row : rows)
      out << "| `" << row.key << "` | " << row.type << " | " << cell(row.default_text) << " | "
          << cell(row.check) << " | " << cell(row.effect) << " | " << cell(row.doc) << " |\n";
    return out.str();
  }
  const ConfigKeyRow header{"KEY", "TYPE", "DEFAULT", "CHECK", "EFFECT", "MEANING"};
  size_t widths[4] = {header.key.size(), header.type.size(), header.default_text.size(),
                      header.check.size()};
  for (const ConfigKeyRow& row : rows) {
    widths[0] = std::max(widths[0], row.key.size());
    widths[1] = std::max(widths[1], row.type.size());
    widths[2] = std::max(widths[2], std::min<size_t>(row.default_text.size(), 24));
    widths[3] = std::max(widths[3], std::min<size_t>(row.check.size(), 28));
  }
  auto pad = [](const std::string& text, size_t width) {
    return text.size() >= width ? text + " " : text + std::string(width - text.size() + 1, ' ');
  };
  auto line = [&](const ConfigKeyRow& row, const std::string& effect) {
    out << pad(row.key, widths[0]) << pad(row.type, widths[1]) << pad(row.default_text, widths[2])
        << pad(row.check, widths[3]) << pad(effect, 7) << row.doc << "\n";
  };
  line(header, header.effect);
  for (const ConfigKeyRow& row : rows) {
    const bool used = row.effect == "used";
    ConfigKeyRow shown = row;
    if (!used) shown.doc += " (" + row.effect + ")";
    line(shown, used ? "used" : "ignored");
  }
  return out.str();
}

}  // namespace smol
