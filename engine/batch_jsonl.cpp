// Reading micro-batches from JSON lines (see batch_jsonl.h).
#include "engine/batch_jsonl.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/quote.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"

namespace smol {

namespace {

// An id or label as written, checked before any narrowing (docs/bad-inputs.md): nlohmann keeps
// integers above INT64_MAX as unsigned, and get<int64_t>() of 18446744073709551516 would
// wrap to -100 — a huge label silently "not supervised". Only values that are exactly -100 or
// a token id below `vocab_size` pass.
int32_t read_id(const nlohmann::json& value, const char* key, size_t index, int64_t vocab_size,
                const std::string& where) {
  const bool label = std::string(key) == "labels";
  bool ok = false;
  int64_t id = 0;
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    ok = u < static_cast<uint64_t>(vocab_size);
    id = ok ? static_cast<int64_t>(u) : 0;
  } else if (value.is_number_integer()) {
    id = value.get<int64_t>();
    ok = (id >= 0 && id < vocab_size) || (label && id == -100);
  }
  // A number's text is short; anything else (a string, an object) is cut to an excerpt.
  const std::string text = value.is_number() ? value.dump() : quoted_excerpt(value.dump());
  SMOL_CHECK(ok, where, label ? ": label " : ": input id ", text, " (", key, "[", index, "]) is ",
             label ? "neither -100 nor a token id" : "not a token id", " in [0, ", vocab_size, ")");
  return static_cast<int32_t>(id);
}

std::vector<int32_t> read_id_array(const nlohmann::json& row, const char* key, int64_t vocab_size,
                                   const std::string& where) {
  SMOL_CHECK(row.contains(key), where, ": the row has no \"", key, "\"");
  const nlohmann::json& values = row.at(key);
  SMOL_CHECK(values.is_array(), where, ": \"", key, "\" must be an array of integers, not ",
             values.type_name());
  std::vector<int32_t> out;
  out.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    out.push_back(read_id(values[i], key, i, vocab_size, where));
  return out;
}

}  // namespace

std::vector<TokenRow> read_token_rows_jsonl(const std::string& path, int64_t vocab_size,
                                            int64_t max_positions) {
  require_regular_file(path, "batch file");
  std::ifstream in(path);
  SMOL_CHECK(in.good(), "batch file ", path, " cannot be opened");
  std::vector<TokenRow> rows;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string where = path + ":" + std::to_string(line_number);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json row;
    try {
      // Bounded nesting: a deep value's recursive dump (in a message) would overflow the stack.
      row = parse_bounded_json(line, where);
    } catch (const nlohmann::json::exception& e) {
      // nlohmann's message quotes the last token read, which may be a whole 1 MB string.
      throw_error(where, ": not valid JSON: ", quoted_excerpt(e.what(), 160));
    }
    SMOL_CHECK(row.is_object(), where, ": a row must be a JSON object, not ", row.type_name());
    for (const auto& item : row.items())
      SMOL_CHECK(item.key() == "input_ids" || item.key() == "labels", where, ": unknown field ",
                 quoted_excerpt(item.key()), " (rows hold input_ids and labels)");
    TokenRow token_row;
    token_row.input_ids = read_id_array(row, "input_ids", vocab_size, where);
    token_row.labels = read_id_array(row, "labels", vocab_size, where);
    SMOL_CHECK(!token_row.input_ids.empty(), where, ": input_ids is empty");
    SMOL_CHECK(token_row.labels.size() == token_row.input_ids.size(), where, ": ",
               token_row.input_ids.size(), " input_ids but ", token_row.labels.size(), " labels");
    SMOL_CHECK(
        max_positions <= 0 || static_cast<int64_t>(token_row.input_ids.size()) <= max_positions,
        where, ": the row has ", token_row.input_ids.size(),
        " tokens, more than the model's context (max_position_embeddings ", max_positions, ")");
    rows.push_back(std::move(token_row));
  }
  SMOL_CHECK(!in.bad(), "batch file ", path, ": read error");
  SMOL_CHECK(!rows.empty(), "batch file ", path, " has no rows");
  return rows;
}

}  // namespace smol
