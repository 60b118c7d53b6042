// Prompt rendering (docs/seed-behaviour.md §2.2–2.3): which fields are the input and the target,
// and the prompt / response text of one dataset row.
//
// Field inference (§2.2): target = target_field, else the first existing column among
// response, answer, output, target, completion, text, label. Inputs = input_fields, else the
// existing columns among instruction, input, question, query, context, prompt, text (in that
// order), else every non-target column. The target is never an input (B4: the target must
// never leak into the prompt), so naming it in input_fields is an error.
//
// Rendering (§2.3): values are the row's text (null → ""); a row whose target is null is
// dropped. prompt = prompt_template.format_map(inputs only), a placeholder naming anything
// else — the target included, as the MetaMath template's {response} — renders as "" (B4);
// without a template, the non-empty "field: value" pairs joined by blank lines; stripped when
// strip_prompt. response = response_template.format_map(inputs + {target}), stripped. Values
// are inserted verbatim, so braces inside them are safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace smol {

struct PromptFormat {
  std::vector<std::string> input_fields;       // empty = infer
  std::string target_field;                    // empty = infer
  std::optional<std::string> prompt_template;  // none = "field: value" pairs
  std::string response_template = "{target}";
  bool strip_prompt = true;
  bool operator==(const PromptFormat&) const = default;
};

struct ResolvedFields {
  std::vector<std::string> inputs;
  std::string target;
};

// Throws naming the dataset file when a configured field is not a column, none can be
// inferred, or the target is also listed as an input.
ResolvedFields resolve_fields(const Dataset& dataset, const PromptFormat& format);

struct RenderedExample {
  std::string prompt;
  std::string response;
};

// nullopt when the row's target is null. A row without one of the needed keys throws naming
// file:line, the row and the field.
std::optional<RenderedExample> render_example(const Dataset& dataset, int64_t row,
                                              const ResolvedFields& fields,
                                              const PromptFormat& format);

// Python's str.format_map(values) where a missing key gives "": "{name}" is replaced,
// "{{" / "}}" are literal braces; "{name!s}" is accepted. Positional fields ("{}", "{0}"),
// attribute / index access, conversions other than !s and format specs are refused with
// smol::Error naming `where`, as are a lone '}' and an unclosed '{' (Python raises too).
std::string format_map(const std::string& format, const std::map<std::string, std::string>& values,
                       const std::string& where);

}  // namespace smol
