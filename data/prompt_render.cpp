// Field inference, format_map and prompt/response rendering (see prompt_render.h).
#include "data/prompt_render.h"

#include <algorithm>

#include "common/error.h"
#include "data/python_str.h"

namespace smol {

namespace {

const char* const kTargetCandidates[] = {"response",   "answer", "output", "target",
                                         "completion", "text",   "label"};
const char* const kInputCandidates[] = {"instruction", "input",  "question", "query",
                                        "context",     "prompt", "text"};

// The text of a needed cell: null -> "" (seed: str(None) is avoided, None -> ""), absent ->
// an error naming where.
std::string cell_text(const Dataset& dataset, int64_t row, const std::string& field) {
  const DatasetCell& cell = dataset.cell(row, field);
  SMOL_CHECK(cell.state != DatasetCell::State::Absent, dataset.where(row), ": missing field '",
             field, "'");
  return cell.state == DatasetCell::State::Text ? cell.text : std::string();
}

}  // namespace

std::string format_map(const std::string& format, const std::map<std::string, std::string>& values,
                       const std::string& where) {
  std::string out;
  out.reserve(format.size());
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      SMOL_CHECK(i + 1 < format.size() && format[i + 1] == '}', where,
                 ": single '}' encountered in template at offset ", i,
                 " (write '}}' for a literal brace)");
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    // A replacement field: up to the matching '}' (Python counts nested braces there).
    size_t depth = 1, j = i + 1;
    for (; j < format.size() && depth > 0; ++j) {
      if (format[j] == '{') ++depth;
      if (format[j] == '}') --depth;
    }
    SMOL_CHECK(depth == 0, where, ": expected '}' before end of template (field opened at offset ",
               i, ")");
    std::string field = format.substr(i + 1, j - i - 2);
    i = j - 1;
    const size_t colon = field.find(':');
    const size_t bang = field.find('!');
    SMOL_CHECK(colon == std::string::npos, where, ": template field '{", field,
               "}' has a format spec, which is not supported");
    if (bang != std::string::npos) {
      SMOL_CHECK(field.substr(bang) == "!s", where, ": template field '{", field,
                 "}': only the !s conversion is supported");
      field.resize(bang);
    }
    SMOL_CHECK(
        !field.empty() && !std::all_of(field.begin(), field.end(),
                                       [](unsigned char ch) { return ch >= '0' && ch <= '9'; }),
        where, ": template field '{", field, "}' is positional; name a field instead");
    SMOL_CHECK(field.find_first_of(".[") == std::string::npos, where, ": template field '{", field,
               "}' uses attribute or index access, which is not supported");
    const auto found = values.find(field);
    if (found != values.end()) out += found->second;  // missing -> "" (docs/seed-behaviour.md §2.3)
  }
  return out;
}

ResolvedFields resolve_fields(const Dataset& dataset, const PromptFormat& format) {
  ResolvedFields fields;
  if (!format.target_field.empty()) {
    SMOL_CHECK(dataset.has_column(format.target_field), dataset.source, ": dataset.target_field '",
               format.target_field, "' is not a column");
    fields.target = format.target_field;
  } else {
    for (const char* candidate : kTargetCandidates)
      if (dataset.has_column(candidate)) {
        fields.target = candidate;
        break;
      }
    SMOL_CHECK(!fields.target.empty(), dataset.source,
               ": cannot infer the target field (no column response, answer, output, target, "
               "completion, text or label); set dataset.target_field");
  }
  if (!format.input_fields.empty()) {
    for (const std::string& field : format.input_fields) {
      SMOL_CHECK(field != fields.target, dataset.source, ": dataset.input_fields lists '", field,
                 "', the target field: the answer would leak into the prompt");
      SMOL_CHECK(dataset.has_column(field), dataset.source, ": dataset.input_fields entry '", field,
                 "' is not a column");
    }
    fields.inputs = format.input_fields;
  } else {
    for (const char* candidate : kInputCandidates)
      if (candidate != fields.target && dataset.has_column(candidate))
        fields.inputs.push_back(candidate);
    if (fields.inputs.empty())
      for (const std::string& column : dataset.columns)
        if (column != fields.target) fields.inputs.push_back(column);
  }
  return fields;
}

std::optional<RenderedExample> render_example(const Dataset& dataset, int64_t row,
                                              const ResolvedFields& fields,
                                              const PromptFormat& format) {
  const DatasetCell& target = dataset.cell(row, fields.target);
  SMOL_CHECK(target.state != DatasetCell::State::Absent, dataset.where(row), ": missing field '",
             fields.target, "'");
  if (target.state == DatasetCell::State::Null) return std::nullopt;

  std::map<std::string, std::string> inputs;
  for (const std::string& field : fields.inputs) inputs[field] = cell_text(dataset, row, field);

  RenderedExample example;
  if (format.prompt_template) {
    example.prompt = format_map(*format.prompt_template, inputs, "dataset.prompt_template");
  } else {
    for (const std::string& field : fields.inputs) {
      const std::string& value = inputs[field];
      if (value.empty()) continue;
      if (!example.prompt.empty()) example.prompt += "\n\n";
      example.prompt += field + ": " + value;
    }
  }
  if (format.strip_prompt) example.prompt = std::string(python_strip(example.prompt));

  std::map<std::string, std::string> response_values = inputs;
  response_values["target"] = target.text;
  example.response = std::string(python_strip(
      format_map(format.response_template, response_values, "dataset.response_template")));
  return example;
}

}  // namespace smol
