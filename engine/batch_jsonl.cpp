// Reading micro-batches from JSON lines (see batch_jsonl.h).
#include "engine/batch_jsonl.h"

#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace smol {

namespace {

std::vector<int32_t> read_id_array(const nlohmann::json& row, const char* key,
                                   const std::string& where) {
  SMOL_CHECK(row.contains(key), where, ": the row has no \"", key, "\"");
  const nlohmann::json& values = row.at(key);
  SMOL_CHECK(values.is_array(), where, ": \"", key, "\" must be an array of integers");
  std::vector<int32_t> out;
  out.reserve(values.size());
  for (const nlohmann::json& v : values) {
    SMOL_CHECK(v.is_number_integer() && v.get<int64_t>() >= -100 && v.get<int64_t>() <= INT32_MAX,
               where, ": \"", key, "\" holds a value that is not a token id: ", v.dump());
    out.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return out;
}

}  // namespace

std::vector<TokenRow> read_token_rows_jsonl(const std::string& path, int64_t vocab_size) {
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
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw_error(where, ": not valid JSON: ", e.what());
    }
    SMOL_CHECK(row.is_object(), where, ": a row must be a JSON object");
    for (const auto& item : row.items())
      SMOL_CHECK(item.key() == "input_ids" || item.key() == "labels", where, ": unknown field \"",
                 item.key(), "\" (rows hold input_ids and labels)");
    TokenRow token_row;
    token_row.input_ids = read_id_array(row, "input_ids", where);
    token_row.labels = read_id_array(row, "labels", where);
    SMOL_CHECK(!token_row.input_ids.empty(), where, ": input_ids is empty");
    SMOL_CHECK(token_row.labels.size() == token_row.input_ids.size(), where, ": ",
               token_row.input_ids.size(), " input_ids but ", token_row.labels.size(), " labels");
    for (int32_t id : token_row.input_ids)
      SMOL_CHECK(id >= 0 && id < vocab_size, where, ": input id ", id,
                 " outside the vocabulary [0, ", vocab_size, ")");
    for (int32_t label : token_row.labels)
      SMOL_CHECK(label == -100 || (label >= 0 && label < vocab_size), where, ": label ", label,
                 " is neither -100 nor a token id below ", vocab_size);
    rows.push_back(std::move(token_row));
  }
  SMOL_CHECK(!rows.empty(), "batch file ", path, " has no rows");
  return rows;
}

}  // namespace smol
